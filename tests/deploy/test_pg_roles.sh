#!/usr/bin/env bash
# test_pg_roles.sh - the PostgreSQL roles of k8s/20-postgres.yaml, for real:
# runs its init script (k8s/config/10-oms-roles.sh, ConfigMap postgres-init)
# on a fresh database of the stack's PostgreSQL, then starts ingest and
# inventory with DSNs of their own roles: each migrates its schema and
# becomes ready, and neither can read or change the other's schema nor
# public; the exporter's role reads the statistics and no service's data.
# usage: tests/deploy/test_pg_roles.sh SOURCE_DIR WORK_DIR  (under `make test`)
set -euo pipefail

ROOT=$1
WORK=$2/pg_roles
BIN=${OMS_BIN_DIR:-${OMS_BUILD_DIR:-$ROOT/build-asan}}
DB=oms_roles_test
ROLES=(ingest inventory payment notify refund analytics)
PORTS=(19790 19791)
PIDS=()

: "${OMS_PG_DSN:?integration checks run under make test, which exports .oms/env}"
# The stack's server, as its superuser (oms), on database postgres.
ADMIN=${OMS_PG_DSN%/*}/postgres
SERVER=${OMS_PG_DSN#*@}
SERVER=${SERVER%%/*}

psql_as() { psql -X -q -v ON_ERROR_STOP=1 "$1" "${@:2}"; }

cleanup() {
    local pid role
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    psql_as "$ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    for role in "${ROLES[@]}" exporter; do
        psql_as "$ADMIN" -c "DROP ROLE IF EXISTS $role" >/dev/null 2>&1 || true
    done
}
trap cleanup EXIT

fail() { echo "FAIL $*"; exit 1; }

rm -rf "$WORK"
mkdir -p "$WORK"
cleanup
psql_as "$ADMIN" -c "CREATE DATABASE $DB"

# The init script exactly as Kubernetes runs it, with the same variables.
env=(POSTGRES_USER=oms "POSTGRES_DB=$DB" "PGHOST=${SERVER%:*}" "PGPORT=${SERVER##*:}"
    EXPORTER_PASSWORD=pw-exporter)
for role in "${ROLES[@]}"; do
    env+=("DSN_${role^^}=postgresql://$role:pw-$role@$SERVER/$DB?sslmode=prefer")
done
env "${env[@]}" bash "$ROOT/k8s/config/10-oms-roles.sh" >"$WORK/init.log" 2>&1 ||
    { cat "$WORK/init.log"; fail "the init script of k8s/20-postgres.yaml failed"; }

# start NAME PORT: the service as its own PostgreSQL role and NATS user.
start() {
    local name=$1 port=$2 var=OMS_NATS_PASSWORD_${1^^} i
    OMS_PG_DSN="postgresql://$name:pw-$name@$SERVER/$DB?sslmode=prefer" OMS_HTTP_ADDR=127.0.0.1:$port \
        OMS_NATS_USER=$name OMS_NATS_PASSWORD=${!var} OMS_NATS_INBOX_PREFIX=_INBOX.$name \
        "$BIN/services/$name/oms-$name" 2>"$WORK/$name.log" &
    PIDS+=($!)
    for ((i = 0; i < 300; i++)); do
        curl -fsS -m 1 -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null && return 0
        kill -0 "${PIDS[-1]}" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 5 "$WORK/$name.log"
    fail "oms-$name did not become ready with role $name (its log: $WORK/$name.log)"
}

start ingest "${PORTS[0]}"
start inventory "${PORTS[1]}"
as() { psql_as "postgresql://$1:pw-$1@$SERVER/$DB" -tA -c "$2" 2>&1; }
[[ $(as ingest "SELECT count(*) FROM ingest.orders") == 0 ]] || fail "ingest cannot read its own schema"
[[ $(as inventory "SELECT count(*) FROM products") == 0 ]] || fail "inventory's search_path is not its schema"
# refused ROLE SQL WANT: ROLE running SQL must get an error containing WANT.
refused() {
    local out
    out=$(as "$1" "$2") || true
    [[ $out == *"$3"* ]] || fail "role $1 was not refused \"$2\" ($3); it got: $out"
}
refused ingest "SELECT count(*) FROM inventory.products" "permission denied"
refused inventory "INSERT INTO ingest.imports DEFAULT VALUES" "permission denied"
refused payment "CREATE TABLE public.x (a int)" "permission denied"
refused analytics "DROP SCHEMA ingest CASCADE" "must be owner"
[[ $(as exporter "SELECT count(*) > 0 FROM pg_stat_database") == t ]] ||
    fail "the exporter's role cannot read pg_stat_database"
refused exporter "SELECT count(*) FROM ingest.orders" "permission denied"
for pid in "${PIDS[@]}"; do
    kill -TERM "$pid"
    wait "$pid" || fail "a service did not exit cleanly on SIGTERM"
done
PIDS=()
echo "pg roles: the init script made 6 roles and the exporter's; ingest and inventory migrated and ran as their own roles; cross-schema access refused"
