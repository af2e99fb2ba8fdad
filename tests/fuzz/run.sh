#!/usr/bin/env bash
# run.sh - runs one fuzz target for FUZZ_SECONDS (default 10): first every
# saved regression input of tests/fuzz/regressions/<target>/ once, then
# libFuzzer from the committed seeds of tests/fuzz/corpus/<target>/, with a
# scratch corpus under WORK_DIR so the tree is never written. Exit status is
# non-zero on any crash, sanitizer report, leak or timeout; libFuzzer saves
# the input as WORK_DIR/<target>/crash-* (docs/fuzzing.md: reproducing).
#
# usage: run.sh <fuzzer binary> <work dir>
set -euo pipefail

FUZZER=$(realpath "$1")
WORK_DIR=$2
SRC_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
NAME=$(basename "$FUZZER")
SECONDS_EACH=${FUZZ_SECONDS:-10}
SEEDS=$SRC_DIR/corpus/$NAME
REGRESSIONS=$SRC_DIR/regressions/$NAME
OUT=$WORK_DIR/$NAME

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p "$OUT/corpus"
DICT=()
[[ -f $SRC_DIR/dict/$NAME.dict ]] && DICT=(-dict="$SRC_DIR/dict/$NAME.dict")

# Fixed inputs first: once a bug is fixed its input must keep passing.
if [[ -d $REGRESSIONS ]] && compgen -G "$REGRESSIONS/*" >/dev/null; then
    echo "fuzz: $NAME: replaying $(find "$REGRESSIONS" -type f | wc -l) regression inputs"
    "$FUZZER" -runs=1 "$REGRESSIONS"/* >"$OUT/regressions.log" 2>&1 || {
        cat "$OUT/regressions.log" >&2
        echo "fuzz: $NAME: a regression input fails (see above)" >&2
        exit 1
    }
fi

echo "fuzz: $NAME for ${SECONDS_EACH}s"
cd "$OUT"
status=0
"$FUZZER" -max_total_time="$SECONDS_EACH" -timeout=25 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 "${DICT[@]}" -artifact_prefix="$OUT/" "$OUT/corpus" "$SEEDS" \
    >"$OUT/fuzz.log" 2>&1 || status=$?
if ((status != 0)); then
    tail -n 150 "$OUT/fuzz.log" >&2
    echo "fuzz: $NAME failed (exit $status); full log $OUT/fuzz.log, input saved as $OUT/crash-*" >&2
    exit "$status"
fi
# The last status line (executions, coverage, corpus) and the final stats.
grep -E '^#[0-9]+' "$OUT/fuzz.log" | tail -n 1
grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)' "$OUT/fuzz.log"
