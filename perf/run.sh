#!/usr/bin/env bash
# perf/run.sh — load harness: Gatehouse against nginx (and optionally haproxy) in the SAME run.
#
# Why one script runs every contender: the machine is small and shared, so absolute numbers
# drift from one minute to the next; only figures taken side by side, interleaved round by
# round, and compared as ratios of medians mean anything. See perf/README.md.
#
# Modes:
#   run.sh [bench]   every scenario, ROUNDS rounds interleaving the proxies, DURATION s each
#   run.sh smoke     every scenario once for 2 s (quick check that everything answers)
#   run.sh idle      IDLE_CONNS idle keep-alive connections held on each proxy in turn:
#                    RSS growth per connection, and req/s of a wrk run while they are held
#   run.sh calls     p50 at low concurrency (CALL_CONNS) through routes whose auth_service
#                    and risk modules call two check services that answer after a fixed
#                    delay: what the gateway adds, one call vs two (overlap), nginx's
#                    auth_request as the same-run reference (modes/calls.sh)
#   run.sh thrift    Gatehouse alone: GET answered from a Rust Thrift backend (JSON -> Thrift
#                    -> JSON) against plain proxying of the same JSON bytes, and the upstream
#                    connections a multiplexed pool (32 calls in flight per connection) uses
#                    against one call per connection (modes/thrift.sh)
#   run.sh slowloris SLOW_CONNS slowloris connections (partial head, a byte a second,
#                    re-opened as the proxy closes them) held on each proxy in turn: req/s
#                    of a wrk run with them vs without; Gatehouse must keep >= 0.9x
#                    (modes/slowloris.sh)
#   run.sh https     TLS termination against nginx (same certificate and cipher): keep-alive
#                    GET over HTTPS, and new handshakes per second (modes/https.sh)
#   run.sh reconfig  Gatehouse alone: paced wrk at TARGET_PCT% of the max measured in the
#                    run, once without and once with an admin change every CHANGE_MS ms;
#                    errors, p99, and a keep-alive connection that must survive (modes/reconfig.sh)
#   run.sh upgrade   Gatehouse alone: paced wrk at TARGET_PCT% of the max; runs without and with a
#                    `gatehouse upgrade` halfway: errors (must be 0), old exit 0, p99 (modes/upgrade.sh)
#   run.sh blackhole Gatehouse alone: three upstream nodes, then two and a black hole;
#                    req/s and p99 after the detection interval (modes/blackhole.sh)
#
# Options (each also an environment variable):
#   --proxies LIST       PROXIES      comma list of nginx,gatehouse,haproxy (default nginx,gatehouse)
#   --gateway-cmd CMD    GATEHOUSE_CMD  what runs in the "gatehouse" slot: a command template
#                        with {config} {port} {upstream} {admin} {dir} placeholders, or the word
#                        `nginx` / `haproxy` to put that proxy there as a stand-in
#                        (default: $CARGO_TARGET_DIR|target/release/gatehouse run --config {config})
#   --duration S         DURATION     seconds per wrk run (bench 10, smoke 2, idle 10, calls 10,
#                                     reconfig 60, upgrade 20)
#   --rounds N           ROUNDS       rounds per scenario (bench 3, smoke 1, calls 3, reconfig 1,
#                                     slowloris 3, upgrade 1)
#   --connections C      CONNS        wrk connections (50)
#   --idle-conns N       IDLE_CONNS   idle connections held in idle mode (9000)
#   --slow-conns N       SLOW_CONNS   slowloris connections held in slowloris mode (1000)
#   SLOW_TIMEOUT_S=N                  slowloris mode: both proxies' header timeout (5)
#   --scenarios LIST     SCENARIOS    subset of get100,get4k,get64k,post2k,modules (modules:
#                                     GET /100?id=42 with a JWT; Gatehouse runs ip_list, params,
#                                     waf, rate_limit and jwt on it, nginx proxies it plainly)
#   --call-conns C       CALL_CONNS   calls mode: wrk connections (4)
#   --call-delays LIST   CALL_DELAYS_US  calls mode: delay of the auth and risk services in µs
#                                     (5000,5000)
#   --target-pct P       TARGET_PCT   reconfig and upgrade modes: load as a share of the measured max (70)
#   --change-ms MS       CHANGE_MS    reconfig mode: time between admin changes (250)
#   --warmup S           WARMUP       unmeasured wrk seconds per proxy before each scenario (1)
#   --out FILE           OUT          JSON summary (default perf/results/latest[-MODE].json)
#   PROXY_CPU=0 LOAD_CPU=1           the layout: proxy under test alone on PROXY_CPU,
#                                    wrk + upstream nginx (+ idle holder) on LOAD_CPU
#   NICE=N SLICE_US=N                priority of everything the harness starts (default -10 and
#                                    a 100 µs scheduler slice as root, else 0 0 = off): each
#                                    process gets its own session, autogroup nice and slice, so
#                                    other sessions' builds on the shared CPUs distort the
#                                    figures less (harness.py boosted says why all three)
#   KEEP_WORK=1                      keep the temp dir (configs, logs, raw wrk output)
#   GATEWAY_SOURCE=TEXT              recorded in the JSON: where the gateway binary came from
#   GW_MAX_IDLE=N                    Gatehouse upstream max_idle (64; reconfig 1024)
#   MAX_S=10 PACE_MS=1 IDLE_CHURN_S=10  reconfig mode: seconds of the max run; pacing per
#                                    request; seconds of changes on the idle gateway
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
PY=(python3 "$HERE/harness.py")

