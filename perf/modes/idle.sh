# shellcheck shell=bash
# perf/modes/idle.sh — sourced by run.sh: `run.sh idle`. For each proxy in turn: a baseline wrk
# run, then IDLE_CONNS idle keep-alive connections held by idle_hold while the same wrk runs
# again; RSS growth per connection and req/s while held. Kept apart from run.sh so each mode
# reads on its own; it uses run.sh's globals and helpers (run_wrk, timed_wrk, sum_field, PY).

run_idle_mode() {
  local p before held hold_pid still_open
  say "building idle_hold"
  (cd "$ROOT" && cargo build -q -p perf --bin idle_hold) >&2
  HOLD=$TARGET/debug/idle_hold
  for p in "${PROXY_LIST[@]}"; do
    [ "$WARMUP" -gt 0 ] && run_wrk "$WORK/warm-$p.txt" "$WARMUP" "$p" /100
    # Baseline: the same wrk run with no idle connections, so "while held" has a same-proxy
    # reference that machine noise affects alike.
    timed_wrk "$WORK/base-wrk-$p.txt" "$DURATION" "$p" /100
    BASE_TIMING=("${TIMING[@]/#/base_}")
    sleep 1
    before=$(sum_field "$p" VmRSS)
    rm -f "$WORK/hold.in"; mkfifo "$WORK/hold.in"
    setsid taskset -c "$LOAD_CPU" "${BOOST[@]}" "$HOLD" "127.0.0.1:${PORT[$p]}" "$IDLE_CONNS" --path /100 \
    <"$WORK/hold.in" >"$WORK/hold-$p.out" 2>"$WORK/hold-$p.err" &
    hold_pid=$!
    PIDS+=("$hold_pid")
    # Read-write, so the open never blocks even if the holder died before opening its end.
    exec 7<>"$WORK/hold.in"
    HOLD_FD_OPEN=1
    say "$p: opening $IDLE_CONNS idle keep-alive connections"
    for _ in $(seq 1200); do  # at most 120 s
    grep -q '^ready' "$WORK/hold-$p.out" && break
    kill -0 "$hold_pid" 2>/dev/null || { cat "$WORK/hold-$p.err" >&2; die "idle_hold failed on $p"; }
    sleep 0.1
    done
    grep -q '^ready' "$WORK/hold-$p.out" || die "idle_hold not ready on $p after 120 s"
    sleep 1
    held=$(sum_field "$p" VmRSS)
    timed_wrk "$WORK/idle-wrk-$p.txt" "$DURATION" "$p" /100
    exec 7>&-
    HOLD_FD_OPEN=0
    for _ in $(seq 300); do kill -0 "$hold_pid" 2>/dev/null || break; sleep 0.1; done
    wait "$hold_pid" || die "idle_hold on $p exited with an error: $(cat "$WORK/hold-$p.err")"
    still_open=$(awk '/^open/ {print $2}' "$WORK/hold-$p.out")
    "${PY[@]}" idle-record "$RUNS" proxy="$p" "measured=${MEASURED[$p]}" idle_conns="$IDLE_CONNS" \
    rss_before="$before" rss_held="$held" still_open="${still_open:-0}" wrk="$WORK/idle-wrk-$p.txt" \
    "${TIMING[@]}" base_wrk="$WORK/base-wrk-$p.txt" "${BASE_TIMING[@]}"
  done
  "${PY[@]}" summary "$RUNS" "$OUT" "${meta[@]}" "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)"
  exit 0
}
