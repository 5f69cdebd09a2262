#!/usr/bin/env bash
# Sets up what the test suites need on a fresh Debian machine, then runs every check:
# formatting, clippy (warnings are errors), and all unit and end-to-end tests.
# This is the README's test command; .ci/run calls it as is.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Debian packages the suites use as real peers (Thrift compiler for the interop suite).
need=()
command -v thrift >/dev/null 2>&1 || need+=(thrift-compiler)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "==> installing ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "==> missing Debian packages: ${need[*]} (run: sudo apt-get install -y ${need[*]})" >&2
  fi
fi

# A Python venv with the Thrift and WebSocket libraries, for the Python peers.
VENV=${GATEHOUSE_VENV:-$PWD/target/venv}
if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating $VENV"
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -c 'import thrift' >/dev/null 2>&1 || "$VENV/bin/pip" install -q 'thrift==0.25.0'
# The WebSocket suite's real echo server and client (tests/suites/websocket/peer.py).
"$VENV/bin/python" -c 'import websockets' >/dev/null 2>&1 || "$VENV/bin/pip" install -q 'websockets==15.0.1'
export GATEHOUSE_PYTHON="$VENV/bin/python"

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> cargo build (binary for the end-to-end suites)"
cargo build -p access --bin gatehouse
echo "==> cargo test"
cargo test --workspace -- --test-threads=4