MODE=bench
case "${1:-}" in bench | smoke | idle | calls | https | reconfig | thrift | slowloris | upgrade | blackhole) MODE=$1; shift ;; esac

PROXIES=${PROXIES:-nginx,gatehouse}
GATEHOUSE_CMD=${GATEHOUSE_CMD:-}
DURATION=${DURATION:-}
ROUNDS=${ROUNDS:-}
CONNS=${CONNS:-50}
IDLE_CONNS=${IDLE_CONNS:-9000}
SLOW_CONNS=${SLOW_CONNS:-1000}
SLOW_TIMEOUT_S=${SLOW_TIMEOUT_S:-5}
SCENARIOS=${SCENARIOS:-get100,get4k,get64k,post2k,modules}
CALL_CONNS=${CALL_CONNS:-4}
CALL_DELAYS_US=${CALL_DELAYS_US:-5000,5000}
TARGET_PCT=${TARGET_PCT:-70}
CHANGE_MS=${CHANGE_MS:-250}
WARMUP=${WARMUP:-}
OUT=${OUT:-}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
if [ "$(id -u)" = 0 ]; then NICE=${NICE:--10} SLICE_US=${SLICE_US:-100}; else NICE=${NICE:-0} SLICE_US=${SLICE_US:-0}; fi

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "run.sh: $*" >&2; exit 1; }
say() { echo "==> $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --proxies) PROXIES=${2:?}; shift 2 ;;
    --gateway-cmd) GATEHOUSE_CMD=${2:?}; shift 2 ;;
    --duration) DURATION=${2:?}; shift 2 ;;
    --rounds) ROUNDS=${2:?}; shift 2 ;;
    --connections) CONNS=${2:?}; shift 2 ;;
    --idle-conns) IDLE_CONNS=${2:?}; shift 2 ;;
    --slow-conns) SLOW_CONNS=${2:?}; shift 2 ;;
    --scenarios) SCENARIOS=${2:?}; shift 2 ;;
    --warmup) WARMUP=${2:?}; shift 2 ;;
    --out) OUT=${2:?}; shift 2 ;;
    --call-conns) CALL_CONNS=${2:?}; shift 2 ;;
    --call-delays) CALL_DELAYS_US=${2:?}; shift 2 ;;
    --target-pct) TARGET_PCT=${2:?}; shift 2 ;;
    --change-ms) CHANGE_MS=${2:?}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

