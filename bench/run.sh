#!/usr/bin/env bash
# bench/run.sh - every benchmark against the running stack (`make bench`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bench/import/run.sh "${BENCH_IMPORT_LINES:-1000000}"
bench/pipeline/run.sh "${BENCH_PIPELINE_ORDERS:-20000}"
bench/pipeline/run.sh "${BENCH_PIPELINE_RATE_ORDERS:-10000}" 1000
bench/refund/run.sh "${BENCH_REFUND_ORDERS:-5000}"
bench/analytics/run.sh "${BENCH_ANALYTICS_EVENTS:-200000}"
