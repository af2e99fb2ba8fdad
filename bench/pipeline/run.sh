#!/usr/bin/env bash
# bench/pipeline - orders from import to paid/failed through every service.
# Needs the stack and services (`make up`). Usage:
#   bench/pipeline/run.sh [ORDERS] [RATE]     (default 20000 orders, as fast as possible)
# Stock: 50 SKUs with enough units for about 90% of the demand.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
cd "$ROOT"
. .oms/env
ORDERS=${1:-20000}
RATE=${2:-0}
BIN=${BUILD_DIR:-build}
tag=$(date +%s)
# Demand: 4 lines of 1-3 units (2 on average) over 50 SKUs.
per_sku=$(( ORDERS * 4 * 2 * 9 / 10 / 50 ))
csv=$(mktemp)
{ echo "sku,name,on_hand,price"
  for i in $(seq 0 49); do printf 'BENCH-SKU-%03d,Bench product %d,%d,1.00\n' "$i" "$i" "$per_sku"; done
} > "$csv"
omsctl stock load "$csv" > /dev/null
rm -f "$csv"
sleep 1
"$BIN/bench/bench-pipeline" --orders "$ORDERS" --rate "$RATE" --tag "$tag"
for name in ingest inventory payment; do
    [[ -f .oms/run/$name.pid ]] || continue
    awk -v n="$name" '/VmHWM/ {printf "%s_peak_rss_mb=%.1f ", n, $2 / 1024}' "/proc/$(cat .oms/run/$name.pid)/status"
done
echo
