#!/usr/bin/env bash
# Benchmark of the customer API (issue: "Admin customers end to end").
#  1. seeds N customers (default 100,000) into a fresh embedded store, through the use case;
#  2. serves it with a release build of the local server on loopback;
#  3. drives it with wrk (16 connections, 2 threads) and prints requests/s and p50/p99;
#  4. prints the size of Lambda binaries (arm64 with cargo-lambda when available — a sample, or
#     every one with LAMBDAS=all — else the native stripped release build), and the cold start of one Lambda binary against moto.
# Needs: wrk (apt-get install wrk), python3; cargo-lambda optional (pip install cargo-lambda).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
COUNT=${COUNT:-100000}
DURATION=${DURATION:-15s}
CONNECTIONS=${CONNECTIONS:-16}
PORT=${BENCH_PORT:-9300}
WORK=$(mktemp -d)
BIN=$ROOT/target/server
LAMBDA_BIN=$ROOT/target/release
# Only the processes this script started: `kill 0` would signal the whole process group.
stop_started() { for pid in ${SERVER_PID:-} ${MOTO_PID:-}; do kill "$pid" 2>/dev/null || true; done; }
trap 'stop_started; rm -rf "$WORK"' EXIT

command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk"; exit 1; }
echo "==> release builds: the local server (profile server, for speed), get-customer (release, as Lambda ships it)"
cargo build --profile server -p functions --bin local-server 2>&1 | tail -1
cargo build --release -p functions --bin get-customer 2>&1 | tail -1

export DATA_DIR=$WORK/data ADMIN_EMAIL=bench@example.com ADMIN_PASSWORD=bench-password RUST_LOG=warn
echo "==> seeding $COUNT customers into $DATA_DIR"
/usr/bin/time -f "seed peak RSS %M KB" "$BIN/local-server" seed-customers "$COUNT"

PORT=$PORT "$BIN/local-server" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/health" && break; sleep 0.1; done
BASE=http://127.0.0.1:$PORT
export TOKEN=$(curl -sf -X POST "$BASE/auth/user/emailpass" -H 'content-type: application/json' \
  -d "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
export IDS_FILE=$WORK/ids.txt
curl -sf "$BASE/admin/customers?limit=1000&fields=id" -H "authorization: Bearer $TOKEN" \
  | python3 -c 'import json,sys; [print(c["id"]) for c in json.load(sys.stdin)["customers"]]' >"$IDS_FILE"

run() {
  local name=$1 script=$2
  local out
  out=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$ROOT/infra/bench/$script" "$BASE" 2>&1)
  local rps p50 p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errors=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  printf '%-42s %10s req/s   p50 %8s   p99 %8s   non-2xx %s\n' "$name" "$rps" "$p50" "$p99" "${errors:-0}"
}
echo "==> load: $CONNECTIONS connections, $DURATION each, $COUNT customers"
run "GET /admin/customers/:id" get_by_id.lua
BENCH_PATH="/admin/customers?limit=20" run "GET /admin/customers?limit=20" get_path.lua
BENCH_PATH="/admin/customers?q=seed4242" run "GET /admin/customers?q=seed4242" get_path.lua
BENCH_PATH="/admin/customers?email=seed4242@example.com" run "GET /admin/customers?email=…" get_path.lua
run "POST /admin/customers" create.lua
echo "server peak RSS: $(awk '/VmHWM/ {print $2, $3}' /proc/$SERVER_PID/status)"
kill $SERVER_PID; SERVER_PID=

echo "==> Lambda binaries"
if command -v cargo-lambda >/dev/null && rustup target list --installed | grep -q aarch64-unknown-linux-gnu; then
  # A sample by default (every function links the same code); LAMBDAS=all builds every one.
  if [ "${LAMBDAS:-sample}" = all ]; then
    cargo lambda build --release --arm64 2>&1 | tail -1
  else
    cargo lambda build --release --arm64 --bin get-customer --bin create-customer --bin store-me --bin auth-sign-in --bin cognito-pre-token 2>&1 | tail -1
  fi
  for f in target/lambda/*/bootstrap; do printf '%-24s %s bytes (arm64, stripped)\n' "$(basename "$(dirname "$f")")" "$(stat -c %s "$f")"; done
else
  echo "(cargo-lambda or the aarch64 target missing: native release binaries, stripped)"
  for b in get-customer; do
    printf '%-24s %s bytes\n' "$b" "$(stat -c %s "$LAMBDA_BIN/$b")"
  done
fi

TOOLS=${TOOLS_VENV:-$HOME/.cache/customer-module/tools}
if [ -x "$TOOLS/bin/python" ]; then
  echo "==> cold start of get-customer (moto DynamoDB)"
  MOTO_PORT=$("$TOOLS/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$TOOLS/bin/python" infra/moto_server.py -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
  MOTO_PID=$!
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$MOTO_PORT/moto-api/" && break; sleep 0.1; done
  export AWS_ENDPOINT_URL=http://127.0.0.1:$MOTO_PORT AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
  export TABLE_NAME=bench STORE=dynamodb CREATE_TABLE=true
  python3 infra/bench/cold_start.py "$LAMBDA_BIN/get-customer" infra/events/get-customer.json 1 >/dev/null  # creates the table
  # The staff user the event's claims name, as an admin (roles are checked on every admin route).
  "$TOOLS/bin/python" - <<'PY'
import boto3
boto3.client("dynamodb", region_name="us-east-1").put_item(TableName="bench", Item={
    "pk": {"S": "USER#user_01M8BG77ZYM8TPMS04Z034K497"}, "sk": {"S": "#PROFILE"},
    "id": {"S": "user_01M8BG77ZYM8TPMS04Z034K497"}, "email": {"S": "bench@example.com"},
    "roles": {"L": [{"S": "admin"}]}, "created_at": {"S": "2026-01-01T00:00:00.000Z"},
    "updated_at": {"S": "2026-01-01T00:00:00.000Z"}, "entity_type": {"S": "user"}, "version": {"N": "0"}})
PY
  export CREATE_TABLE=false
  python3 infra/bench/cold_start.py "$LAMBDA_BIN/get-customer" infra/events/get-customer.json 20
fi