case $MODE in
  bench) DURATION=${DURATION:-10}; ROUNDS=${ROUNDS:-3}; WARMUP=${WARMUP:-1}
         OUT=${OUT:-$HERE/results/latest.json} ;;
  smoke) DURATION=${DURATION:-2}; ROUNDS=${ROUNDS:-1}; WARMUP=${WARMUP:-0}
         OUT=${OUT:-$HERE/results/latest-smoke.json} ;;
  idle)  DURATION=${DURATION:-10}; ROUNDS=1; WARMUP=${WARMUP:-1}
         OUT=${OUT:-$HERE/results/latest-idle.json} ;;
  slowloris) DURATION=${DURATION:-10}; ROUNDS=${ROUNDS:-3}; WARMUP=${WARMUP:-1}
         OUT=${OUT:-$HERE/results/latest-slowloris.json} ;;
  calls) DURATION=${DURATION:-10}; ROUNDS=${ROUNDS:-3}; WARMUP=${WARMUP:-1}
         OUT=${OUT:-$HERE/results/latest-calls.json} ;;
  # Thrift measures Gatehouse against itself: nginx has no Thrift upstreams.
  thrift) DURATION=${DURATION:-10}; ROUNDS=${ROUNDS:-3}; WARMUP=${WARMUP:-1}; PROXIES=gatehouse
         OUT=${OUT:-$HERE/results/latest-thrift.json} ;;
  https) DURATION=${DURATION:-10}; ROUNDS=${ROUNDS:-3}; WARMUP=${WARMUP:-1}
         OUT=${OUT:-$HERE/results/latest-https.json} ;;
  # Reconfig measures Gatehouse against itself (with and without changes): an nginx reload
  # replaces its worker processes, a different operation, so nginx is not a contender here.
  reconfig) DURATION=${DURATION:-60}; ROUNDS=${ROUNDS:-1}; WARMUP=${WARMUP:-1}; PROXIES=gatehouse
         OUT=${OUT:-$HERE/results/latest-reconfig.json} ;;
  upgrade) DURATION=${DURATION:-20}; ROUNDS=${ROUNDS:-1}; WARMUP=${WARMUP:-1}; PROXIES=gatehouse
         OUT=${OUT:-$HERE/results/latest-upgrade.json} ;;
  blackhole) DURATION=${DURATION:-10}; ROUNDS=${ROUNDS:-3}; WARMUP=${WARMUP:-0}; PROXIES=gatehouse
         OUT=${OUT:-$HERE/results/latest-blackhole.json} ;;
esac
# Idle upstream connections Gatehouse keeps per node: 64 (its default, and nginx's keepalive
# here) except in reconfig mode, whose paced load may hold more connections in flight than 64:
# the extra ones would be closed and reopened all run long, a cost that has nothing to do with
# the changes being measured.
if [[ $MODE =~ ^(reconfig|upgrade)$ ]]; then GW_MAX_IDLE=${GW_MAX_IDLE:-1024}; else GW_MAX_IDLE=${GW_MAX_IDLE:-64}; fi
[[ $NICE =~ ^-?[0-9]+$ ]] || die "NICE must be a number, got '$NICE'"
[[ $SLICE_US =~ ^[0-9]+$ ]] || die "SLICE_US must be a whole number, got '$SLICE_US'"
# Prefix that starts a command boosted (see harness.py boosted); empty when both are off.
BOOST=()
if [ "$NICE" != 0 ] || [ "$SLICE_US" != 0 ]; then BOOST=(python3 "$HERE/harness.py" boosted "$NICE" "$SLICE_US"); fi
for n in DURATION ROUNDS CONNS IDLE_CONNS SLOW_CONNS SLOW_TIMEOUT_S WARMUP PROXY_CPU LOAD_CPU CALL_CONNS TARGET_PCT CHANGE_MS GW_MAX_IDLE; do
  [[ ${!n} =~ ^[0-9]+$ ]] || die "$n must be a whole number, got '${!n}'"
done
[ "$DURATION" -ge 1 ] || die "DURATION must be at least 1 s"
if [ "$ROUNDS" -lt 1 ] || [ "$ROUNDS" -gt 20 ]; then die "ROUNDS must be 1..20"; fi
IFS=, read -ra PROXY_LIST <<<"$PROXIES"
IFS=, read -ra SCENARIO_LIST <<<"$SCENARIOS"
for p in "${PROXY_LIST[@]}"; do
  case $p in nginx | gatehouse | haproxy) ;; *) die "unknown proxy '$p' (nginx, gatehouse, haproxy)" ;; esac
done
for s in "${SCENARIO_LIST[@]}"; do
  case $s in get100 | get4k | get64k | post2k | modules) ;; *) die "unknown scenario '$s'" ;; esac
