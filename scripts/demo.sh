#!/usr/bin/env bash
# demo.sh - loads the sample catalogue and orders into the running stack.
# `make demo` runs it after `make up`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
[[ -f .oms/env ]] || { echo "demo: .oms/env is missing: run \`make up\` first" >&2; exit 1; }
# shellcheck source=/dev/null
. .oms/env
command -v omsctl >/dev/null ||
    { echo "demo: omsctl not found on PATH (expected in the build's cli/): run \`make up\`" >&2; exit 1; }

echo "== loading the sample catalogue (some products run out part way)"
omsctl stock load samples/products.csv
sleep 1 # let inventory apply the stock levels before orders arrive
echo "== importing samples/orders.csv (300 orders, a few bad rows on purpose)"
omsctl import samples/orders.csv
echo "== stock after the import"
omsctl stock show
echo "== a partial refund of ORD-1001 (the same key on a second run refunds nothing twice)"
omsctl refund ORD-1001 5.00 --key demo-ORD-1001-a --reason "demo: scratched on arrival" || true
if omsctl kpi >/dev/null 2>&1; then
    sleep 1 # analytics trails the last order's status by a batch
    echo "== today's KPIs and top customers (analytics)"
    omsctl kpi
    omsctl leaderboard --limit 5
fi
echo
echo "Next: omsctl order show ORD-1001 · omsctl events tail 'order.*' · omsctl status · make status"
