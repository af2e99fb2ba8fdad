#!/usr/bin/env bash
# deps.sh - installs the Debian 12 packages OMS needs to build, test and run
# its local stack, and only those that are missing.
#
# Checks with dpkg-query first, so a second run prints nothing and touches
# nothing. As root it runs apt-get (update only when something is missing);
# as any other user it prints the command to run and exits 1.
set -euo pipefail

PACKAGES=(
    build-essential cmake pkg-config
    libnats-dev nats-server
    libprotobuf-c-dev protobuf-c-compiler
    libpq-dev postgresql-15 postgresql-client-15
    redis-server libhiredis-dev
    libcsv-dev libcurl4-openssl-dev libcmocka-dev libmicrohttpd-dev
    libjansson-dev libssl-dev openssl
    python3 python3-aiosmtpd prometheus curl procps
    prometheus-postgres-exporter prometheus-redis-exporter prometheus-alertmanager
    python3-yaml
    clang libclang-rt-14-dev
    clang-format clang-tidy cppcheck
    chromium
)

# clang and libclang-rt-14-dev (libclang_rt.fuzzer) build the libFuzzer
# targets of tests/fuzz, which `make test` runs briefly and `make fuzz` longer.
# clang-format, clang-tidy (Debian 12: version 14) and cppcheck (2.10) are the
# checks of scripts/lint.sh (`make lint`).

# The deployment checks render k8s/ with `kubectl kustomize` and validate it
# with Node.js: Debian's kubectl (kubernetes-client, 1.20) renders k8s/ the
# same as current ones, so it is installed only where no kubectl is found.
command -v kubectl >/dev/null || PACKAGES+=(kubernetes-client)
command -v npm >/dev/null || PACKAGES+=(nodejs npm)

# npm packages of the deployment checks (tests/deploy): installed into
# scripts/k8s/node_modules from its package-lock.json when missing.
NPM_DIR=scripts/k8s
# playwright-core for the console's browser test (tests/console), which
# drives Debian's chromium: never `playwright install`.
CONSOLE_NPM_DIR=tests/console

# Prints the packages of PACKAGES that dpkg does not list as installed.
missing_packages() {
    local pkg status
    for pkg in "${PACKAGES[@]}"; do
        status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
        [[ $status == ii* ]] || printf '%s\n' "$pkg"
    done
}

# Installs the deployment checks' npm packages if they are missing; needs
# npm and its registry (not root). Without npm it says what is missing.
npm_packages() {
    local root
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
    [[ -d $root/$NPM_DIR/node_modules/kubernetes-models && -d $root/$NPM_DIR/node_modules/dockerfile-utils ]] &&
        return 0
    if ! command -v npm >/dev/null; then
        echo "deps: npm not found: the deployment checks need Node.js 20+ and npm (then \`npm ci\` in $NPM_DIR)" >&2
        return 1
    fi
    echo "deps: npm ci in $NPM_DIR"
    (cd "$root/$NPM_DIR" && npm ci --no-audit --no-fund --loglevel=error)
}

# The same for the console test's playwright-core.
console_npm_packages() {
    local root
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
    [[ -d $root/$CONSOLE_NPM_DIR/node_modules/playwright-core ]] && return 0
    command -v npm >/dev/null || return 1
    echo "deps: npm ci in $CONSOLE_NPM_DIR"
    (cd "$root/$CONSOLE_NPM_DIR" && npm ci --no-audit --no-fund --loglevel=error)
}

main() {
    local missing
    if ! command -v dpkg-query >/dev/null; then
        echo "deps: dpkg-query not found; this script targets Debian 12." >&2
        echo "deps: install the equivalents of: ${PACKAGES[*]}" >&2
        exit 1
    fi
    mapfile -t missing < <(missing_packages)
    if ((${#missing[@]} == 0)); then
        npm_packages
        console_npm_packages
        exit 0
    fi

    if ((EUID != 0)); then
        echo "deps: missing packages: ${missing[*]}" >&2
        echo "deps: as root, run:" >&2
        echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi

    echo "deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -q
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}" </dev/null
    npm_packages
    console_npm_packages
}

main "$@"