done
[[ $CALL_DELAYS_US =~ ^[0-9]+(,[0-9]+)?$ ]] || die "CALL_DELAYS_US must be one or two delays in µs, got '$CALL_DELAYS_US'"
if [ "$TARGET_PCT" -lt 10 ] || [ "$TARGET_PCT" -gt 95 ]; then die "TARGET_PCT must be 10..95"; fi
[ "$CHANGE_MS" -ge 10 ] || die "CHANGE_MS must be at least 10"
[ "$CALL_CONNS" -ge 1 ] || die "CALL_CONNS must be at least 1"
if [[ $MODE =~ ^(reconfig|thrift|upgrade)$ ]] && { [ "$GATEHOUSE_CMD" = nginx ] || [ "$GATEHOUSE_CMD" = haproxy ]; }; then
  die "$MODE mode needs Gatehouse itself (the admin API, Thrift upstreams, the upgrade); a stand-in cannot take it"
fi

# ---------------------------------------------------------------- tools
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
[ -n "$GATEHOUSE_CMD" ] || GATEHOUSE_CMD="$TARGET/release/gatehouse run --config {config}"
need_haproxy=0
for p in "${PROXY_LIST[@]}"; do [ "$p" = haproxy ] && need_haproxy=1; done
[ "$GATEHOUSE_CMD" = haproxy ] && [[ ,$PROXIES, == *,gatehouse,* ]] && need_haproxy=1
# nginx-light's binary lives in /usr/sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"
missing=()
command -v nginx >/dev/null || missing+=(nginx-light)
command -v wrk >/dev/null || missing+=(wrk)
command -v taskset >/dev/null || missing+=(util-linux)
command -v python3 >/dev/null || missing+=(python3)
[ $need_haproxy = 1 ] && ! command -v haproxy >/dev/null && missing+=(haproxy)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  else
    die "missing tools; run as root: apt-get install -y ${missing[*]}"
  fi
fi
if [[ ,$PROXIES, == *,gatehouse,* ]] && [ "$GATEHOUSE_CMD" != nginx ] && [ "$GATEHOUSE_CMD" != haproxy ]; then
  gw_bin=${GATEHOUSE_CMD%% *}
  [ -x "$gw_bin" ] || command -v "$gw_bin" >/dev/null ||
    die "gateway binary '$gw_bin' not found; build it: (cd $ROOT && cargo build --release -p access), or pass --gateway-cmd nginx to validate the harness"
fi
NCPU=$(nproc)
if [ "$NCPU" -lt 2 ] || [ "$PROXY_CPU" -ge "$NCPU" ] || [ "$LOAD_CPU" -ge "$NCPU" ]; then
  say "WARNING: $NCPU CPU(s) here; pinning everything to CPU 0, figures will be meaningless"
  PROXY_CPU=0 LOAD_CPU=0
fi
# Each idle connection is a descriptor in the holder and one in the proxy; ask for room.
want_fds=$((IDLE_CONNS + SLOW_CONNS + 4096))
if [ "$(ulimit -n)" -lt "$want_fds" ]; then
  ulimit -n "$want_fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fi
if [ "$MODE" = idle ] && [ "$(ulimit -n)" -lt "$want_fds" ]; then
  die "descriptor limit $(ulimit -n) < $want_fds; run 'ulimit -n $want_fds' (as root) or lower --idle-conns"
fi

# ---------------------------------------------------------------- cleanup
WORK=$(mktemp -d -t gatehouse-perf.XXXXXX)
# nginx workers drop to 'nobody' when started as root; they need to traverse the work dir.
chmod 755 "$WORK"
PIDS=()          # every process we started, killed by PID in reverse order on exit
HOLD_FD_OPEN=0
cleanup() {
  local rc=$? pid i
  trap - EXIT INT TERM
  [ $HOLD_FD_OPEN = 1 ] && exec 7>&-
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill -TERM "${PIDS[i]}" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "${KEEP_WORK:-0}" = 1 ]; then say "work dir kept: $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- configs
mapfile -t PORTS < <("${PY[@]}" ports 12)
UP_PORT=${PORTS[0]}
# auth and risk: the check services of calls mode (wrk also measures them directly).
declare -A PORT=([nginx]=${PORTS[1]} [gatehouse]=${PORTS[2]} [haproxy]=${PORTS[3]} [auth]=${PORTS[5]} [risk]=${PORTS[6]}
  [tmux]=${PORTS[7]} [texcl]=${PORTS[8]})
ADMIN_PORT=${PORTS[4]}
# HTTPS listeners of https mode.
declare -A TLS_PORT=([nginx]=${PORTS[10]} [gatehouse]=${PORTS[11]})
declare -A MEASURED   # slot -> PIDs whose CPU and memory are measured
declare -A CPU_NOTE

