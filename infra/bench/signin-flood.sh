#!/usr/bin/env bash
# Benchmark of a sign-in flood (password hashing must not exhaust memory): fires ATTEMPTS
# (default 200) concurrent POST /auth/customer/emailpass with unknown emails at the local
# server, each from its own loopback address by default (SOURCES=1: all from one), so that the
# per-address limit does not cut the flood short and the hashing pool is what bounds it. While
# the flood runs, /health is probed every 20 ms. Prints the answers by status, the server's
# RSS before and its peak (VmHWM), and /health latency. Targets: peak RSS < 300 MB and /health
# < 100 ms. A benchmark, not a test.
# Needs: python3, curl. Linux (every 127.x.y.z is loopback; /proc for RSS).
# BIN=path/to/dir-with-local-server skips the (heavy) build, e.g. a debug build for a quick look.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
ATTEMPTS=${ATTEMPTS:-200}
SOURCES=${SOURCES:-$ATTEMPTS}
PORT=${BENCH_PORT:-9310}
WORK=$(mktemp -d)
SERVER_PID=
stop() {
  # Only the server this script started, by its pid.
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap stop EXIT

if [ -z "${BIN:-}" ]; then
  echo "==> release build of the local server (profile server)"
  cargo build --profile server -p functions --bin local-server 2>&1 | tail -1
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/server
fi

export DATA_DIR=$WORK/data ADMIN_EMAIL=bench@example.com ADMIN_PASSWORD=bench-password RUST_LOG=warn
PORT=$PORT "$BIN/local-server" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
BASE=http://127.0.0.1:$PORT
for _ in $(seq 100); do curl -sf -o /dev/null "$BASE/health" && break; sleep 0.1; done
rss() { awk -v f="$1" '$1 == f":" {printf "%.0f MB", $2 / 1024}' "/proc/$SERVER_PID/status"; }
echo "==> $ATTEMPTS concurrent sign-ins from $SOURCES address(es); hashing slots: ${PASSWORD_HASH_CONCURRENCY:-one per core}"
echo "RSS before: $(rss VmRSS)"

python3 - "$PORT" "$ATTEMPTS" "$SOURCES" <<'EOF'
import http.client, json, statistics, sys, threading, time
from collections import Counter

port, attempts, sources = (int(a) for a in sys.argv[1:4])
statuses, lock = Counter(), threading.Lock()
start = threading.Barrier(attempts + 1)

def sign_in(n):
    source = ("127.0.%d.%d" % (1 + n % sources // 250, 1 + n % sources % 250), 0)
    body = json.dumps({"email": "nobody%d@example.com" % n, "password": "wrong password"})
    start.wait()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=source)
        conn.request("POST", "/auth/customer/emailpass", body, {"content-type": "application/json"})
        status = conn.getresponse().status
    except Exception as e:
        status = type(e).__name__
    with lock:
        statuses[status] += 1

threads = [threading.Thread(target=sign_in, args=(n,)) for n in range(attempts)]
for t in threads:
    t.start()
start.wait()
began = time.monotonic()
latencies = []
while any(t.is_alive() for t in threads):
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/health")
    conn.getresponse().read()
    latencies.append((time.monotonic() - t0) * 1000)
    time.sleep(0.02)
flood = time.monotonic() - began
latencies.sort()
p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
print("flood took %.1f s; answers: %s" % (flood, dict(sorted(statuses.items(), key=str))))
print("/health during the flood: %d probes, p50 %.1f ms, p99 %.1f ms, max %.1f ms"
      % (len(latencies), statistics.median(latencies), p99, latencies[-1]))
EOF
echo "RSS after: $(rss VmRSS), peak (VmHWM): $(rss VmHWM)"
