#!/usr/bin/env bash
# Benchmark of groups (issue: "Addresses, customer groups and memberships"), on the release build
# of the local server with the embedded store: adds 10,000 customers to a group in batches of
# 1,000, grows a second group to 100,000 members, pages both with `cursor` and compares the cost
# per page, and drives `GET /admin/customers?groups[]=<gid>&limit=50` with wrk.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
COUNT=${COUNT:-100000}
PORT=${BENCH_PORT:-9301}
WORK=$(mktemp -d)
BIN=$ROOT/target/server
# Only the server this script started: `kill 0` would signal the whole process group.
trap 'if [ -n "${SERVER_PID:-}" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi; rm -rf "$WORK"' EXIT
[ -x "$BIN/local-server" ] || cargo build --profile server -p functions --bin local-server
export DATA_DIR=$WORK/data ADMIN_EMAIL=bench@example.com ADMIN_PASSWORD=bench-password RUST_LOG=warn
"$BIN/local-server" seed-customers "$COUNT" >/dev/null
PORT=$PORT "$BIN/local-server" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/health" && break; sleep 0.1; done
export BASE=http://127.0.0.1:$PORT COUNT
export TOKEN=$(curl -sf -X POST "$BASE/auth/user/emailpass" -H 'content-type: application/json' \
  -d "{\"email\":\"$ADMIN_EMAIL\",\"password\":\"$ADMIN_PASSWORD\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
python3 - <<'PY'
import json, os, statistics, time, urllib.request
base, token = os.environ["BASE"], os.environ["TOKEN"]
def call(method, path, body=None):
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"authorization": "Bearer " + token, "content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)
ids, cursor = [], ""
while True:
    page = call("GET", f"/admin/customers?limit=1000&fields=id&cursor={cursor}")
    ids += [c["id"] for c in page["customers"]]
    cursor = page.get("next_cursor")
    if not cursor: break
small = call("POST", "/admin/customer-groups", {"name": "bench-small"})["customer_group"]["id"]
big = call("POST", "/admin/customer-groups", {"name": "bench-big"})["customer_group"]["id"]
call("POST", f"/admin/customer-groups/{small}/customers", {"add": ids[:100]})
t = time.perf_counter()
for i in range(0, 10000, 1000):
    call("POST", f"/admin/customer-groups/{big}/customers", {"add": ids[i:i + 1000]})
took = time.perf_counter() - t
print(f"add 10,000 members in batches of 1,000: {took:.2f} s ({10000 / took:.0f} members/s)")
t = time.perf_counter()
for i in range(10000, len(ids), 1000):
    call("POST", f"/admin/customer-groups/{big}/customers", {"add": ids[i:i + 1000]})
print(f"grow to {len(ids):,} members: {time.perf_counter() - t:.1f} s")
def page_times(group, pages):
    times, cursor = [], ""
    for _ in range(pages):
        t = time.perf_counter()
        page = call("GET", f"/admin/customers?groups={group}&limit=50&cursor={cursor}")
        times.append((time.perf_counter() - t) * 1000)
        cursor = page.get("next_cursor")
        if not cursor: break
    return page["count"], times
for name, group in (("100-member group", small), (f"{len(ids):,}-member group", big)):
    count, times = page_times(group, 200)
    print(f"page of 50 from a {name} (count {count}): median {statistics.median(times):.2f} ms over {len(times)} pages")
open(os.environ.get("GID_FILE", "/tmp/bench-gid"), "w").write(big)
PY
GID=$(cat /tmp/bench-gid)
out=$(BENCH_PATH="/admin/customers?groups%5B%5D=$GID&limit=50" wrk -t2 -c16 -d15s --latency -s "$ROOT/infra/bench/get_path.lua" "$BASE" 2>&1)
printf 'GET /admin/customers?groups[]=<100k group>&limit=50: %s req/s, p50 %s, p99 %s\n' \
  "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" "$(awk '$1=="50%" {print $2}' <<<"$out")" "$(awk '$1=="99%" {print $2}' <<<"$out")"
