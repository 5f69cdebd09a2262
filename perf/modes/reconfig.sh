# shellcheck shell=bash
# perf/modes/reconfig.sh — sourced by run.sh: `run.sh reconfig`.
#
# Does changing the config through the admin API disturb traffic? Gatehouse alone (nginx's
# reload replaces worker processes, a different operation), in one run:
#
#   1. max: wrk -cCONNS for MAX_S seconds on GET /100 (closed loop, the gateway saturated);
#   2. pacing: a wrk Lua script makes each connection wait PACE_MS before each request, so
#      the rate is set by the number of connections more than by the gateway's speed; short
#      probes pick the connection count that gives TARGET_PCT% of the max (wrk2, which paces
#      exactly, is not in Debian);
#   3. ROUNDS x (one run without changes, one with an admin change every CHANGE_MS), DURATION
#      seconds each, in alternating order; churn.py makes the changes and keeps one keep-alive
#      probe connection (opened before the run, a request every second) that must survive.
#
# Before the load, changes are also made for IDLE_CHURN_S on the idle gateway: its CPU time
# over that span is what a change costs the process, with no traffic to blur it.
#
# The upstream nginx's stub_status counts the connections the gateway opened to it during each
# run: a change that made the gateway drop its pooled connections shows there.
#
# Verdicts: non-2xx and socket errors (must be 0), p99 with changes / p99 without (within 2x),
# every admin change answered 2xx, the probe connection still open at the end.

MAX_S=${MAX_S:-10}
PACE_MS=${PACE_MS:-1}
IDLE_CHURN_S=${IDLE_CHURN_S:-10}

# wrk_rps FILE: the req/s of a wrk run.
wrk_rps() { "${PY[@]}" parse-wrk "$1" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["rps"]))'; }

# churn_start CHANGES(on|off) TAG: starts churn.py and waits for its `ready` (CHURN_PID).
churn_start() {
  local changes=$1 tag=$2 churn_pid
  rm -f "$WORK/churn.in"; mkfifo "$WORK/churn.in"
  setsid taskset -c "$LOAD_CPU" "${BOOST[@]}" python3 "$HERE/churn.py" --admin "127.0.0.1:$ADMIN_PORT" \
    --proxy "127.0.0.1:${PORT[gatehouse]}" --upstream "127.0.0.1:$UP_PORT" --changes "$changes" \
    --upstream-max-idle "$GW_MAX_IDLE" \
    --interval-ms "$CHANGE_MS" --max-s $((DURATION + 120)) --out "$WORK/churn-$tag.json" \
    <"$WORK/churn.in" >"$WORK/churn-$tag.out" 2>"$WORK/churn-$tag.err" &
  churn_pid=$!
  PIDS+=("$churn_pid")
  exec 7<>"$WORK/churn.in"
  HOLD_FD_OPEN=1
  for _ in $(seq 300); do # at most 30 s
    grep -q '^ready' "$WORK/churn-$tag.out" && break
    kill -0 "$churn_pid" 2>/dev/null || { cat "$WORK/churn-$tag.err" >&2; die "churn.py failed to start"; }
    sleep 0.1
  done
  grep -q '^ready' "$WORK/churn-$tag.out" || die "churn.py not ready after 30 s"
  CHURN_PID=$churn_pid
}

# churn_stop TAG: closes churn.py's stdin and waits for it to write its result.
churn_stop() {
  exec 7>&-
  HOLD_FD_OPEN=0
  for _ in $(seq 300); do kill -0 "$CHURN_PID" 2>/dev/null || break; sleep 0.1; done
  wait "$CHURN_PID" || die "churn.py exited with an error: $(cat "$WORK/churn-$1.err")"
}

# churn_run CHANGES(on|off) ROUND: one paced wrk run with churn.py beside it.
churn_run() {
  local changes=$1 r=$2 tag="$1-$2" a0 a1
  churn_start "$changes" "$tag"
  a0=$("${MODPY[@]}" nginx-accepts "http://127.0.0.1:$UP_PORT/_status")
  timed_wrk "$WORK/wrk-$tag.txt" "$DURATION" gatehouse /100 "$WORK/paced.lua"
  a1=$("${MODPY[@]}" nginx-accepts "http://127.0.0.1:$UP_PORT/_status")
  churn_stop "$tag"
  "${MODPY[@]}" reconfig-record "$RUNS" case="changes-$changes" proxy=gatehouse round="$r" \
    conns="$WRK_CONNS" changes="$changes" "measured=${MEASURED[gatehouse]}" "${TIMING[@]}" \
    wrk="$WORK/wrk-$tag.txt" churn="$WORK/churn-$tag.json" target_rps="$TARGET_RPS" max_rps="$MAX_RPS" \
    upstream_accepts=$((a1 - a0))
}

