# shellcheck shell=bash
# perf/modes/thrift.sh — sourced by run.sh: `run.sh thrift`.
#
# What turning JSON into Thrift and back costs, and what the multiplexed pool saves. Gatehouse
# alone (nginx does not speak Thrift), one worker on PROXY_CPU; a Rust Thrift backend
# (src/bin/thrift_backend.rs: our codecs on a mio loop, binary + framed) on LOAD_CPU beside
# wrk and the upstream nginx. Cases, interleaved round by round, wrk -cCONNS each:
#
#   plain-json    GET /product.json: plain HTTP proxying to nginx, which serves a file holding
#                 the very bytes the Thrift route answers (captured at start): the same-sized
#                 JSON answer, without any conversion
#   thrift-mux    GET /rpc/mux/42: getProduct(42) through an upstream with max_in_flight = 32
#                 (several calls per connection); JSON answer built from the Thrift reply
#   thrift-excl   GET /rpc/excl/42: the same call through an upstream with max_in_flight = 1,
#                 i.e. one call per connection at a time, as an exclusive pool works
#
# The two Thrift upstreams point at two ports of the same backend process, so each has its own
# connections; during every run the established connections on that port are sampled each
# 200 ms (ss) and the largest count is recorded.
#
# Verdicts: thrift-mux req/s >= 0.8x plain-json (paired by round); upstream connections of
# thrift-excl / thrift-mux >= 4 at the same or better throughput.

THRIFT_TAGS=${THRIFT_TAGS:-8}

# The IDL of the backend (thrift_backend.rs answers getProduct of this service).
write_thrift_idl() {
  cat >"$WORK/gatehouse/products.thrift" <<'EOF'
namespace rs perf

enum Category { BOOKS = 1, GAMES = 2, TOOLS = 3 }

struct Product {
  1: required i64 id,
  2: required string name,
  3: optional Category category,
  4: optional double price,
  5: optional list<string> tags,
}

service ProductService {
  Product getProduct(1: i64 id),
}
EOF
}

gatehouse_thrift_conf() {
  mkdir -p "$WORK/gatehouse"
  write_thrift_idl
  cat <<EOF

# thrift mode: one IDL, two Thrift upstreams (two ports of one backend), a route to each.
[[services]]
id = "products"
files = [{ name = "products.thrift", path = "$WORK/gatehouse/products.thrift" }]

[[upstreams]]
id = "thrift-mux"
protocol = "thrift"
max_in_flight = 32
max_connections = 64
max_pending = 4096
nodes = [{ addr = "127.0.0.1:${PORT[tmux]}" }]

[[upstreams]]
id = "thrift-excl"
protocol = "thrift"
max_in_flight = 1
max_connections = 64
max_pending = 4096
nodes = [{ addr = "127.0.0.1:${PORT[texcl]}" }]

[[routes]]
id = "rpc-mux"
paths = ["/rpc/mux/{id}"]
methods = ["GET"]
upstream = "thrift-mux"
service = "products"
method = "getProduct"

[[routes]]
id = "rpc-excl"
paths = ["/rpc/excl/{id}"]
methods = ["GET"]
upstream = "thrift-excl"
service = "products"
method = "getProduct"
EOF
}

# start_thrift_backend: builds thrift_backend (release) and starts it on LOAD_CPU, both ports.
start_thrift_backend() {
  say "building thrift_backend"
  (cd "$ROOT" && cargo build -q --release -p perf --bin thrift_backend) >&2
  start_bg "$LOAD_CPU" "$WORK/thrift_backend.log" "$TARGET/release/thrift_backend" \
    "127.0.0.1:${PORT[tmux]}" "127.0.0.1:${PORT[texcl]}" --tags "$THRIFT_TAGS"
  for _ in $(seq 100); do
    [ "$(grep -c '^listening' "$WORK/thrift_backend.log")" = 2 ] && break
    kill -0 "$LAST_PID" 2>/dev/null || { cat "$WORK/thrift_backend.log" >&2; die "thrift_backend exited"; }
    sleep 0.05
  done
  [ "$(grep -c '^listening' "$WORK/thrift_backend.log")" = 2 ] || die "thrift_backend did not listen"
}

