#!/usr/bin/env bash
# bench/import - rows/s from `omsctl import` to the last order.created, and
# ingest's peak RSS. Needs the stack (`make up`); usage:
#   bench/import/run.sh [LINES]        (default 1000000)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
cd "$ROOT"
. .oms/env
LINES=${1:-1000000}
DATA=.oms/bench
mkdir -p "$DATA"
CSV=$DATA/orders-$LINES.csv
[[ -f $CSV ]] || awk -v n="$LINES" -v seed=42 -f bench/import/gen.awk > "$CSV"

pid=$(cat .oms/run/ingest.pid)
psql_q() { psql -qtAX "$OMS_PG_DSN" -c "$1"; }
orders_before=$(psql_q "SELECT count(*) FROM ingest.orders")

start=$(date +%s.%N)
omsctl import "$CSV" --json > "$DATA/import.json"
# import.completed comes last from the outbox; wait for the relay to finish.
until [[ $(psql_q "SELECT count(*) FROM ingest.outbox") == 0 ]]; do sleep 0.05; done
end=$(date +%s.%N)

orders=$(( $(psql_q "SELECT count(*) FROM ingest.orders") - orders_before ))
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
awk -v lines="$LINES" -v orders="$orders" -v s="$start" -v e="$end" -v rss="$rss_kb" 'BEGIN {
    t = e - s;
    printf "lines=%d orders=%d seconds=%.2f rows_per_s=%.0f orders_per_s=%.0f ingest_peak_rss_mb=%.1f\n",
           lines, orders, t, lines / t, orders / t, rss / 1024;
}'