# idle_churn_cost: changes on the idle gateway for IDLE_CHURN_S, less the CPU of the same span
# without changes; sets IDLE_CHANGES and
# IDLE_CPU_MS (globals, not printed: churn.py must be started by this shell, not a subshell,
# so the exit trap can stop it).
# The process's CPU ticks over that time are what the changes cost it (admin thread, store,
# publication, every worker adopting the versions), with no traffic to blur them.
idle_churn_cost() {
  local t0 t1
  # The same span with no change first: the idle gateway's own ticking, subtracted below.
  # shellcheck disable=SC2046
  t0=$("${PY[@]}" ticks $(measured_pids gatehouse))
  sleep "$IDLE_CHURN_S"
  # shellcheck disable=SC2046
  t1=$("${PY[@]}" ticks $(measured_pids gatehouse))
  IDLE_QUIET_TICKS=$((t1 - t0))
  churn_start on idle
  # shellcheck disable=SC2046
  t0=$("${PY[@]}" ticks $(measured_pids gatehouse))
  sleep "$IDLE_CHURN_S"
  churn_stop idle
  # shellcheck disable=SC2046
  t1=$("${PY[@]}" ticks $(measured_pids gatehouse))
  read -r IDLE_CHANGES IDLE_CPU_MS < <(python3 -c 'import json,os,sys; c=json.load(open(sys.argv[1]))["changes"]; ms=(int(sys.argv[3])-int(sys.argv[2])-int(sys.argv[4]))*1e3/os.sysconf("SC_CLK_TCK"); print(c, round(ms, 1))' \
    "$WORK/churn-idle.json" "$t0" "$t1" "$IDLE_QUIET_TICKS")
}

# pace_to_target NAME: the max (closed-loop wrk on GET /100), then a paced load at
# TARGET_PCT% of it (reconfig and upgrade modes). Sets MAX_RPS, TARGET_RPS, WRK_CONNS and
# the paced.lua script, and adds them to meta.
pace_to_target() {
  local name=$1 r0 n i probes
  [ "$WARMUP" -gt 0 ] && run_wrk "$WORK/warm.txt" "$WARMUP" gatehouse /100
  timed_wrk "$WORK/max.txt" "$MAX_S" gatehouse /100
  MAX_RPS=$(wrk_rps "$WORK/max.txt")
  TARGET_RPS=$((MAX_RPS * TARGET_PCT / 100))
  "${MODPY[@]}" wrk-lua "$WORK/paced.lua" --pace-ms "$PACE_MS"
  # A paced connection makes at most 1000 / (PACE_MS + latency) requests per second, and
  # fewer as the load raises latency: start from half that bound, then up to 4 probes of 4 s
  # each scale the connection count by target / achieved, stopping within 5% of the target.
  n=$(((TARGET_RPS * PACE_MS + 499) / 500))
  probes=""
  for i in 1 2 3 4; do
    if [ "$n" -lt 1 ]; then n=1; elif [ "$n" -gt 2000 ]; then n=2000; fi
    export WRK_CONNS=$n
    run_wrk "$WORK/probe.txt" 4 gatehouse /100 "$WORK/paced.lua"
    r0=$(wrk_rps "$WORK/probe.txt")
    probes+="-c$n:$r0 "
    [ $((r0 * 100)) -ge $((TARGET_RPS * 95)) ] && [ $((r0 * 100)) -le $((TARGET_RPS * 105)) ] && break
    [ "$i" = 4 ] && break
    n=$(((n * TARGET_RPS + r0 / 2) / (r0 > 0 ? r0 : 1)))
  done
  say "$name: max $MAX_RPS req/s; target $TARGET_RPS ($TARGET_PCT%); probes (conns:req/s) ${probes% }; using -c$n, $PACE_MS ms pacing"
  meta+=("max_rps=$MAX_RPS" "target_rps=$TARGET_RPS" "paced_conns=$n" "pace_ms=$PACE_MS" "max_s=$MAX_S"
    "probes=${probes% }")
  export WRK_CONNS=$n
}

run_reconfig_mode() {
  local r first second
  idle_churn_cost
  say "reconfig: on the idle gateway, $IDLE_CHANGES changes in $IDLE_CHURN_S s took $IDLE_CPU_MS ms of its CPU (beyond its $IDLE_QUIET_TICKS ticks of a quiet span)"
  meta+=("idle_churn_s=$IDLE_CHURN_S" "idle_churn_changes=$IDLE_CHANGES" "idle_churn_cpu_ms=$IDLE_CPU_MS"
    "idle_quiet_ticks=$IDLE_QUIET_TICKS")
  pace_to_target reconfig
  "${MODPY[@]}" row-header
  for ((r = 1; r <= ROUNDS; r++)); do
    # Alternate which run goes first, so drift over the minutes does not favour one.
    if [ $((r % 2)) = 1 ]; then first=off second=on; else first=on second=off; fi
    churn_run "$first" "$r"
    churn_run "$second" "$r"
  done
  unset WRK_CONNS
  "${MODPY[@]}" summary "$RUNS" "$OUT" "${meta[@]}" "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)"
}