# nginx touches its whole connection array at start, so worker_connections sets its base RSS:
# room for the idle connections in idle mode, a modest table otherwise.
if [ "$MODE" = idle ]; then PROXY_WORKER_CONNS=$((IDLE_CONNS + 1024)); else PROXY_WORKER_CONNS=4096; fi
NOFILE=$(ulimit -n)
# haproxy wants about 2 descriptors per maxconn and refuses to start above the limit.
HAPROXY_MAXCONN=$(((NOFILE - 200) / 2))
[ "$HAPROXY_MAXCONN" -gt 40000 ] && HAPROXY_MAXCONN=40000
BODY100=$(printf 'a%.0s' $(seq 100))
NGINX_V=$(nginx -V 2>&1)
# Temp paths point into the work dir; emit only those of modules compiled in.
nginx_temp_paths() {
  local d=$1 m
  echo "client_body_temp_path $d/body;"
  for m in proxy fastcgi uwsgi scgi; do
    grep -q -- "--without-http_${m}_module" <<<"$NGINX_V" || echo "${m}_temp_path $d/$m;"
  done
}

write_upstream_conf() {
  local d=$WORK/upstream
  mkdir -p "$d/www"
  head -c 4096 /dev/zero | tr '\0' b >"$d/www/4k"
  head -c 65536 /dev/zero | tr '\0' c >"$d/www/64k"
  chmod -R a+rX "$d"
  cat >"$d/nginx.conf" <<EOF
# Upstream: the origin both proxies call. On LOAD_CPU with wrk; fixed answers, no logs.
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile $NOFILE;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  client_body_buffer_size 16k;
  open_file_cache max=16;
  $(nginx_temp_paths "$d")
  server {
    listen 127.0.0.1:$UP_PORT backlog=4096;
    $([ "$MODE" != blackhole ] || echo "listen 127.0.0.2:$UP_PORT backlog=4096; listen 127.0.0.3:$UP_PORT backlog=4096;")
    root $d/www;
    location = /100 { return 200 "$BODY100"; }
    location = /4k { }
    location = /64k { }
    # POST 2 KiB: 'return' reads and discards the body, keeping the connection alive.
    location = /post { return 200 "$BODY100"; }
    # Connections accepted so far (reconfig mode: does a change make the gateway reconnect?).
    location = /_status { stub_status; }
  }
}
EOF
}

write_nginx_proxy_conf() {
  local slot=$1 d=$WORK/$1
  mkdir -p "$d"
  cat >"$d/nginx.conf" <<EOF
# nginx reverse proxy under test: 1 worker, upstream keep-alive pool, no access log.
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile $NOFILE;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections $PROXY_WORKER_CONNS; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  $(nginx_temp_paths "$d")
  upstream up {
    server 127.0.0.1:$UP_PORT;
    keepalive 64;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
  }
  server {
    listen 127.0.0.1:${PORT[$slot]} backlog=4096;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # Stream answers larger than the buffers instead of spilling them to a temp file.
      proxy_max_temp_file_size 0;
    }
  }
$(nginx_extra_conf "$slot" || true)
}
EOF
}

write_haproxy_conf() {
  local slot=$1 d=$WORK/$1
  mkdir -p "$d"
  cat >"$d/haproxy.cfg" <<EOF
# haproxy under test: one thread, server-side connection reuse, no logs.
global
  nbthread 1
  maxconn $HAPROXY_MAXCONN
defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 300s
frontend fe
  bind 127.0.0.1:${PORT[$slot]}
  default_backend be
backend be
  http-reuse always
  server up 127.0.0.1:$UP_PORT
EOF
}

write_gatehouse_conf() {
  local d=$WORK/gatehouse
  mkdir -p "$d/state"
  cat >"$d/gatehouse.toml" <<EOF
# Gatehouse under test: one worker, one route to the shared upstream.
[server]
workers = 1
listen = ["127.0.0.1:${PORT[gatehouse]}"]
state_dir = "$d/state"

[admin]
listen = "127.0.0.1:$ADMIN_PORT"

[[upstreams]]
id = "up"
nodes = [{ addr = "127.0.0.1:$UP_PORT" }]
max_idle = $GW_MAX_IDLE

[[routes]]
id = "all"
paths = ["/*"]
upstream = "up"
$(gatehouse_extra_conf || true)
EOF
}

