#!/usr/bin/env bash
# test_dockerfiles.sh - the images' Dockerfiles, checked without a Docker
# engine (none runs on these machines; `make images` needs one):
#   1. every service has services/<name>/Dockerfile, and each is ingest's with
#      the name changed (one recipe, six images);
#   2. dockerfile-utils (npm, scripts/k8s) lints each with no diagnostic;
#   3. the recipe: two stages on debian:bookworm-slim, runtime packages
#      installed without recommends and no -dev package at run time, a
#      numeric non-root USER, an exec-form ENTRYPOINT;
#   4. the runtime stage's packages (with what apt pulls in for them) provide
#      every shared library the built service binaries load (ldd + dpkg -S).
# usage: tests/deploy/test_dockerfiles.sh SOURCE_DIR WORK_DIR
set -euo pipefail

ROOT=$1
WORK=$2
BUILD=${OMS_BUILD_DIR:-$ROOT/build-asan}
SERVICES=(ingest inventory payment notify refund analytics)
LINT=$ROOT/scripts/k8s/node_modules/.bin/dockerfile-utils
FAILED=0

fail() { echo "FAIL $*"; FAILED=1; }

mkdir -p "$WORK"
[[ -x $LINT ]] || { echo "$LINT is missing: run \`make deps\` (npm ci in scripts/k8s)" >&2; exit 1; }

TEMPLATE=$ROOT/services/ingest/Dockerfile
for name in "${SERVICES[@]}"; do
    file=$ROOT/services/$name/Dockerfile
    if [[ ! -f $file ]]; then fail "services/$name/Dockerfile is missing"; continue; fi
    diff -q <(sed "s/$name/ingest/g" "$file") "$TEMPLATE" >/dev/null ||
        fail "services/$name/Dockerfile is not services/ingest/Dockerfile with the name changed"
    out=$("$LINT" lint "$file" 2>&1) || fail "dockerfile-utils failed on services/$name/Dockerfile"
    [[ -z $out ]] || fail "services/$name/Dockerfile: $out"
done

# The recipe itself, read from the template.
runtime=$(awk '/^FROM /{n++} n==2' "$TEMPLATE")
# shellcheck disable=SC2016  # a literal ${DEBIAN}
[[ $(grep -c '^FROM debian:${DEBIAN}' "$TEMPLATE") == 2 ]] || fail "expected two stages FROM debian:\${DEBIAN}"
grep -q '^ARG DEBIAN=bookworm-slim$' "$TEMPLATE" || fail "the base is not debian:bookworm-slim"
grep -q -- '--no-install-recommends' <<<"$runtime" || fail "runtime packages installed with recommends"
! grep -Eq -- '-dev( |$)' <<<"$runtime" || fail "a -dev package in the runtime stage"
user=$(grep -E '^USER ' <<<"$runtime" | tail -n 1 | awk '{print $2}')
[[ $user =~ ^[1-9][0-9]*(:[1-9][0-9]*)?$ ]] || fail "runtime USER '$user' is not a numeric non-root user"
grep -Eq '^ENTRYPOINT \["/usr/local/bin/oms-ingest"\]$' "$TEMPLATE" || fail "no exec-form ENTRYPOINT"

# Packages of the runtime stage, and everything apt installs with them.
mapfile -t listed < <(sed -n '/apt-get install/,/rm -rf/p' <<<"$runtime" |
    sed 's/[[:space:]\\]\+/\n/g' | grep -E '^(lib|ca-)[a-z0-9.+-]+$' | sort -u)
((${#listed[@]} > 0)) || fail "no runtime packages found in the template"
apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances "${listed[@]}" 2>/dev/null |
    grep -Eo '^[a-z0-9][a-z0-9.+-]*' | sed 's/:.*//' | sort -u >"$WORK/runtime-packages"
checked=0
for name in "${SERVICES[@]}"; do
    bin=$BUILD/services/$name/oms-$name
    if [[ ! -x $bin ]]; then
        echo "SKIP libraries of $name: $bin is not built (yet)"
        continue
    fi
    while read -r lib; do
        pkg=$(dpkg -S "$(readlink -f "$lib")" 2>/dev/null | head -n 1 | cut -d: -f1) || pkg=
        case $pkg in
        libc6 | libgcc-s1 | libasan* | libubsan* | libstdc++6 | "") continue ;; # base image / sanitizer build
        esac
        grep -qx "$pkg" "$WORK/runtime-packages" ||
            fail "oms-$name loads $lib from package $pkg, which the runtime stage does not install"
    done < <(ldd "$bin" | awk '$3 ~ /^\// {print $3}')
    checked=$((checked + 1))
done
echo "dockerfiles: ${#SERVICES[@]} Dockerfiles, $checked built binaries checked against the runtime stage"
exit "$FAILED"
