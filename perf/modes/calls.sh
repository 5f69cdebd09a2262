# shellcheck shell=bash
# perf/modes/calls.sh — sourced by run.sh: `run.sh calls`.
#
# What Gatehouse adds on top of side-service calls. Two check services (delay_service, on the
# load CPU) answer 200 after CALL_DELAYS_US; Gatehouse has three routes picked by Host:
# plain (no module), calls1.test (auth_service), calls2.test (auth_service + risk, which the
# gateway sends at once). wrk runs with few connections (CALL_CONNS), where latency is the
# gateway's own work plus the waits, not queueing. Cases, interleaved round by round:
#
#   direct-auth[/risk]   wrk straight to a check service: its real delay, overshoot included
#   nginx-plain          nginx proxying (no call): the same-run reference of a bare proxy hop
#   gatehouse-plain      Gatehouse proxying with no module
#   nginx-paced,         the plain route again, but each connection waits D_slowest between
#   gatehouse-paced      requests (wrk Lua delay): the same request rate as with calls, so the
#                        proxies sleep between requests as they do while a call is out. On a
#                        shared VM a wake-up after such a sleep costs far more than one under
#                        load; this case measures the hops alone, at that cost
#   nginx-1call          nginx with auth_request to the auth service (one call; nginx cannot
#                        make two such calls concurrently, so it has no 2-call case)
#   gatehouse-1call      auth_service only
#   gatehouse-2calls     auth_service + risk
#
# Headline: added p50 = p50(gateway with calls) - D_slowest, with D_slowest both as configured
# and as measured directly; the calls' own share, p50(calls) - p50(direct) - p50(paced plain)
# (hop counts: calls 6 + the wait, direct 2 + the wait, paced plain 4); and p50(2 calls) -
# p50(1 call), about 0 when the calls overlap.

# The services' delays in µs (one value: both services use it).
call_delay() { local d; IFS=, read -ra d <<<"$CALL_DELAYS_US"; echo "${d[$1]:-${d[0]}}"; }

gatehouse_calls_conf() {
  cat <<EOF

# calls mode: two check services and the routes that call them.
[[upstreams]]
id = "auth"
nodes = [{ addr = "127.0.0.1:${PORT[auth]}" }]

[[upstreams]]
id = "risk"
nodes = [{ addr = "127.0.0.1:${PORT[risk]}" }]

[[modules]]
id = "perf-auth"
kind = "auth_service"
upstream = "auth"
path = "/check"
timeout_ms = 1000

[[modules]]
id = "perf-risk"
kind = "risk"
upstream = "risk"
path = "/score"
timeout_ms = 1000

[[routes]]
id = "calls1"
hosts = ["calls1.test"]
paths = ["/*"]
upstream = "up"
modules = ["perf-auth"]

[[routes]]
id = "calls2"
hosts = ["calls2.test"]
paths = ["/*"]
upstream = "up"
modules = ["perf-auth", "perf-risk"]
EOF
}

# nginx_calls_conf SLOT: a server for calls1.test whose location asks the auth service first
# (auth_request, a keep-alive upstream like the proxied one).
nginx_calls_conf() {
  cat <<EOF
  upstream auth_svc {
    server 127.0.0.1:${PORT[auth]};
    keepalive 16;
  }
  server {
    listen 127.0.0.1:${PORT[$1]};
    server_name calls1.test;
    location / {
      auth_request /_auth;
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
    location = /_auth {
      internal;
      proxy_pass http://auth_svc/check;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
EOF
}

# start_check_services: builds delay_service (release: it is tiny) and starts both on LOAD_CPU.
start_check_services() {
  local svc i=0
  say "building delay_service"
  (cd "$ROOT" && cargo build -q --release -p perf --bin delay_service) >&2
  for svc in auth risk; do
    start_bg "$LOAD_CPU" "$WORK/$svc.log" "$TARGET/release/delay_service" "127.0.0.1:${PORT[$svc]}" \
      --delay-us "$(call_delay $i)"
    wait_ready "$svc service" "${PORT[$svc]}" "$LAST_PID" "$WORK/$svc.log"
    MEASURED[$svc]=$LAST_PID
    i=$((i + 1))
  done
}

# calls_case CASE: sets C_SLOT (who answers), C_HOST (which route) and C_PATH.
calls_case() {
  C_PATH=/100
  case $1 in
    direct-auth) C_SLOT=auth C_HOST=svc C_PATH=/check ;;
    direct-risk) C_SLOT=risk C_HOST=svc C_PATH=/score ;;
    *-plain) C_SLOT=${1%-plain} C_HOST=plain.test ;;
    *-paced) C_SLOT=${1%-paced} C_HOST=plain.test ;;
    *-1call) C_SLOT=${1%-1call} C_HOST=calls1.test ;;
    *-2calls) C_SLOT=${1%-2calls} C_HOST=calls2.test ;;
  esac
}