# What a mode or scenario adds to the configs (modes/*.sh write the sections themselves).
gatehouse_extra_conf() {
  case $MODE in
    bench | smoke) if [[ ,$SCENARIOS, == *,modules,* ]]; then gatehouse_modules_conf; fi ;;
    calls) gatehouse_calls_conf ;;
    thrift) gatehouse_thrift_conf ;;
    slowloris) gatehouse_slowloris_conf ;;
    https) gatehouse_https_conf ;;
  esac
}
nginx_extra_conf() {
  case $MODE in
    calls) nginx_calls_conf "$1" ;;
    slowloris) nginx_slowloris_conf ;;
    https) nginx_https_conf "$1" ;;
  esac
}

# ---------------------------------------------------------------- processes
# start_bg CPU LOG CMD...: starts CMD pinned to CPU, records its PID in PIDS and LAST_PID.
start_bg() {
  local cpu=$1 log=$2; shift 2
  setsid taskset -c "$cpu" "${BOOST[@]}" "$@" >"$log" 2>&1 </dev/null &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

wait_ready() {
  local name=$1 port=$2 pid=$3 log=$4
  if ! "${PY[@]}" wait-http "http://127.0.0.1:$port/100" 20 "$pid"; then
    kill -0 "$pid" 2>/dev/null || say "$name exited early"
    say "last lines of $log:"; tail -n 20 "$log" >&2 || true
    die "$name did not answer on port $port"
  fi
}

start_nginx_slot() {
  local slot=$1 d=$WORK/$1 kids
  write_nginx_proxy_conf "$slot"
  start_bg "$PROXY_CPU" "$d/out.log" nginx -p "$d" -c "$d/nginx.conf" -e "$d/error.log"
  wait_ready "$slot (nginx)" "${PORT[$slot]}" "$LAST_PID" "$d/error.log"
  kids=$("${PY[@]}" children "$LAST_PID")
  [ "$(wc -w <<<"$kids")" = 1 ] || die "expected one nginx worker under $LAST_PID, got: $kids"
  MEASURED[$slot]=$kids
  PIDS+=("$kids")
  CPU_NOTE[$slot]="nginx worker process only (the master is idle)"
}

start_haproxy_slot() {
  local slot=$1 d=$WORK/$1
  write_haproxy_conf "$slot"
  start_bg "$PROXY_CPU" "$d/out.log" haproxy -db -f "$d/haproxy.cfg"
  wait_ready "$slot (haproxy)" "${PORT[$slot]}" "$LAST_PID" "$d/out.log"
  MEASURED[$slot]=$LAST_PID
  CPU_NOTE[$slot]="the haproxy process (1 thread)"
}

start_gatehouse_slot() {
  local d=$WORK/gatehouse cmd
  case $GATEHOUSE_CMD in
    nginx) start_nginx_slot gatehouse; CPU_NOTE[gatehouse]="stand-in: ${CPU_NOTE[gatehouse]}"; return ;;
    haproxy) start_haproxy_slot gatehouse; CPU_NOTE[gatehouse]="stand-in: ${CPU_NOTE[gatehouse]}"; return ;;
  esac
  write_gatehouse_conf
  cmd=$GATEHOUSE_CMD
  cmd=${cmd//\{config\}/$d/gatehouse.toml}
  cmd=${cmd//\{port\}/${PORT[gatehouse]}}
  cmd=${cmd//\{upstream\}/127.0.0.1:$UP_PORT}
  cmd=${cmd//\{admin\}/127.0.0.1:$ADMIN_PORT}
  cmd=${cmd//\{dir\}/$d}
  # 'exec' so the PID we hold (and measure) is the gateway itself, not a shell.
  start_bg "$PROXY_CPU" "$d/out.log" bash -c "exec $cmd"
  wait_ready "gatehouse ($cmd)" "${PORT[gatehouse]}" "$LAST_PID" "$d/out.log"
  MEASURED[gatehouse]=$LAST_PID
  CPU_NOTE[gatehouse]="the whole gateway process (all threads)"
}

# check_slot SLOT: every scenario answers 200 with the right body size before anything is timed.
check_slot() {
  local base="http://127.0.0.1:${PORT[$1]}"
  if ! { "${PY[@]}" check "$base/100" 100 && "${PY[@]}" check "$base/4k" 4096 &&
    "${PY[@]}" check "$base/64k" 65536 && "${PY[@]}" check "$base/post" 100 --post 2048; }; then
    die "$1 gives wrong answers (see above)"
  fi
  if [[ $MODE =~ ^(bench|smoke)$ ]] && [[ ,$SCENARIOS, == *,modules,* ]]; then check_modules_slot "$1"; fi
}

scenario_path() { case $1 in get100) echo /100 ;; get4k) echo /4k ;; get64k) echo /64k ;; post2k) echo /post ;; modules) echo "$MOD_PATH" ;; esac; }

