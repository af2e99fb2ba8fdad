#!/usr/bin/env bash
# test_ports.sh - lib/ports.h is the one table of the services' local HTTP
# ports; everything that repeats it must agree: scripts/stack.sh (SERVICES
# and HTTP_PORT_BASE, which count up from the same first port in the same
# order), the Makefile's help, omsctl's help and the README's port table.
# usage: tests/deploy/test_ports.sh SOURCE_DIR
set -euo pipefail

ROOT=$1
FAILED=0
fail() { echo "FAIL $*"; FAILED=1; }

mapfile -t NAMES < <(sed -n 's/^#define OMS_PORT_\([A-Z]*\) \([0-9]*\)$/\1/p' "$ROOT/lib/ports.h" | tr 'A-Z' 'a-z')
mapfile -t PORTS < <(sed -n 's/^#define OMS_PORT_\([A-Z]*\) \([0-9]*\)$/\2/p' "$ROOT/lib/ports.h")
((${#NAMES[@]} == 6)) || fail "lib/ports.h names ${#NAMES[@]} services, not 6"
for i in "${!PORTS[@]}"; do
    ((PORTS[i] == PORTS[0] + i)) || fail "lib/ports.h: ${NAMES[i]} is ${PORTS[i]}, not ${PORTS[0]} + $i"
done

stack_services=$(sed -n 's/^SERVICES=(\(.*\))$/\1/p' "$ROOT/scripts/stack.sh")
[[ $stack_services == "${NAMES[*]}" ]] ||
    fail "scripts/stack.sh SERVICES=($stack_services), lib/ports.h orders ${NAMES[*]}"
grep -q "^HTTP_PORT_BASE=\${OMS_HTTP_PORT_BASE:-${PORTS[0]}}$" "$ROOT/scripts/stack.sh" ||
    fail "scripts/stack.sh HTTP_PORT_BASE does not default to ${PORTS[0]}"

list=$(IFS=,; echo "${NAMES[*]}" | sed 's/,/, /g')
grep -q "OMS_HTTP_PORT_BASE=${PORTS[0]}   $list" "$ROOT/Makefile" ||
    fail "Makefile's help does not say OMS_HTTP_PORT_BASE=${PORTS[0]} for $list"
grep -q "${PORTS[0]} upward: $list" "$ROOT/README.md" ||
    fail "README's port table does not say ${PORTS[0]} upward: $list"
grep -q "http://127.0.0.1:${PORTS[0]} ... ${PORTS[5]}" "$ROOT/cli/omsctl.c" ||
    fail "omsctl's help does not say http://127.0.0.1:${PORTS[0]} ... ${PORTS[5]}"

if ((FAILED)); then
    echo "ports: lib/ports.h and its copies differ"
    exit 1
fi
echo "ports: ${NAMES[*]} on ${PORTS[0]}..${PORTS[5]} everywhere"
