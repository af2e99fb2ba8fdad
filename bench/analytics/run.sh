#!/usr/bin/env bash
# bench/analytics - projection throughput into Redis, with batching.
# Needs the stack and services (`make up`). Usage:
#   bench/analytics/run.sh [EVENTS]      (default 200000)
# 1. live: EVENTS events published as fast as JetStream takes them, until the
#    running analytics service has applied them all (publisher and service
#    share the machine);
# 2. rebuild: `oms-analytics rebuild` replays every order.paid, order.failed
#    and refund.processed the streams hold into a fresh generation.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
cd "$ROOT"
. .oms/env
EVENTS=${1:-200000}
BIN=${BUILD_DIR:-build}
"$BIN/bench/bench-analytics" --events "$EVENTS"
"$BIN/services/analytics/oms-analytics" rebuild 2>/dev/null