# capture_thrift_answer: the Thrift route's JSON answer, saved as the upstream's /product.json
# (the plain case's same-sized answer). Run after Gatehouse is up, before the timed runs.
capture_thrift_answer() {
  local url="http://127.0.0.1:${PORT[gatehouse]}/rpc/mux/42" www=$WORK/upstream/www
  python3 - "$url" "$www/product.json" <<'EOF' || die "thrift mode: the Thrift route does not answer 200"
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    body = r.read()
    assert r.status == 200, r.status
open(sys.argv[2], "wb").write(body)
print(f"thrift answer: {len(body)} bytes: {body[:120]!r}...", file=sys.stderr)
EOF
  chmod a+r "$www/product.json"
  THRIFT_ANSWER_BYTES=$(stat -c %s "$www/product.json")
  for p in /rpc/excl/42 /product.json; do
    "${MODPY[@]}" check "http://127.0.0.1:${PORT[gatehouse]}$p" 200 "$THRIFT_ANSWER_BYTES" ||
      die "thrift mode: $p does not answer 200 with $THRIFT_ANSWER_BYTES bytes"
  done
}

# sample_conns PORT OUT: the most established connections on PORT seen every 200 ms until
# killed; written to OUT on each new maximum.
sample_conns() {
  local port=$1 out=$2 n max=0
  echo 0 >"$out"
  while :; do
    n=$(ss -Htn state established "( sport = :$port )" | wc -l)
    if [ "$n" -gt "$max" ]; then max=$n; echo "$max" >"$out"; fi
    sleep 0.2
  done
}

thrift_case_path() { case $1 in plain-json) echo /product.json ;; thrift-mux) echo /rpc/mux/42 ;; thrift-excl) echo /rpc/excl/42 ;; esac; }
thrift_case_port() { case $1 in thrift-mux) echo "${PORT[tmux]}" ;; thrift-excl) echo "${PORT[texcl]}" ;; *) echo "$UP_PORT" ;; esac; }

run_thrift_mode() {
  local cases=(plain-json thrift-mux thrift-excl) c r k n path sampler
  command -v ss >/dev/null || die "thrift mode needs ss (Debian iproute2)"
  capture_thrift_answer
  meta+=("thrift_answer_bytes=$THRIFT_ANSWER_BYTES" "thrift_tags=$THRIFT_TAGS")
  say "thrift mode: cases ${cases[*]}; answers of $THRIFT_ANSWER_BYTES bytes; wrk -c$CONNS"
  if [ "$WARMUP" -gt 0 ]; then
    for c in "${cases[@]}"; do run_wrk "$WORK/warm.txt" "$WARMUP" gatehouse "$(thrift_case_path "$c")"; done
  fi
  "${MODPY[@]}" row-header
  n=${#cases[@]}
  for ((r = 1; r <= ROUNDS; r++)); do
    for ((k = 0; k < n; k++)); do
      c=${cases[$(((k + r - 1) % n))]}
      path=$(thrift_case_path "$c")
      sample_conns "$(thrift_case_port "$c")" "$WORK/conns-$c-$r" &
      sampler=$!
      PIDS+=("$sampler")
      timed_wrk "$WORK/wrk-$c-$r.txt" "$DURATION" gatehouse "$path"
      kill "$sampler" 2>/dev/null || true
      wait "$sampler" 2>/dev/null || true
      "${MODPY[@]}" thrift-record "$RUNS" case="$c" proxy=gatehouse round="$r" conns="$CONNS" \
        "measured=${MEASURED[gatehouse]}" "${TIMING[@]}" wrk="$WORK/wrk-$c-$r.txt" \
        upstream_conns="$(cat "$WORK/conns-$c-$r")"
    done
  done
  "${MODPY[@]}" summary "$RUNS" "$OUT" "${meta[@]}" "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)"
}
