# shellcheck shell=bash
# perf/modes/https.sh — sourced by run.sh: `run.sh https`.
#
# TLS termination, Gatehouse against nginx with the same certificate (ECDSA P-256, made here
# with openssl), the same protocol and cipher (TLS 1.3, TLS_AES_128_GCM_SHA256; X25519 key
# exchange, both servers' default) and the same plain-HTTP upstream. Two scenarios,
# interleaved round by round like bench mode:
#
#   https-get100   keep-alive GET /100 over HTTPS (wrk -c CONNS): the record layer's cost
#   https-hs       GET /100 with `Connection: close`: every request is a new TCP connection
#                  and a full handshake, so req/s is handshakes per second
#
# Figures and the command are in perf/README.md ("HTTPS").

# The certificate both servers present.
make_tls_cert() {
  local d=$WORK/tls
  mkdir -p "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$d/key.pem" -out "$d/cert.pem" -subj /CN=perf.test \
    -addext "subjectAltName=DNS:perf.test" 2>/dev/null || die "openssl could not make a certificate"
  chmod -R a+rX "$d"
}

gatehouse_https_conf() {
  echo
  echo "# https mode: TLS 1.3 with one suite, the certificate nginx also serves."
  echo "[tls]"
  echo "listen = [\"127.0.0.1:${TLS_PORT[gatehouse]}\"]"
  echo "versions = [\"1.3\"]"
  echo "ciphers = [\"TLS13_AES_128_GCM_SHA256\"]"
  echo
  echo "[[certificates]]"
  echo "id = \"perf\""
  echo "cert = \"\"\"$(cat "$WORK/tls/cert.pem")\"\"\""
  echo "key = \"\"\"$(cat "$WORK/tls/key.pem")\"\"\""
  echo "default = true"
}

# nginx_https_conf SLOT: the same proxying location behind an ssl listener.
nginx_https_conf() {
  echo "  server {"
  echo "    listen 127.0.0.1:${TLS_PORT[$1]} ssl backlog=4096;"
  echo "    ssl_certificate $WORK/tls/cert.pem;"
  echo "    ssl_certificate_key $WORK/tls/key.pem;"
  echo "    ssl_protocols TLSv1.3;"
  echo "    ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;"
  echo "    location / {"
  echo "      proxy_pass http://up;"
  echo "      proxy_http_version 1.1;"
  echo "      proxy_set_header Connection \"\";"
  echo "      proxy_max_temp_file_size 0;"
  echo "    }"
  echo "  }"
}

run_https_mode() {
  local sc p r k n hdr pid
  for p in "${PROXY_LIST[@]}"; do
    curl -sk --fail -o /dev/null "https://127.0.0.1:${TLS_PORT[$p]}/100" ||
      die "$p does not answer over HTTPS on port ${TLS_PORT[$p]}"
  done
  "${PY[@]}" row-header
  for sc in https-get100 https-hs; do
    hdr=""
    [ "$sc" = https-hs ] && hdr="Connection: close"
    if [ "$WARMUP" -gt 0 ]; then
      for p in "${PROXY_LIST[@]}"; do WRK_HEADER=$hdr run_wrk "$WORK/warm.txt" "$WARMUP" "$p" /100; done
    fi
    for ((r = 1; r <= ROUNDS; r++)); do
      n=${#PROXY_LIST[@]}
      for ((k = 0; k < n; k++)); do
        p=${PROXY_LIST[$(((k + r - 1) % n))]}
        for pid in $(measured_pids "$p"); do echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true; done
        WRK_HEADER=$hdr timed_wrk "$WORK/wrk-$sc-$p-$r.txt" "$DURATION" "$p" /100
        "${PY[@]}" record "$RUNS" scenario="$sc" proxy="$p" round="$r" "measured=${MEASURED[$p]}" "${TIMING[@]}" \
          hwm="$(sum_field "$p" VmHWM)" wrk="$WORK/wrk-$sc-$p-$r.txt"
      done
    done
  done
  "${PY[@]}" summary "$RUNS" "$OUT" "${meta[@]}" "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)"
  exit 0
}
