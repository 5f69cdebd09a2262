# shellcheck shell=bash
# perf/modes/slowloris.sh — sourced by run.sh: `run.sh slowloris`. For each proxy in turn: a
# baseline wrk run, then SLOW_CONNS slowloris connections held by slowloris_hold (a partial head
# and a byte a second on each; every one the proxy closes at its header timeout is re-opened at
# once) while the same wrk runs again. The verdict (perf/slowloris.py): Gatehouse keeps at least
# 0.9 of its own req/s. Both proxies get the same header timeout, SLOW_TIMEOUT_S.

gatehouse_slowloris_conf() {
  printf '\n[limits]\nheader_timeout_ms = %s\n' "$((SLOW_TIMEOUT_S * 1000))"
}
nginx_slowloris_conf() { echo "client_header_timeout ${SLOW_TIMEOUT_S}s;"; }

run_slowloris_mode() {
  local r k n
  local SLPY=(python3 "$HERE/slowloris.py")
  say "building slowloris_hold"
  (cd "$ROOT" && cargo build -q -p perf --bin slowloris_hold) >&2
  HOLD=$TARGET/debug/slowloris_hold
  if [ "$WARMUP" -gt 0 ]; then
    for p in "${PROXY_LIST[@]}"; do run_wrk "$WORK/warm-$p.txt" "$WARMUP" "$p" /100; done
  fi
  # Rounds interleave the proxies (order rotated each round) and pair each proxy's run with
  # slowloris connections with a run without them just before: the verdict is the median of
  # those paired ratios, which machine noise between rounds affects far less.
  n=${#PROXY_LIST[@]}
  for ((r = 1; r <= ROUNDS; r++)); do
    for ((k = 0; k < n; k++)); do
      slowloris_round "${PROXY_LIST[$(((k + r - 1) % n))]}" "$r"
    done
  done
  "${SLPY[@]}" summary "$RUNS" "$OUT" "${meta[@]}" "slow_conns=$SLOW_CONNS" \
    "slow_timeout_s=$SLOW_TIMEOUT_S" "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)"
  exit 0
}

# slowloris_round PROXY ROUND: one paired measurement (wrk alone, then wrk with the holder).
slowloris_round() {
  local p=$1 r=$2 hold_pid reopened still_open
  local SLPY=(python3 "$HERE/slowloris.py")
  timed_wrk "$WORK/base-wrk-$p-$r.txt" "$DURATION" "$p" /100
  BASE_TIMING=("${TIMING[@]/#/base_}")
  rm -f "$WORK/hold.in"; mkfifo "$WORK/hold.in"
  setsid taskset -c "$LOAD_CPU" "${BOOST[@]}" "$HOLD" "127.0.0.1:${PORT[$p]}" "$SLOW_CONNS" \
    <"$WORK/hold.in" >"$WORK/slow-$p.out" 2>"$WORK/slow-$p.err" &
  hold_pid=$!
  PIDS+=("$hold_pid")
  exec 7<>"$WORK/hold.in"
  HOLD_FD_OPEN=1
  say "$p: opening $SLOW_CONNS slowloris connections"
  for _ in $(seq 600); do  # at most 60 s
    grep -q '^ready' "$WORK/slow-$p.out" && break
    kill -0 "$hold_pid" 2>/dev/null || { cat "$WORK/slow-$p.err" >&2; die "slowloris_hold failed on $p"; }
    sleep 0.1
  done
  grep -q '^ready' "$WORK/slow-$p.out" || die "slowloris_hold not ready on $p after 60 s"
  # Past the first header timeout, so the run sees the proxy closing and the holder
  # re-opening, not only connections sitting there.
  sleep "$((SLOW_TIMEOUT_S + 1))"
  timed_wrk "$WORK/slow-wrk-$p-$r.txt" "$DURATION" "$p" /100
  exec 7>&-
  HOLD_FD_OPEN=0
  for _ in $(seq 300); do kill -0 "$hold_pid" 2>/dev/null || break; sleep 0.1; done
  wait "$hold_pid" || die "slowloris_hold on $p exited with an error: $(cat "$WORK/slow-$p.err")"
  reopened=$(awk '/^reopened/ {print $2}' "$WORK/slow-$p.out")
  still_open=$(awk '/^open/ {print $2}' "$WORK/slow-$p.out")
  "${SLPY[@]}" record "$RUNS" proxy="$p" round="$r" "measured=${MEASURED[$p]}" \
    slow_conns="$SLOW_CONNS" reopened="${reopened:-0}" still_open="${still_open:-0}" \
    wrk="$WORK/slow-wrk-$p-$r.txt" "${TIMING[@]}" base_wrk="$WORK/base-wrk-$p-$r.txt" "${BASE_TIMING[@]}"
}