# run_wrk OUTFILE SECONDS SLOT PATH [LUA]: one bounded wrk run on LOAD_CPU.
run_wrk() {
  local out=$1 secs=$2 slot=$3 path=$4 lua=${5:-} pid
  # WRK_CONNS, when set, overrides CONNS (calls and reconfig modes use fewer connections).
  local args=(-t1 "-c${WRK_CONNS:-$CONNS}" "-d${secs}s" --latency --timeout 5s)
  [ -n "$lua" ] && args+=(-s "$lua")
  # WRK_HEADER, when set, is one more request header (https mode: Connection: close).
  [ -n "${WRK_HEADER:-}" ] && args+=(-H "$WRK_HEADER")
  local base="http://127.0.0.1:${PORT[$slot]}"
  [ "$MODE" = https ] && base="https://127.0.0.1:${TLS_PORT[$slot]}"
  setsid taskset -c "$LOAD_CPU" "${BOOST[@]}" wrk "${args[@]}" "$base$path" >"$out" 2>&1 </dev/null &
  pid=$!
  PIDS+=("$pid")
  if ! wait "$pid"; then cat "$out" >&2; die "wrk failed against $slot"; fi
}

# measured_pids SLOT: the PIDs whose CPU and memory count for SLOT, one per word.
measured_pids() { local pids; read -ra pids <<<"${MEASURED[$1]}"; printf '%s\n' "${pids[@]}"; }

sum_field() {
  local slot=$1 field=$2 total=0 p
  for p in $(measured_pids "$slot"); do total=$((total + $("${PY[@]}" mem "$p" "$field"))); done
  echo "$total"
}

# timed_wrk OUT SECS SLOT PATH [LUA]: run_wrk, plus the proxy's CPU ticks and its CPU's busy and
# total ticks taken just around it, left in TIMING as key=value words for harness.py.
timed_wrk() {
  local b0 s0 b1 s1 t0 t1
  read -r b0 s0 < <("${PY[@]}" cpustat "$PROXY_CPU")
  # shellcheck disable=SC2046 # one PID per word
  t0=$("${PY[@]}" ticks $(measured_pids "$3"))
  run_wrk "$@"
  # shellcheck disable=SC2046
  t1=$("${PY[@]}" ticks $(measured_pids "$3"))
  read -r b1 s1 < <("${PY[@]}" cpustat "$PROXY_CPU")
  TIMING=("t0=$t0" "t1=$t1" "busy0=$b0" "tot0=$s0" "busy1=$b1" "tot1=$s1")
}

# The modes and the modules scenario: functions only, called below.
# shellcheck source=modes/idle.sh
. "$HERE/modes/idle.sh"
# shellcheck source=modes/modules.sh
. "$HERE/modes/modules.sh"
# shellcheck source=modes/calls.sh
. "$HERE/modes/calls.sh"
# shellcheck source=modes/reconfig.sh
. "$HERE/modes/reconfig.sh"
# shellcheck source=modes/thrift.sh
. "$HERE/modes/thrift.sh"
# shellcheck source=modes/slowloris.sh
. "$HERE/modes/slowloris.sh"
# shellcheck source=modes/upgrade.sh
. "$HERE/modes/upgrade.sh"
# shellcheck source=modes/blackhole.sh
. "$HERE/modes/blackhole.sh"
# shellcheck source=modes/https.sh
. "$HERE/modes/https.sh"

