#!/usr/bin/env bash
# test_systemd.sh - deploy/systemd/: every service has a unit that
# `systemd-analyze verify` accepts (run against the built binary, or
# /bin/true for a service not built yet), that restarts on failure, reads
# its environment files and is hardened (DynamicUser, ProtectSystem=strict,
# NoNewPrivileges; `systemd-analyze security --offline` exposure <= 2.0), and
# oms.target pulls in all six.
# usage: tests/deploy/test_systemd.sh SOURCE_DIR WORK_DIR
set -euo pipefail

ROOT=$1
WORK=$2/systemd
BUILD=${OMS_BUILD_DIR:-$ROOT/build-asan}
UNITS=$ROOT/deploy/systemd
SERVICES=(ingest inventory payment notify refund analytics)
REQUIRED=("Restart=on-failure" "EnvironmentFile=/etc/oms/oms.env" "DynamicUser=yes"
    "ProtectSystem=strict" "NoNewPrivileges=yes" "PrivateTmp=yes" "RestartPreventExitStatus=2")
FAILED=0

fail() { echo "FAIL $*"; FAILED=1; }

command -v systemd-analyze >/dev/null || { echo "systemd-analyze not found" >&2; exit 1; }
rm -rf "$WORK"
mkdir -p "$WORK"
for name in "${SERVICES[@]}"; do
    unit=oms-$name.service
    [[ -f $UNITS/$unit ]] || { fail "deploy/systemd/$unit is missing"; continue; }
    for line in "${REQUIRED[@]}" "EnvironmentFile=/etc/oms/$name.env" \
        "ExecStart=/usr/local/bin/oms-$name"; do
        grep -qx "$line" "$UNITS/$unit" || fail "$unit lacks $line"
    done
    bin=$BUILD/services/$name/oms-$name
    [[ -x $bin ]] || { echo "note: $bin not built (yet); verifying $unit with /bin/true"; bin=/bin/true; }
    sed "s|^ExecStart=/usr/local/bin/oms-$name\$|ExecStart=$bin|" "$UNITS/$unit" >"$WORK/$unit"
    out=$(cd "$WORK" && systemd-analyze verify "$WORK/$unit" 2>&1) || fail "$unit: systemd-analyze verify failed"
    [[ -z $out ]] || fail "$unit: $out"
    score=$(systemd-analyze security --offline=yes "$WORK/$unit" 2>/dev/null |
        sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    [[ -n $score ]] || { fail "$unit: no exposure level from systemd-analyze security"; continue; }
    awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "$unit: exposure level $score above 2.0"
    echo "$unit: verified, exposure $score"
done
for name in "${SERVICES[@]}"; do
    grep -Eq "^Wants=.*\boms-$name\.service\b" "$UNITS/oms.target" || fail "oms.target does not want oms-$name.service"
done
exit "$FAILED"
