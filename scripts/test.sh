#!/usr/bin/env bash
# test.sh - runs ctest in the ASan/UBSan build against the local servers.
#
# The integration tests start the service binaries themselves, so services
# left running by `make up` are stopped first: they would hold the same HTTP
# ports and compete for the same durable JetStream consumers. Servers this
# script had to start are stopped again on exit (OMS_KEEP_STACK=1 keeps them),
# so a CI run leaves no process holding the stack's ports; their logs stay in
# .oms/log, except under CI (CI=true), where .oms goes too. If another
# checkout's stack holds the default ports, the servers move to free ones
# (auto_ports in stack.sh) and .oms/env says which.
# The last lines printed are ctest's, and its exit status is ours.
#
# Expects `make deps build-asan` to have run. CTEST_ARGS adds ctest options.
#
# Before the servers start, the libFuzzer targets of tests/fuzz are built
# with clang in build-fuzz and each runs FUZZ_SECONDS (default 10) from its
# seeds: any crash or sanitizer report fails the run (ctest label "fuzz",
# docs/fuzzing.md). That happens on a full run (no CTEST_ARGS, as CI runs
# it); OMS_FUZZ_TEST=1 forces it, OMS_FUZZ_TEST=0 skips it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
ASAN_DIR=$ROOT/build-asan
STACK=$ROOT/scripts/stack.sh
export BUILD_DIR=$ASAN_DIR
STARTED_SERVERS=0

# Quiet, so that ctest's summary stays the last thing printed. Under CI the
# checkout is thrown away, so `clean` also removes a PostgreSQL data directory
# that had to live under /var/tmp.
# shellcheck disable=SC2317  # run by the EXIT trap
stop_started_servers() {
    ((STARTED_SERVERS)) && [[ ${OMS_KEEP_STACK:-0} != 1 ]] || return 0
    if [[ ${CI:-} == true ]]; then
        "$STACK" clean >/dev/null 2>&1 || echo "test: stopping the servers failed" >&2
    else
        "$STACK" down >>"$ROOT/.oms/log/stack.log" 2>&1 ||
            echo "test: stopping the servers failed; see .oms/log/stack.log" >&2
    fi
}

# Builds and runs the fuzz targets briefly; returns ctest's status.
run_fuzzers() {
    local fuzz_dir=$ROOT/build-fuzz mode=${OMS_FUZZ_TEST:-auto}
    if [[ $mode == 0 || ($mode == auto && -n ${CTEST_ARGS:-}) ]]; then
        echo "test: fuzz targets skipped (OMS_FUZZ_TEST=1 runs them with CTEST_ARGS set)"
        return 0
    fi
    command -v clang >/dev/null || { echo "test: clang not found: run \`make deps\`" >&2; return 1; }
    CC=clang cmake -S "$ROOT" -B "$fuzz_dir" -DOMS_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null &&
        env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL cmake --build "$fuzz_dir" -j "${JOBS:-$(nproc)}" \
            --target oms_fuzzers >/dev/null ||
        { echo "test: the fuzz build failed (see: cmake --build $fuzz_dir)" >&2; return 1; }
    (cd "$fuzz_dir" && FUZZ_SECONDS=${FUZZ_SECONDS:-10} ctest --output-on-failure -j1 -L fuzz)
}

main() {
    local status=0 fuzz_status=0 stopped

    run_fuzzers || fuzz_status=$?

    [[ -d $ASAN_DIR ]] || { echo "test: $ASAN_DIR is missing: run \`make build-asan\`" >&2; exit 1; }
    stopped=$("$STACK" stop-services)
    [[ -z $stopped ]] ||
        printf '%s\n%s\n' "$stopped" "test: stopped the services of make up; the tests start their own"
    if ! "$STACK" check-servers; then
        STARTED_SERVERS=1
        trap stop_started_servers EXIT
    fi
    OMS_PORTS_AUTO=1 "$STACK" servers

    # shellcheck source=/dev/null
    . "$ROOT/.oms/env"
    export OMS_BUILD_DIR=$ASAN_DIR OMS_BIN_DIR=$ASAN_DIR
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

    cd "$ASAN_DIR"
    # CTEST_ARGS is split into words on purpose: `-L unit -R money`.
    # shellcheck disable=SC2086
    ctest --output-on-failure -j1 ${CTEST_ARGS:-} || status=$?
    ((status != 0)) || status=$fuzz_status
    ((fuzz_status == 0)) || echo "test: the fuzz targets failed (above)" >&2
    exit "$status"
}

main "$@"
