#!/usr/bin/env bash
# bench/import - rows/s from `omsctl import` to the last order.created, and
# ingest's peak RSS. Needs the stack (`make up`); usage:
#   bench/import/run.sh [LINES]        (default 1000000)
#   TERMINAL=1 bench/import/run.sh [LINES]
# TERMINAL=1 first loads stock for the file's 200 SKUs (enough for about
# nine orders in ten) and also waits until every order of the file is paid
# or failed: terminal_seconds is CSV to the last order terminal, through all
# six services.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
cd "$ROOT"
. .oms/env
LINES=${1:-1000000}
DATA=.oms/bench
mkdir -p "$DATA"
CSV=$DATA/orders-$LINES.csv
awk -v n="$LINES" -v seed=42 -v tag="$(date +%s)" -f bench/import/gen.awk > "$CSV"

# INGEST_ONLY=1 stops the other services for the run: ingest alone, without
# inventory and payment consuming the orders it creates on the same 2 cores.
stopped=()
if [[ ${INGEST_ONLY:-0} == 1 ]]; then
    for name in inventory payment notify refund analytics; do
        [[ -f .oms/run/$name.pid ]] && kill -0 "$(cat .oms/run/$name.pid)" 2>/dev/null || continue
        kill -TERM "$(cat .oms/run/$name.pid)"; stopped+=("$name")
    done
fi

# A fresh ingest process, so its peak RSS is this import's.
kill -TERM "$(cat .oms/run/ingest.pid)"
while kill -0 "$(cat .oms/run/ingest.pid)" 2>/dev/null; do sleep 0.1; done
make -s services > /dev/null
pid=$(cat .oms/run/ingest.pid)
psql_q() { psql -qtAX "$OMS_PG_DSN" -c "$1"; }
orders_before=$(psql_q "SELECT count(*) FROM ingest.orders")

if [[ ${TERMINAL:-0} == 1 ]]; then
    # ≈ 3 units a line (qty 1-5) over 200 SKUs; 90 % of the demand in stock.
    per_sku=$(( LINES * 3 * 9 / 10 / 200 ))
    stock=$DATA/stock-$LINES.csv
    { echo "sku,name,on_hand,price"
      for i in $(seq 0 199); do printf 'SKU-%03d,Product %d,%d,1.00\n' "$i" "$i" "$per_sku"; done
    } > "$stock"
    omsctl stock load "$stock" > /dev/null
    sleep 1
fi
start=$(date +%s.%N)
omsctl import "$CSV" --json --no-follow > "$DATA/import.json"
# import.completed comes last from the outbox; wait for the relay to finish.
until [[ $(psql_q "SELECT count(*) FROM ingest.outbox") == 0 ]]; do sleep 0.05; done
end=$(date +%s.%N)

terminal=""
if [[ ${TERMINAL:-0} == 1 ]]; then
    prefix=$(head -n 2 "$CSV" | tail -n 1 | cut -d- -f1-2)
    until [[ $(psql_q "SELECT count(*) FROM ingest.orders WHERE order_id LIKE '$prefix-%'
                       AND status NOT IN ('paid', 'failed')") == 0 ]]; do sleep 0.5; done
    terminal=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf " terminal_seconds=%.2f", e - s}')
fi
orders=$(( $(psql_q "SELECT count(*) FROM ingest.orders") - orders_before ))
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
(( ${#stopped[@]} == 0 )) || { sleep 1; make -s services > /dev/null; }
awk -v only="${INGEST_ONLY:-0}" -v lines="$LINES" -v orders="$orders" -v s="$start" -v e="$end" -v rss="$rss_kb" 'BEGIN {
    t = e - s;
    printf "ingest_only=%s lines=%d orders=%d seconds=%.2f rows_per_s=%.0f orders_per_s=%.0f ingest_peak_rss_mb=%.1f",
           only, lines, orders, t, lines / t, orders / t, rss / 1024;
}'
echo "$terminal"
