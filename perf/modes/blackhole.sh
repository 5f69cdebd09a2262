# shellcheck shell=bash
# perf/modes/blackhole.sh — sourced by run.sh: `run.sh blackhole`.
#
# Does one silent node out of three hurt traffic once it is found? Gatehouse alone, two runs
# of wrk on GET /100 through an upstream of three nodes:
#
#   healthy:   three nodes that answer (the upstream nginx on 127.0.0.1-3, same port);
#   blackhole: two of them, and a black hole on 127.0.0.3 (perf/blackhole.py: accepts, never
#              answers).
#
# The upstream has an HTTP health check (every BH_INTERVAL_MS, BH_CHECK_TIMEOUT_MS, 2 failures)
# and outlier ejection (3 failures in a row), and the route a BH_TRY_TIMEOUT_MS try timeout
# with one retry. Each run starts a fresh gateway, sends load for DETECT_S seconds (the
# detection interval, unmeasured), then measures DURATION seconds. ROUNDS pairs of runs, the
# first phase alternating, compared as the median of per-round ratios.
#
# Verdicts: blackhole req/s >= 0.9 x healthy, blackhole p99 <= 2 x healthy, no errors.

DETECT_S=${DETECT_S:-3}
BH_INTERVAL_MS=${BH_INTERVAL_MS:-1000}
BH_CHECK_TIMEOUT_MS=${BH_CHECK_TIMEOUT_MS:-300}
BH_TRY_TIMEOUT_MS=${BH_TRY_TIMEOUT_MS:-200}

# bh_conf FILE THIRD_NODE STATE_DIR: a gateway config over the two answering nodes and
# THIRD_NODE. Each phase has its own state dir: a store would win over the file's resources.
bh_conf() {
  mkdir -p "$3"
  cat >"$1" <<EOF
[server]
workers = 1
listen = ["127.0.0.1:${PORT[gatehouse]}"]
state_dir = "$3"

[admin]
listen = "127.0.0.1:$ADMIN_PORT"

[[upstreams]]
id = "up"
nodes = [{ addr = "127.0.0.1:$UP_PORT" }, { addr = "127.0.0.2:$UP_PORT" }, { addr = "$2" }]
max_idle = $GW_MAX_IDLE

[upstreams.health_check]
path = "/100"
interval_ms = $BH_INTERVAL_MS
timeout_ms = $BH_CHECK_TIMEOUT_MS
unhealthy_threshold = 2

[upstreams.outlier]
consecutive_failures = 3

[[routes]]
id = "all"
paths = ["/*"]
upstream = "up"
retries = 1
try_timeout_ms = $BH_TRY_TIMEOUT_MS
EOF
}

run_blackhole_mode() {
  local bh_port=${PORTS[9]} phase conf pid third r order
  # The standard gateway slot is replaced by one per phase.
  kill -TERM "${MEASURED[gatehouse]}" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "${MEASURED[gatehouse]}" 2>/dev/null || break; sleep 0.1; done
  start_bg "$LOAD_CPU" "$WORK/blackhole.out" python3 "$HERE/blackhole.py" 127.0.0.3 "$bh_port"
  for _ in $(seq 50); do grep -q ready "$WORK/blackhole.out" && break; sleep 0.1; done
  grep -q ready "$WORK/blackhole.out" || die "blackhole.py did not start: $(cat "$WORK/blackhole.out")"
  for r in $(seq "$ROUNDS"); do
    # Alternate which phase goes first, so drift on the shared machine hits both alike.
    if [ $((r % 2)) = 1 ]; then order="healthy blackhole"; else order="blackhole healthy"; fi
    for phase in $order; do
      conf=$WORK/gatehouse/$phase-$r.toml
      if [ $phase = healthy ]; then third=127.0.0.3:$UP_PORT; else third=127.0.0.3:$bh_port; fi
      bh_conf "$conf" "$third" "$WORK/gatehouse/state-$phase-$r"
      start_bg "$PROXY_CPU" "$WORK/gatehouse/$phase-$r.log" "${GATEHOUSE_CMD%% *}" run --config "$conf"
      pid=$LAST_PID
      wait_ready "gatehouse ($phase)" "${PORT[gatehouse]}" "$pid" "$WORK/gatehouse/$phase-$r.log"
      MEASURED[gatehouse]=$pid
      say "round $r, $phase: ${DETECT_S}s of unmeasured load (detection), then ${DURATION}s measured"
      run_wrk "$WORK/detect-$phase-$r.txt" "$DETECT_S" gatehouse /100
      timed_wrk "$WORK/wrk-$phase-$r.txt" "$DURATION" gatehouse /100
      python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())' \
        "http://127.0.0.1:$ADMIN_PORT/metrics" | grep '^gatehouse_upstream_[nr]' >"$WORK/metrics-$phase-$r.txt" || true
      python3 "$HERE/harness.py" parse-wrk "$WORK/wrk-$phase-$r.txt" >"$WORK/$phase-$r.json"
      kill -TERM "$pid"
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    done
  done
  python3 - "$WORK" "$OUT" "$ROUNDS" "${meta[@]}" <<'PY'
import json, statistics, sys
work, out, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
meta = dict(a.partition("=")[::2] for a in sys.argv[4:])
runs, rps, p99 = [], [], []
errors = 0
for r in range(1, rounds + 1):
    h = json.load(open(f"{work}/healthy-{r}.json"))
    b = json.load(open(f"{work}/blackhole-{r}.json"))
    b["metrics"] = open(f"{work}/metrics-blackhole-{r}.txt").read().splitlines()
    runs.append({"round": r, "healthy": h, "blackhole": b})
    rps.append(b["rps"] / h["rps"])
    p99.append(b["p99_us"] / max(h["p99_us"], 1))
    errors += sum(x["socket_errors"] + x["non2xx"] for x in (h, b))
    for phase, x in (("healthy", h), ("blackhole", b)):
        print(f"round {r} {phase:10} {x['rps']:>8.0f} req/s  p50 {x['p50_us']:>7} us  "
              f"p99 {x['p99_us']:>8} us  errors {x['socket_errors'] + x['non2xx']}")
rps_ratio, p99_ratio = statistics.median(rps), statistics.median(p99)
ok = rps_ratio >= 0.9 and p99_ratio <= 2.0 and errors == 0
print(f"blackhole/healthy, median of {rounds} rounds: req/s x{rps_ratio:.3f}, "
      f"p99 x{p99_ratio:.3f}, errors {errors} -> {'PASS' if ok else 'FAIL'}")
verdict = {"rps_ratio": round(rps_ratio, 3), "p99_ratio": round(p99_ratio, 3),
           "rps_ratios": [round(x, 3) for x in rps], "p99_ratios": [round(x, 3) for x in p99],
           "errors": errors, "pass": ok}
with open(out, "w") as f:
    json.dump({"meta": meta, "runs": runs, "verdict": verdict}, f, indent=1)
PY
  exit 0
}
