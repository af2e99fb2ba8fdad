#!/usr/bin/env bash
# bench/pipeline/pgstats.sh - where PostgreSQL's and nats-server's work goes,
# per order, for one bench/pipeline run. Re-run it after each change.
#   bench/pipeline/pgstats.sh [ORDERS] [run.sh options, e.g. --rate 1000]   (default 20000)
# Needs a stack started with pg_stat_statements loaded (a server start
# option, so it is opt-in and the tests' stack runs without it):
#   scripts/stack.sh clean && OMS_PG_STAT_STATEMENTS=1 make up
# Prints bench/pipeline/run.sh's own report (orders/s, latency, CPU per
# process group), then per order: the top 25 statements by total time,
# PostgreSQL CPU per connection (each service names its connections),
# commits, rows, WAL, tables (rows written, dead tuples, autovacuum runs),
# the indexes written and how often each was scanned, and nats-server's
# messages, stored messages, deliveries and acks.
# Counts (statements, rows, bytes, commits, messages) do not depend on the
# machine's load; CPU seconds and execution times do.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
ROOT=$(cd "$HERE/../.." && pwd -P)
cd "$ROOT"
. .oms/env
ORDERS=${1:-20000}
(($#)) && shift
PG_BIN=/usr/lib/postgresql/15/bin
export PSQL=$PG_BIN/psql
[[ -x $PSQL ]] || PSQL=psql
psql_c() { "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -d "$OMS_PG_DSN" -c "$1"; }

if [[ $(psql_c "SHOW shared_preload_libraries") != *pg_stat_statements* ]]; then
    echo "pgstats.sh: PostgreSQL runs without pg_stat_statements; start the stack with it:" >&2
    echo "  make down && OMS_PG_STAT_STATEMENTS=1 make up   (scripts/stack.sh clean first for a fresh stack)" >&2
    exit 2
fi
psql_c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 "$HERE/pgstats.py" snapshot "$tmp/before.json"
psql_c "SELECT pg_stat_statements_reset()" >/dev/null
status=0
"$HERE/run.sh" "$ORDERS" "$@" || status=$?
python3 "$HERE/pgstats.py" wait-quiet
# Backends publish their table and database counters at most every 10 s
# when idle (PostgreSQL 15's PGSTAT_IDLE_INTERVAL).
sleep 11
python3 "$HERE/pgstats.py" snapshot "$tmp/after.json"
python3 "$HERE/pgstats.py" report "$tmp/before.json" "$tmp/after.json" "$ORDERS"
exit "$status"