run_calls_mode() {
  local cases=(direct-auth) c p r k n want pace slow
  # The paced cases wait as long as the slowest service (whole ms: wrk's delay unit; >= 1).
  slow=$(call_delay 0); [ "$(call_delay 1)" -gt "$slow" ] && slow=$(call_delay 1)
  pace=$(((slow + 500) / 1000)); [ "$pace" -ge 1 ] || pace=1
  [ "$(call_delay 0)" != "$(call_delay 1)" ] && cases+=(direct-risk)
  for p in "${PROXY_LIST[@]}"; do
    case $p in
      nginx) cases+=(nginx-plain nginx-paced nginx-1call) ;;
      gatehouse)
        cases+=(gatehouse-plain gatehouse-paced gatehouse-1call)
        # A stand-in nginx makes one call at most (auth_request): no 2-call case for it.
        if [ "$GATEHOUSE_CMD" = nginx ] || [ "$GATEHOUSE_CMD" = haproxy ]; then
          say "calls mode: the stand-in has no 2-call route; gatehouse-2calls skipped"
        else
          cases+=(gatehouse-2calls)
        fi ;;
      *) say "calls mode: $p has no calls case, skipped" ;;
    esac
  done
  # One wrk script per case: the Host that picks the route, exact percentiles at the end.
  for c in "${cases[@]}"; do
    calls_case "$c"
    local lua_args=(--header "Host: $C_HOST" --header "Authorization: Bearer perf")
    [[ $c == *-paced ]] && lua_args+=(--pace-ms "$pace")
    "${MODPY[@]}" wrk-lua "$WORK/$c.lua" "${lua_args[@]}"
    want=100; [[ $c == direct-* ]] && want=0
    "${MODPY[@]}" check "http://127.0.0.1:${PORT[$C_SLOT]}$C_PATH" 200 "$want" --header "Host: $C_HOST" ||
      die "calls mode: case $c does not answer 200 with $want bytes"
  done
  say "calls mode: cases ${cases[*]}; wrk -c$CALL_CONNS; services answer after $CALL_DELAYS_US µs; paced cases wait $pace ms"
  meta+=("pace_ms=$pace")
  "${MODPY[@]}" row-header
  export WRK_CONNS=$CALL_CONNS
  if [ "$WARMUP" -gt 0 ]; then
    for c in "${cases[@]}"; do
      calls_case "$c"
      run_wrk "$WORK/warm.txt" "$WARMUP" "$C_SLOT" "$C_PATH" "$WORK/$c.lua"
    done
  fi
  n=${#cases[@]}
  for ((r = 1; r <= ROUNDS; r++)); do
    for ((k = 0; k < n; k++)); do
      c=${cases[$(((k + r - 1) % n))]}
      calls_case "$c"
      timed_wrk "$WORK/wrk-$c-$r.txt" "$DURATION" "$C_SLOT" "$C_PATH" "$WORK/$c.lua"
      "${MODPY[@]}" calls-record "$RUNS" case="$c" proxy="$C_SLOT" round="$r" conns="$CALL_CONNS" \
        "measured=${MEASURED[$C_SLOT]}" "${TIMING[@]}" wrk="$WORK/wrk-$c-$r.txt"
    done
  done
  unset WRK_CONNS
  "${MODPY[@]}" summary "$RUNS" "$OUT" "${meta[@]}" "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)"
}
