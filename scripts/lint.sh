#!/usr/bin/env bash
# lint.sh - the tree's static checks: clang-format layout, clang-tidy (bug
# checks of .clang-tidy) and cppcheck, over our own C files only (generated
# protobuf-c output lives in the build dirs and is never listed by git).
#
#   scripts/lint.sh                 all three checks; exit 1 on any finding
#   scripts/lint.sh --check-format  layout only
#   scripts/lint.sh --format        rewrite the layout in place (make format)
#   LINT_REPORT_ONLY=1              print findings, exit 0
# clang-tidy reads BUILD_DIR/compile_commands.json (default build-asan).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT" || exit 1
BUILD_DIR=${BUILD_DIR:-build-asan}
JOBS=${JOBS:-2}

# C files under formatting: tracked sources of our own directories.
format_files() {
    git ls-files -- 'lib/*.[ch]' 'services/*.[ch]' 'cli/*.[ch]' 'tests/*.[ch]' \
        'bench/*.[ch]' 'examples/*.[ch]'
}

# Files clang-tidy and cppcheck analyse: the product, not its tests.
source_files() {
    git ls-files -- 'lib/*.c' 'services/*.c' 'cli/*.c'
}

check_format() {
    local f bad=0
    while IFS= read -r f; do
        if ! clang-format --style=file "$f" | diff -q "$f" - >/dev/null; then
            echo "lint: $f is not formatted (make format)"
            bad=1
        fi
    done < <(format_files)
    return $bad
}

run_tidy() {
    if [[ ! -f $BUILD_DIR/compile_commands.json ]]; then
        echo "lint: no $BUILD_DIR/compile_commands.json (make build-asan first)" >&2
        return 1
    fi
    local out
    out=$(source_files | xargs -P "$JOBS" -n 4 clang-tidy -p "$BUILD_DIR" --quiet 2>/dev/null |
        grep -E 'warning:|error:')
    [[ -z $out ]] && return 0
    printf '%s\n' "$out"
    return 1
}

run_cppcheck() {
    # -I lib: our headers; system headers are left out on purpose (cppcheck
    # does not need libc to find these bugs, and reading it is slow).
    # varFuncNullUB: the log_*(..., NULL) sentinel; glibc defines NULL as
    # ((void *)0), so the variadic read is of a pointer, as expected.
    source_files | cppcheck --enable=warning,portability --error-exitcode=1 --quiet \
        --inline-suppr -j "$JOBS" -I lib --suppress=missingIncludeSystem --suppress=varFuncNullUB \
        --file-list=- --template='{file}:{line}: {severity}: {message} [{id}]'
}

main() {
    case "${1:-}" in
    --format) format_files | xargs -P "$JOBS" -n 16 clang-format -i --style=file; exit $? ;;
    --check-format) check_format; exit $? ;;
    "") ;;
    *) echo "usage: $0 [--format | --check-format]" >&2; exit 2 ;;
    esac
    local rc=0
    echo "lint: clang-format"; check_format || rc=1
    echo "lint: clang-tidy";   run_tidy || rc=1
    echo "lint: cppcheck";     run_cppcheck || rc=1
    if ((rc != 0)) && [[ ${LINT_REPORT_ONLY:-} == 1 ]]; then
        echo "lint: findings above (report only, not failing the run)"
        rc=0
    fi
    exit $rc
}

main "$@"
