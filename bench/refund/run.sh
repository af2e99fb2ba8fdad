#!/usr/bin/env bash
# bench/refund - refund requests decided per second by the refund service.
# Needs the stack and services (`make up`). Usage:
#   bench/refund/run.sh [ORDERS]     (default 5000 orders, 3 requests each)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
cd "$ROOT"
. .oms/env
BIN=${BUILD_DIR:-build}
"$BIN/bench/bench-refund" --orders "${1:-5000}" --tag "$(date +%s)"
