# shellcheck shell=bash
# perf/modes/modules.sh — sourced by run.sh: the `modules` scenario of bench and smoke.
#
# The same request goes to every proxy: GET /100?id=42 with Host modules.test, an HS256 JWT in
# Authorization and a User-Agent. Gatehouse serves it through a route (picked by that host)
# with ip_list + params + waf (sqli, xss) + rate_limit + jwt; nginx proxies it plainly. The
# question is what the business layer costs against nginx's bare proxying (target: at least
# 0.8x nginx's req/s). Every module is configured so the request passes (the rate limit at
# 10,000,000/s never triggers), and check_modules_slot proves each one is really on by sending
# a request it must refuse.

MOD_HOST=modules.test
MOD_PATH='/100?id=42'
MOD_UA='Mozilla/5.0 (X11; Linux x86_64) perf-harness/1.0'
# At least 32 bytes (RFC 7518 3.2), as the consumer model requires.
JWT_SECRET=perf-jwt-secret-0123456789abcdef-0123456789
MODPY=(python3 "$HERE/modes.py")

gatehouse_modules_conf() {
  cat <<EOF

# modules scenario: the business layer on one route, picked by Host.
[[modules]]
id = "perf-ip"
kind = "ip_list"
allow = ["127.0.0.0/8"]
deny = ["127.0.0.99"]

[[modules]]
id = "perf-params"
kind = "params"

[[modules.params]]
name = "id"
in = "query"
required = true
type = "int"
min = 1
max = 1000000

[[modules]]
id = "perf-waf"
kind = "waf"
sets = ["sqli", "xss"]

[[modules]]
id = "perf-rate"
kind = "rate_limit"
rate = 10000000
burst = 10000000
key = "ip"

[[modules]]
id = "perf-jwt"
kind = "jwt"

[[consumers]]
id = "perf-app"
jwt = { algorithm = "HS256", key = "$JWT_SECRET" }

[[routes]]
id = "modules"
hosts = ["$MOD_HOST"]
paths = ["/*"]
upstream = "up"
modules = ["perf-ip", "perf-params", "perf-waf", "perf-rate", "perf-jwt"]
EOF
}

# prepare_modules: mints the token (valid one day) and writes the wrk script with its fields.
prepare_modules() {
  MOD_TOKEN=$("${MODPY[@]}" jwt "$JWT_SECRET" perf-app 86400)
  MOD_HEADERS=(--header "Host: $MOD_HOST" --header "Authorization: Bearer $MOD_TOKEN"
    --header "User-Agent: $MOD_UA")
  "${MODPY[@]}" wrk-lua "$WORK/modules.lua" "${MOD_HEADERS[@]}"
}

# check_modules_slot SLOT: the scenario's request answers 200 with the 100-byte body; on a real
# Gatehouse, each module also refuses what it must (so none is silently off).
check_modules_slot() {
  local slot=$1 base="http://127.0.0.1:${PORT[$1]}" ok=1 refusals="none (plain proxy)"
  local plain=(--header "Host: $MOD_HOST" --header "User-Agent: $MOD_UA")
  "${MODPY[@]}" check "$base$MOD_PATH" 200 100 "${MOD_HEADERS[@]}" || ok=0
  if [ "$slot" = gatehouse ] && [ "$GATEHOUSE_CMD" != nginx ] && [ "$GATEHOUSE_CMD" != haproxy ]; then
    # jwt: no token; params: not an int, missing; waf: sqli and xss in the query; ip_list: a
    # denied loopback source address. (rate_limit cannot be made to refuse at 10M/s; its
    # presence is checked through the admin API below.)
    "${MODPY[@]}" check "$base$MOD_PATH" 401 -1 "${plain[@]}" || ok=0
    "${MODPY[@]}" check "$base/100?id=abc" 400 -1 "${MOD_HEADERS[@]}" || ok=0
    "${MODPY[@]}" check "$base/100" 400 -1 "${MOD_HEADERS[@]}" || ok=0
    "${MODPY[@]}" check "$base/100?id=1&q=%27%20or%20%271%27%3D%271" 403 -1 "${MOD_HEADERS[@]}" || ok=0
    "${MODPY[@]}" check "$base/100?id=1&q=%3Cscript%3Ealert(1)%3C/script%3E" 403 -1 "${MOD_HEADERS[@]}" || ok=0
    "${MODPY[@]}" check "$base$MOD_PATH" 403 -1 "${MOD_HEADERS[@]}" --source 127.0.0.99 || ok=0
    "${MODPY[@]}" check "http://127.0.0.1:$ADMIN_PORT/admin/v1/modules/perf-rate" 200 -1 || ok=0
    refusals="jwt 401, params 400 x2, waf sqli+xss 403, ip_list 403; rate_limit present"
  fi
  [ $ok = 1 ] || die "$slot: the modules scenario's checks failed (see above)"
  say "$slot: modules scenario answers 200; refusals checked: $refusals"
}
