#!/usr/bin/env bash
# k8s-secrets.sh - writes the credentials of a Kubernetes deployment with
# random values, one env file per Secret, into k8s/secrets/ (git-ignored).
# The kustomize component k8s/secrets/kustomization.yaml turns each file
# into a Secret whose name carries a hash of its content, so a changed
# password rolls the pods that read it. Nothing secret is ever committed.
#
# Existing files are kept: PostgreSQL stores its roles' passwords on its
# volume at the first start, so regenerating them under a running cluster
# would lock the services out (docs/operations.md, First deploy). --force
# rewrites every file anyway (a fresh cluster, or a test).
#
# Every value is 40 characters of [A-Za-z0-9] (about 230 random bits),
# starting with a letter: they sit in DSNs and URLs unescaped, and
# nats-server reads a value starting with a digit as a number.
#
# Settings (environment):
#   OMS_PG_HOST      host:port of PostgreSQL in the DSNs (postgres.oms.svc:5432)
#   OMS_PG_SSLMODE   libpq sslmode of the DSNs (prefer); verify-full for a
#                    PostgreSQL with TLS (docs/operations.md, Network policy)
#
# usage: scripts/k8s-secrets.sh [--force] [--dir DIR]   (DIR: k8s/secrets)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
SERVICES=(ingest inventory payment notify refund analytics)
VALUE_LEN=40

# random_value: prints one value as described above.
random_value() {
    local chars=""
    while ((${#chars} < VALUE_LEN)); do
        chars+=$(head -c 512 /dev/urandom | LC_ALL=C tr -dc 'A-Za-z0-9')
        chars=${chars#"${chars%%[A-Za-z]*}"}
    done
    printf '%s\n' "${chars:0:VALUE_LEN}"
}

# write FILE LINE...: the env file, readable by its owner only; kept if it
# exists and --force was not given.
write() {
    local file=$DIR/$1
    shift
    if [[ -e $file && $FORCE != 1 ]]; then
        echo "k8s-secrets: ${file#"$ROOT"/} exists, kept (--force rewrites it)"
        return
    fi
    (umask 077 && printf '%s\n' "$@" >"$file")
    echo "k8s-secrets: wrote ${file#"$ROOT"/}"
}

# service NAME: its PostgreSQL role and NATS user, with what only it needs.
service() {
    local name=$1 extra=()
    case $name in
    payment) extra=("OMS_PAYMENT_WEBHOOK_SECRET=$(random_value)") ;;
    notify) extra=("OMS_WEBHOOK_SECRET=$(random_value)") ;;
    analytics) extra=("OMS_REDIS_URL=redis://:$REDIS_PASSWORD@redis.oms.svc:6379/0") ;;
    esac
    write "oms-$name.env" \
        "OMS_PG_DSN=postgresql://$name:$(random_value)@$PG_HOST/oms?sslmode=$PG_SSLMODE" \
        "OMS_NATS_USER=$name" \
        "OMS_NATS_PASSWORD=$(random_value)" \
        ${extra[@]+"${extra[@]}"}
}

# redis_password: the one already written, so that analytics' URL and Redis
# agree when only oms-analytics.env is missing.
redis_password() {
    local file=$DIR/redis-auth.env
    if [[ -f $file && $FORCE != 1 ]]; then
        sed -n 's/^REDIS_PASSWORD=//p' "$file"
    else
        random_value
    fi
}

main() {
    FORCE=0
    DIR=$ROOT/k8s/secrets
    while (($#)); do
        case $1 in
        --force) FORCE=1 ;;
        --dir) DIR=$2; shift ;;
        *) echo "usage: scripts/k8s-secrets.sh [--force] [--dir DIR]" >&2; exit 2 ;;
        esac
        shift
    done
    PG_HOST=${OMS_PG_HOST:-postgres.oms.svc:5432}
    PG_SSLMODE=${OMS_PG_SSLMODE:-prefer}
    mkdir -p "$DIR"
    chmod 700 "$DIR"
    REDIS_PASSWORD=$(redis_password)
    write postgres-admin.env "POSTGRES_PASSWORD=$(random_value)"
    write postgres-exporter.env "DATA_SOURCE_USER=exporter" "DATA_SOURCE_PASS=$(random_value)"
    write redis-auth.env "REDIS_PASSWORD=$REDIS_PASSWORD"
    write nats-route.env "NATS_ROUTE_PASSWORD=$(random_value)"
    write oms-admin.env "OMS_ADMIN_TOKEN=$(random_value)"
    write grafana-admin.env "GF_SECURITY_ADMIN_USER=admin" "GF_SECURITY_ADMIN_PASSWORD=$(random_value)"
    for name in integrations omsctl; do
        write "oms-$name.env" "OMS_NATS_USER=$name" "OMS_NATS_PASSWORD=$(random_value)"
    done
    for name in "${SERVICES[@]}"; do
        service "$name"
    done
}

main "$@"
