# shellcheck shell=bash
# perf/modes/upgrade.sh — sourced by run.sh: `run.sh upgrade`.
#
# Does `gatehouse upgrade` (docs/upgrade.md) disturb traffic? Gatehouse alone, in one run:
#
#   1. the max and a paced load at TARGET_PCT% of it, as in reconfig mode (pace_to_target);
#   2. ROUNDS x (one paced run of DURATION seconds without an upgrade, one with
#      `gatehouse upgrade --config <the same file>` started halfway), in alternating order.
#
# During an upgrade run the handover is timed (until the new process serves its admin API,
# the last step) and the old process is waited for: it must exit 0 on its own once drained.
# The new process then is the gateway for the rest of the run and the next rounds.
#
# Verdicts: non-2xx and socket errors (connect/read/write/timeout; must all be 0), the old
# process's exit code (0), p99 with the upgrade / p99 without (within 2x).

# upgrade_run UPGRADE(on|off) ROUND: one paced wrk run, with an upgrade halfway if on.
upgrade_run() {
  local up=$1 r=$2 tag="$1-$2" out wrk_pid old_pid new_pid t0 t1 t2 old_exit=0 b0 s0 b1 s1
  local args=(-t1 "-c$WRK_CONNS" "-d${DURATION}s" --latency --timeout 5s -s "$WORK/paced.lua")
  local extra=()
  out=$WORK/wrk-$tag.txt
  old_pid=${MEASURED[gatehouse]}
  read -r b0 s0 < <("${PY[@]}" cpustat "$PROXY_CPU")
  t0=$("${PY[@]}" ticks "$old_pid")
  setsid taskset -c "$LOAD_CPU" "${BOOST[@]}" wrk "${args[@]}" "http://127.0.0.1:${PORT[gatehouse]}/100" \
    >"$out" 2>&1 </dev/null &
  wrk_pid=$!
  PIDS+=("$wrk_pid")
  if [ "$up" = on ]; then
    sleep "$((DURATION / 2))"
    t1=$(date +%s%N)
    start_bg "$PROXY_CPU" "$WORK/gatehouse/upgrade-$r.log" "$GW_BIN" upgrade --config "$WORK/gatehouse/gatehouse.toml"
    new_pid=$LAST_PID
    for _ in $(seq 1000); do # at most 10 s
      grep -q 'admin API on' "$WORK/gatehouse/upgrade-$r.log" && break
      kill -0 "$new_pid" 2>/dev/null || { cat "$WORK/gatehouse/upgrade-$r.log" >&2; die "gatehouse upgrade failed"; }
      sleep 0.01
    done
    t2=$(date +%s%N)
    grep -q 'admin API on' "$WORK/gatehouse/upgrade-$r.log" || die "gatehouse upgrade did not finish within 10 s"
    wait "$old_pid" || old_exit=$?
    extra=("upgrade=on" "old_pid=$old_pid" "new_pid=$new_pid" "old_exit=$old_exit"
      "handover_ms=$(((t2 - t1) / 1000000))" "old_exit_after_ms=$((($(date +%s%N) - t1) / 1000000))")
    MEASURED[gatehouse]=$new_pid
  fi
  if ! wait "$wrk_pid"; then cat "$out" >&2; die "wrk failed"; fi
  read -r b1 s1 < <("${PY[@]}" cpustat "$PROXY_CPU")
  if [ "$up" = on ]; then t0=0 t1=0; else t1=$("${PY[@]}" ticks "$old_pid"); fi
  "${MODPY[@]}" upgrade-record "$RUNS" case="upgrade-$up" proxy=gatehouse round="$r" \
    conns="$WRK_CONNS" "measured=${MEASURED[gatehouse]}" "t0=$t0" "t1=$t1" "busy0=$b0" "tot0=$s0" \
    "busy1=$b1" "tot1=$s1" wrk="$out" target_rps="$TARGET_RPS" max_rps="$MAX_RPS" "${extra[@]}"
}

run_upgrade_mode() {
  local r first second
  GW_BIN=${GATEHOUSE_CMD%% *}
  pace_to_target upgrade
  "${MODPY[@]}" row-header
  for ((r = 1; r <= ROUNDS; r++)); do
    # Alternate which run goes first, so drift over the minutes does not favour one.
    if [ $((r % 2)) = 1 ]; then first=off second=on; else first=on second=off; fi
    upgrade_run "$first" "$r"
    upgrade_run "$second" "$r"
  done
  unset WRK_CONNS
  "${MODPY[@]}" summary "$RUNS" "$OUT" "${meta[@]}" "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)"
}