# ---------------------------------------------------------------- start everything
say "mode $MODE; proxies ${PROXY_LIST[*]}; proxy on CPU $PROXY_CPU, wrk+upstream on CPU $LOAD_CPU; nice $NICE, slice ${SLICE_US} µs; work dir $WORK"
write_upstream_conf
[[ ,$SCENARIOS, == *,modules,* ]] && [[ $MODE =~ ^(bench|smoke)$ ]] && prepare_modules
[ "$MODE" = calls ] && start_check_services
[ "$MODE" = thrift ] && start_thrift_backend
[ "$MODE" = https ] && make_tls_cert
start_bg "$LOAD_CPU" "$WORK/upstream/out.log" nginx -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" -e "$WORK/upstream/error.log"
wait_ready upstream "$UP_PORT" "$LAST_PID" "$WORK/upstream/error.log"
PIDS+=("$("${PY[@]}" children "$LAST_PID")")
for p in "${PROXY_LIST[@]}"; do
  case $p in
    nginx) start_nginx_slot nginx ;;
    haproxy) start_haproxy_slot haproxy ;;
    gatehouse) start_gatehouse_slot ;;
  esac
  check_slot "$p"
  say "$p ready on port ${PORT[$p]}, measuring PID(s) ${MEASURED[$p]} (${CPU_NOTE[$p]})"
done

cat >"$WORK/post.lua" <<'EOF'
-- POST a 2 KiB body on every request (wrk reuses the same request bytes).
wrk.method = "POST"
wrk.body = string.rep("p", 2048)
wrk.headers["Content-Type"] = "application/octet-stream"
EOF

RUNS=$WORK/runs.jsonl
: >"$RUNS"
cpu_note=""
for p in "${PROXY_LIST[@]}"; do cpu_note+="$p: ${CPU_NOTE[$p]}; "; done
meta=("mode=$MODE" "proxies=$PROXIES" "gatehouse_cmd=$GATEHOUSE_CMD" "duration=$DURATION"
  "rounds=$ROUNDS" "conns=$CONNS" "idle_conns=$IDLE_CONNS" "warmup=$WARMUP" "proxy_cpu=$PROXY_CPU"
  "load_cpu=$LOAD_CPU" "nice=$NICE" "slice_us=$SLICE_US"
  "cpu_note=${cpu_note%; }" "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  "git=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)"
  # Which gateway build ran: the binary's time, and GATEWAY_SOURCE (free text, e.g. the commit
  # it was built from when that differs from the work tree's HEAD).
  "gateway_built=$(stat -c %y "${GATEHOUSE_CMD%% *}" 2>/dev/null || echo -)" "gateway_source=${GATEWAY_SOURCE:-}"
  "host=$(uname -r), $NCPU cpus" "nginx=$(nginx -v 2>&1 | sed 's/.*: //')"
  "wrk=$( (wrk -v 2>&1 || true) | head -n1 | cut -d' ' -f1-2)" "scenarios=$SCENARIOS"
  "call_conns=$CALL_CONNS" "call_delays_us=$CALL_DELAYS_US" "target_pct=$TARGET_PCT" "change_ms=$CHANGE_MS")

# ---------------------------------------------------------------- idle, calls, reconfig, thrift
if [ "$MODE" != bench ] && [ "$MODE" != smoke ]; then
  "run_${MODE}_mode"
  exit 0
fi

# ---------------------------------------------------------------- bench / smoke
"${PY[@]}" row-header
for sc in "${SCENARIO_LIST[@]}"; do
  path=$(scenario_path "$sc")
  lua=""; [ "$sc" = post2k ] && lua=$WORK/post.lua
  [ "$sc" = modules ] && lua=$WORK/modules.lua
  if [ "$WARMUP" -gt 0 ]; then
    for p in "${PROXY_LIST[@]}"; do run_wrk "$WORK/warm.txt" "$WARMUP" "$p" "$path" "$lua"; done
  fi
  for ((r = 1; r <= ROUNDS; r++)); do
    # Rotate the order every round so no proxy always runs first (or last) in a round.
    n=${#PROXY_LIST[@]}
    for ((k = 0; k < n; k++)); do
      p=${PROXY_LIST[$(((k + r - 1) % n))]}
      # Reset VmHWM to the current RSS so the peak is this run's (Linux 4.0+).
      for pid in $(measured_pids "$p"); do echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true; done
      timed_wrk "$WORK/wrk-$sc-$p-$r.txt" "$DURATION" "$p" "$path" "$lua"
      "${PY[@]}" record "$RUNS" scenario="$sc" proxy="$p" round="$r" "measured=${MEASURED[$p]}" "${TIMING[@]}" \
        hwm="$(sum_field "$p" VmHWM)" wrk="$WORK/wrk-$sc-$p-$r.txt"
    done
  done
done
"${PY[@]}" summary "$RUNS" "$OUT" "${meta[@]}" "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)"
