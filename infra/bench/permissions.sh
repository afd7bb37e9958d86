#!/usr/bin/env bash
# Benchmark of permission checks (issue: "B2B companies, permission grants for customers, and staff
# roles"): a customer in 5 groups and a company, 100-resource checks, in process on the embedded
# store (checks/s, p50/p99, one task and several), then the number of DynamoDB requests one such
# check makes, counted by an SDK interceptor against moto (started here unless AWS_ENDPOINT_URL
# is set). Optimised build (`bench` profile), not timed tests.
set -euo pipefail
cd "$(dirname "$0")/../.."
TOOLS=${TOOLS:-$HOME/.cache/customer-module/tools}
PORT=${MOTO_PORT:-5077}
# Only the moto this script started: `kill 0` would signal the whole process group.
trap 'if [ -n "${MOTO_PID:-}" ]; then kill "$MOTO_PID" 2>/dev/null || true; fi' EXIT
if [ -z "${AWS_ENDPOINT_URL:-}" ] && [ -x "$TOOLS/bin/python" ]; then
  "$TOOLS/bin/python" infra/moto_server.py -H 127.0.0.1 -p "$PORT" >/dev/null 2>&1 &
  MOTO_PID=$!
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/moto-api/" && break; sleep 0.1; done
  export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
fi
cargo bench -p integration-tests --bench permission_checks
