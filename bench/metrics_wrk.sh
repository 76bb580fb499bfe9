#!/usr/bin/env bash
# Metrics POST throughput of `sandra-tui serve` (SQLite) under wrk, on loopback only.
# The per-client limit is lifted for this run (one wrk client plays many); the 429 path is
# measured by bench/metrics_load.py. Usage: bench/metrics_wrk.sh [seconds] [connections...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-8}; shift || true
conns=${*:-16 32}
data=$(mktemp -d)
port=8799
SANDRA_METRICS_RATE_PER_MIN=10000000 SANDRA_DATA_DIR=$data .venv/bin/sandra-tui serve --port $port 2>"$data/serve.log" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
token=$(curl -s -XPOST "http://127.0.0.1:$port/api/sandra/token")
export KEY=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["value"])' "$token")
export SESSION=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["session_id"])' "$token")
cat > "$data/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEY")
wrk.body = '{"type":"realtime_latency","sessionId":"' .. os.getenv("SESSION") .. '","metrics":{"count":10,"avg":250.0,"min":120.0,"max":890.0,"p95":650.0,"p99":850.0},"timestamp":"2026-11-25T10:00:00Z"}'
LUA
for c in $conns; do
    echo "== $c connections, ${secs}s"
    wrk -t1 -c"$c" -d"${secs}s" --latency -s "$data/post.lua" "http://127.0.0.1:$port/api/sandra/metrics" \
        | grep -E "Requests/sec|50%|99%|Non-2xx"
done
