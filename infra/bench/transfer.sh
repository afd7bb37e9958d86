#!/usr/bin/env bash
# Benchmark of bulk import and export (issue: "Bulk customer import and export").
#  1. generates Shopify-format customer CSVs of 100,000 and 1,000,000 rows (tags, addresses);
#  2. parse + validate only (`import --dry-run`): rows/s and peak RSS;
#  3. full import into a fresh embedded store: rows/s and peak RSS;
#  4. export of the imported customers to CSV: rows/s and peak RSS;
#  5. full import into DynamoDB on moto (MOTO_ROWS, default 20,000, about twelve minutes; 0 skips
#     it; moto serves one request at a time, so this measures moto more than us): rows/s, and
#     moto's own memory at the end.
# Needs: python3, /usr/bin/time; moto in the test venv for step 5 (tests/run.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
WORK=$(mktemp -d)
BIN=$ROOT/target/server/local-server
SIZES=${SIZES:-"100000 1000000"}
# Only the moto this script started: `kill 0` would signal the whole process group.
trap 'if [ -n "${MOTO_PID:-}" ]; then kill "$MOTO_PID" 2>/dev/null || true; fi; rm -rf "$WORK"' EXIT

echo "==> release build"
cargo build --profile server -p functions --bin local-server 2>&1 | tail -1

generate() {
  python3 - "$1" "$2" <<'PY'
import csv, sys
rows, path = int(sys.argv[1]), sys.argv[2]
tags = ["VIP", "Newsletter", "Wholesale", "Retail", "B2B"]
with open(path, "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(["Customer ID", "First Name", "Last Name", "Email", "Accepts Email Marketing",
                "Default Address Company", "Default Address Address1", "Default Address Address2",
                "Default Address City", "Default Address Province Code", "Default Address Country Code",
                "Default Address Zip", "Default Address Phone", "Phone", "Accepts SMS Marketing",
                "Total Spent", "Total Orders", "Note", "Tax Exempt", "Tags"])
    for i in range(rows):
        w.writerow([f"'{7000000000000 + i}", f"First{i % 997}", f"Last, {i % 1009}", f"customer{i}@example.com",
                    "yes" if i % 2 else "no", f"Company {i % 5000}" if i % 3 == 0 else "",
                    f"{i % 9999} Main Street", "", "Springfield", "IL", "US", f"'{i % 100000:05}",
                    f"'+1 555 {i % 10000:04}", "", "no", "12.50", "1",
                    "note, with comma" if i % 50 == 0 else "", "no", tags[i % 5] if i % 4 else ""])
PY
}

measure() { # label, command...
  local label=$1; shift
  local out status=0
  out=$( { /usr/bin/time -f "PEAK_RSS_KB %M" "$@" ; } 2>&1 ) || status=$?
  if [ "$status" != 0 ]; then
    printf '%-34s FAILED (exit %s): %s\n' "$label" "$status" "$(tr '\r' '\n' <<<"$out" | grep -v '^\[' | tail -3)"
    return 0
  fi
  local line rss
  line=$(grep -E "rows/s" <<<"$out" | tail -1)
  rss=$(awk '/PEAK_RSS_KB/ {printf "%.0f MB", $2/1024}' <<<"$out")
  printf '%-34s %s | peak RSS %s\n' "$label" "$line" "$rss"
}

for rows in $SIZES; do
  file=$WORK/shopify-$rows.csv
  generate "$rows" "$file"
  echo "==> $rows rows ($(du -h "$file" | cut -f1))"
  export DATA_DIR=$WORK/data-$rows RUST_LOG=warn
  measure "parse+validate ($rows)" "$BIN" import --dry-run "$file"
  measure "import, embedded ($rows)" "$BIN" import "$file"
  measure "export, embedded ($rows)" "$BIN" export "$WORK/export-$rows.csv"
  rm -rf "$DATA_DIR" "$WORK/export-$rows.csv"
done

TOOLS=${TOOLS_VENV:-$HOME/.cache/customer-module/tools}
if [ "${MOTO_ROWS:-20000}" != 0 ] && [ -x "$TOOLS/bin/python" ]; then
  PORT=$("$TOOLS/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$TOOLS/bin/python" infra/moto_server.py -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
  MOTO_PID=$!
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/moto-api/" && break; sleep 0.1; done
  generate "${MOTO_ROWS:-20000}" "$WORK/shopify-moto.csv"
  echo "==> ${MOTO_ROWS:-20000} rows into DynamoDB on moto"
  DATA_DIR=$WORK/data-moto STORE=dynamodb TABLE_NAME=bench CREATE_TABLE=true \
    AWS_ENDPOINT_URL=http://127.0.0.1:$PORT AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
    measure "import, DynamoDB on moto (${MOTO_ROWS:-20000})" "$BIN" import "$WORK/shopify-moto.csv"
  echo "moto's own RSS at the end: $(( $(ps -o rss= -p "$MOTO_PID") / 1024 )) MB"
fi
