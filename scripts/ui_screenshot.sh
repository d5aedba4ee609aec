#!/usr/bin/env bash
# Look at a run in the Prefect UI: start a local server, run the nightly flow against it, and save
# screenshots of the flow-run page and its model-comparison artifact with headless Chromium
# (Debian package `chromium`). Usage: scripts/ui_screenshot.sh [OUT_DIR] [extra `collabflow run` options]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-ui-screenshots}"; shift || true
mkdir -p "$out"
export PREFECT_HOME="$out/prefect-home" PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1
port=4299
.venv/bin/prefect server start --host 127.0.0.1 --port "$port" > "$out/server.log" 2>&1 &
server=$!
trap 'kill $server' EXIT
export PREFECT_API_URL="http://127.0.0.1:$port/api"
for _ in $(seq 120); do curl -sf "$PREFECT_API_URL/health" > /dev/null && break; sleep 1; done
.venv/bin/collabflow run --warehouse "$out/warehouse" "$@"
post() { curl -sf -X POST "$PREFECT_API_URL/$1" -H 'content-type: application/json' -d "$2"; }
run_id=$(post flow_runs/filter '{"sort":"START_TIME_DESC","limit":1}' | .venv/bin/python -c "import json,sys; print(json.load(sys.stdin)[0]['id'])")
artifact=$(post artifacts/filter "{\"artifacts\":{\"flow_run_id\":{\"any_\":[\"$run_id\"]},\"key\":{\"any_\":[\"collabflow-model-comparison\"]}}}" \
  | .venv/bin/python -c "import json,sys; print(json.load(sys.stdin)[0]['id'])")
shot() {
  chromium --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
    --disable-sync --no-first-run --user-data-dir="$(mktemp -d)" --window-size=1700,1000 --virtual-time-budget=8000 \
    --screenshot="$1" "$2" 2> /dev/null
}
shot "$out/flow-run.png" "http://127.0.0.1:$port/runs/flow-run/$run_id"
shot "$out/model-comparison.png" "http://127.0.0.1:$port/artifacts/artifact/$artifact"
echo "screenshots in $out/"
