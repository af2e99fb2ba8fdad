#!/usr/bin/env bash
# stack.sh - the local OMS stack on loopback: nats-server with JetStream,
# PostgreSQL 15 and Redis ("the servers"), then the service binaries of one
# build ("the services"). Everything lives under .oms/ of the checkout.
#
# Each process is started in the background and its PID recorded, so `down`
# stops exactly what was started, and a second `up` reuses whatever is alive
# and passes its health check; a PID file naming a dead or foreign process is
# removed. Ports and the build come from the environment (defaults below).
#
# NATS runs with authorization: every service connects as its own user with
# the permissions of deploy/nats/auth.conf, omsctl and the tests as `omsctl`;
# the passwords are generated once into .oms/nats_passwords.
#
# CLUSTER=3 (`make up CLUSTER=3`) runs three nats-server processes clustered
# on loopback (client ports OMS_NATS_PORT+0..2, monitoring
# OMS_NATS_MONITOR_PORT+0..2, routes OMS_NATS_PORT+10..12), streams at three
# replicas, and two processes of every service (the second on
# OMS_HTTP_PORT_BASE+10..15). The mode is remembered in .oms/cluster until
# `down`. OMS_STACK_DIR moves the state directory (tests run a cluster of
# their own with `nats-up`/`nats-down` there).
#
# usage: scripts/stack.sh up|servers|services|down|stop-services|status|
#                         logs [component...]|env|check-servers|clean|
#                         nats-up|nats-down
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
STATE=${OMS_STACK_DIR:-$ROOT/.oms}
RUN=$STATE/run
LOG=$STATE/log
ENV_FILE=$STATE/env
TOKEN_FILE=$STATE/admin_token

# The ports of the running stack, written by `servers` and removed by `down`,
# so that a later command given no port (status, services, down, make test)
# talks to the servers that were started, whatever ports they were given.
PORTS_FILE=$STATE/ports
PORT_VARS=(OMS_NATS_PORT OMS_NATS_MONITOR_PORT OMS_PG_PORT OMS_REDIS_PORT OMS_HTTP_PORT_BASE)
PORTS_GIVEN=0
for var in "${PORT_VARS[@]}"; do [[ -z ${!var:-} ]] || PORTS_GIVEN=1; done
if [[ -f $PORTS_FILE ]]; then
    while IFS='=' read -r var value; do
        [[ " ${PORT_VARS[*]} " == *" $var "* && -z ${!var:-} ]] || continue
        printf -v "$var" '%s' "$value"
    done <"$PORTS_FILE"
fi
NATS_PORT=${OMS_NATS_PORT:-14222}
NATS_MONITOR_PORT=${OMS_NATS_MONITOR_PORT:-18222}
PG_PORT=${OMS_PG_PORT:-15432}
REDIS_PORT=${OMS_REDIS_PORT:-16379}
HTTP_PORT_BASE=${OMS_HTTP_PORT_BASE:-18081}
BUILD_DIR=${BUILD_DIR:-build}
[[ $BUILD_DIR == /* ]] || BUILD_DIR=$ROOT/$BUILD_DIR

# The NATS nodes and service processes of this stack: 1 and 1, or CLUSTER
# and 2. Given, or as recorded by the running stack, or 1.
CLUSTER_FILE=$STATE/cluster
CLUSTER_GIVEN=${CLUSTER:-}
if [[ -z ${CLUSTER:-} && -f $CLUSTER_FILE ]]; then CLUSTER=$(cat "$CLUSTER_FILE"); fi
CLUSTER=${CLUSTER:-1}
NATS_AUTH_CONF=$ROOT/deploy/nats/auth.conf
PASSWORDS_FILE=$STATE/nats_passwords
# The NATS users of deploy/nats/auth.conf besides the services.
NATS_OTHER_USERS=(integrations omsctl)

# Order fixes the HTTP ports: ingest gets the base, analytics base + 5.
SERVICES=(ingest inventory payment notify refund analytics)
PG_BIN=/usr/lib/postgresql/15/bin
READY_TIMEOUT_S=30
STOP_TIMEOUT_S=10

# Set by pg_locate: the real data directory (never the .oms/pg symlink).
PGDATA=

say() { printf '%s: %s\n' "$1" "$2"; }
die() { printf '%s: %s\n' "$1" "$2" >&2; exit 1; }
is_root() { ((EUID == 0)); }
rel() { printf '%s' "${1#"$ROOT"/}"; }

# fail_log COMPONENT LOGFILE WHAT: reports WHAT, shows the log's tail, exits 1.
fail_log() {
    printf '%s: %s; last 30 lines of %s:\n' "$1" "$3" "$(rel "$2")" >&2
    tail -n 30 "$2" >&2 2>/dev/null || true
    exit 1
}

log_header() {
    printf '\n=== %s: %s starting (scripts/stack.sh) ===\n' "$(date '+%F %T')" "$1" >>"$2"
}

check_ports() {
    local var
    [[ $CLUSTER =~ ^[135]$ ]] ||
        die stack "CLUSTER is '$CLUSTER', expected 1 (one nats-server) or 3 or 5 (a JetStream cluster)"
    for var in NATS_PORT NATS_MONITOR_PORT PG_PORT REDIS_PORT HTTP_PORT_BASE; do
        if ! [[ ${!var} =~ ^[0-9]+$ ]] || ((${!var} < 1 || ${!var} > 65000)); then
            die stack "OMS_$var is '${!var}', expected a TCP port number (1-65000)"
        fi
    done
}

# True if every port of the stack, moved up by $1, is free on 127.0.0.1.
ports_free_at() {
    local port i
    for port in "$NATS_PORT" "$NATS_MONITOR_PORT" "$PG_PORT" "$REDIS_PORT"; do
        ! port_busy $((port + $1)) || return 1
    done
    for i in "${!SERVICES[@]}"; do
        ! port_busy $((HTTP_PORT_BASE + i + $1)) || return 1
        ((CLUSTER == 1)) || ! port_busy $((HTTP_PORT_BASE + 10 + i + $1)) || return 1
    done
    for ((i = 1; i < CLUSTER; i++)); do
        for port in $((NATS_PORT + i)) $((NATS_MONITOR_PORT + i)) $((NATS_PORT + 10 + i)); do
            ! port_busy $((port + $1)) || return 1
        done
    done
}

# With OMS_PORTS_AUTO=1 (make test sets it), no port given and no stack of
# this checkout running, default ports held by another process (most often a
# stack another checkout left running) move every port up by a multiple of
# 100 to the first free set, rather than failing.
auto_ports() {
    local step
    [[ ${OMS_PORTS_AUTO:-0} == 1 && $PORTS_GIVEN == 0 && ! -f $PORTS_FILE ]] || return 0
    for step in 0 100 200 300 400 500 600 700 800 900; do
        ports_free_at "$step" || continue
        ((step == 0)) || say stack "default ports in use by another process; using ports +$step (nats $((NATS_PORT + step)), postgres $((PG_PORT + step)), redis $((REDIS_PORT + step)))"
        NATS_PORT=$((NATS_PORT + step)) NATS_MONITOR_PORT=$((NATS_MONITOR_PORT + step))
        PG_PORT=$((PG_PORT + step)) REDIS_PORT=$((REDIS_PORT + step))
        HTTP_PORT_BASE=$((HTTP_PORT_BASE + step))
        return 0
    done
    die stack "no free set of ports found (tried the defaults + 0..900); set OMS_*_PORT explicitly"
}

write_ports() {
    {
        echo "OMS_NATS_PORT=$NATS_PORT"
        echo "OMS_NATS_MONITOR_PORT=$NATS_MONITOR_PORT"
        echo "OMS_PG_PORT=$PG_PORT"
        echo "OMS_REDIS_PORT=$REDIS_PORT"
        echo "OMS_HTTP_PORT_BASE=$HTTP_PORT_BASE"
    } >"$PORTS_FILE"
}

# ---- processes -------------------------------------------------------------

# True if PID is a live process (a zombie is dead).
alive() {
    local stat
    stat=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $stat != Z* ]]
}

# pid_read FILE COMM: prints the PID in FILE if it names a live process whose
# command is COMM; otherwise removes FILE as stale and fails.
pid_read() {
    local pid
    if [[ -s $1 ]]; then
        pid=$(head -n 1 "$1" | tr -dc 0-9)
        if [[ -n $pid ]] && alive "$pid" &&
            [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]]; then
            printf '%s\n' "$pid"
            return 0
        fi
    fi
    rm -f "$1"
    return 1
}

# stop_pid COMPONENT PID: SIGTERM, up to STOP_TIMEOUT_S to exit, then SIGKILL.
stop_pid() {
    local deadline=$((SECONDS + STOP_TIMEOUT_S))
    kill -TERM "$2" 2>/dev/null || return 0
    while alive "$2"; do
        if ((SECONDS >= deadline)); then
            say "$1" "still running ${STOP_TIMEOUT_S} s after SIGTERM, sending SIGKILL"
            kill -KILL "$2" 2>/dev/null || true
            deadline=$((SECONDS + 5))
            while alive "$2" && ((SECONDS < deadline)); do sleep 0.1; done
            return 0
        fi
        sleep 0.1
    done
}

# wait_for SECONDS PID CMD...: runs CMD every 0.2 s until it succeeds; fails
# when SECONDS pass or, sooner, when PID (unless empty) has exited.
wait_for() {
    local deadline=$((SECONDS + $1)) pid=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        [[ -z $pid ]] || alive "$pid" || return 1
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# fail_start COMPONENT PID CHECK: reports why our child PID did not pass
# CHECK, stopping it if it still runs so that a failed start leaves nothing.
fail_start() {
    local code=0 log=$LOG/$1.log
    if alive "$2"; then
        stop_pid "$1" "$2"
        fail_log "$1" "$log" "$3 did not succeed within $READY_TIMEOUT_S s (process stopped)"
    fi
    wait "$2" 2>/dev/null || code=$?
    fail_log "$1" "$log" "exited with status $code before $3 succeeded"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# port_free COMPONENT PORT VARIABLE: fails if another process listens on PORT.
port_free() {
    port_busy "$2" || return 0
    die "$1" "port $2 on 127.0.0.1 is already in use by a process this checkout did not start (another checkout's stack, or a system service); stop it, or choose another port with $3=<port>"
}

http_ok() { curl -fsS -m 2 -o /dev/null "$1"; }

# ---- nats-server -----------------------------------------------------------

# Node N (1-based): its ports and files. Node 1 keeps the names of the
# single-node stack, so CLUSTER=1 is the stack as it always was.
nats_port() { echo $((NATS_PORT + $1 - 1)); }
nats_monitor_port() { echo $((NATS_MONITOR_PORT + $1 - 1)); }
nats_route_port() { echo $((NATS_PORT + 10 + $1 - 1)); }
nats_suffix() { (($1 == 1)) || printf -- '-%s' "$1"; }
nats_pidfile() { printf '%s/nats%s.pid' "$RUN" "$(nats_suffix "$1")"; }
nats_logfile() { printf '%s/nats%s.log' "$LOG" "$(nats_suffix "$1")"; }
nats_component() { printf 'nats%s' "$(nats_suffix "$1")"; }

nats_node_healthy() { http_ok "http://127.0.0.1:$(nats_monitor_port "$1")/healthz"; }

nats_healthy() {
    local n
    for ((n = 1; n <= CLUSTER; n++)); do nats_node_healthy "$n" || return 1; done
}

# The comma-separated client URLs of every node.
nats_urls() {
    local n urls=
    for ((n = 1; n <= CLUSTER; n++)); do urls+=${urls:+,}nats://127.0.0.1:$(nats_port "$n"); done
    printf '%s\n' "$urls"
}

# One password per NATS user of deploy/nats/auth.conf, generated once. A
# letter first: nats-server reads a $VARIABLE's value as a config token, and
# one starting with a digit ("7e3...") is parsed as a number and refused.
nats_passwords() {
    local user
    [[ -s $PASSWORDS_FILE ]] && return 0
    (
        umask 077
        for user in "${SERVICES[@]}" "${NATS_OTHER_USERS[@]}"; do
            printf 'OMS_NATS_PASSWORD_%s=p%s\n' "${user^^}" \
                "$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
        done >"$PASSWORDS_FILE.tmp"
        mv -f "$PASSWORDS_FILE.tmp" "$PASSWORDS_FILE"
    )
}

# nats_password USER: prints USER's password.
nats_password() {
    local key=OMS_NATS_PASSWORD_${1^^} line
    while IFS= read -r line; do
        [[ $line == "$key="* ]] && { printf '%s\n' "${line#*=}"; return 0; }
    done <"$PASSWORDS_FILE"
    die stack "no password for NATS user $1 in $(rel "$PASSWORDS_FILE"): \`make down\`, remove it, \`make up\`"
}

# nats_write_conf N: the configuration of node N, including deploy/nats/auth.conf
# (copied beside it: nats-server resolves includes relative to the file).
nats_write_conf() {
    local n=$1 i store=$STATE/nats name=oms-local
    cp "$NATS_AUTH_CONF" "$STATE/auth.conf"
    if ((CLUSTER > 1)); then
        store=$STATE/nats-cluster/n$n
        name=oms-$n
    fi
    mkdir -p "$store"
    {
        echo "# Generated by scripts/stack.sh at every start: edits are lost."
        echo "server_name: $name"
        echo "listen: 127.0.0.1:$(nats_port "$n")"
        echo "http: 127.0.0.1:$(nats_monitor_port "$n")"
        # Go's pprof endpoints of the first node, for profiling nats-server
        # (docs/performance.md); off unless asked for.
        if [[ -n ${OMS_NATS_PROF_PORT:-} && $n == 1 ]]; then
            echo "prof_port: $OMS_NATS_PROF_PORT"
        fi
        echo "jetstream {"
        echo "    store_dir: \"$store\""
        echo "    max_memory_store: 512MB"
        echo "    max_file_store: 8GB"
        echo "}"
        if ((CLUSTER > 1)); then
            echo "cluster {"
            echo "    name: oms-local"
            echo "    listen: 127.0.0.1:$(nats_route_port "$n")"
            echo "    no_advertise: true"
            echo "    routes: ["
            for ((i = 1; i <= CLUSTER; i++)); do
                ((i == n)) || echo "        nats-route://127.0.0.1:$(nats_route_port "$i")"
            done
            echo "    ]"
            echo "}"
        fi
        echo 'include "auth.conf"'
    } >"$STATE/nats$(nats_suffix "$n").conf"
}

# nats_spawn N: starts node N unless it runs; SPAWNED is the PID it started,
# empty when the node was already running.
SPAWNED=
nats_spawn() {
    local n=$1 pid log pidfile
    log=$(nats_logfile "$n")
    pidfile=$(nats_pidfile "$n")
    SPAWNED=
    if pid=$(pid_read "$pidfile" nats-server); then
        say "$(nats_component "$n")" "already running (pid $pid)"
        return
    fi
    port_free nats "$(nats_port "$n")" OMS_NATS_PORT
    port_free nats "$(nats_monitor_port "$n")" OMS_NATS_MONITOR_PORT
    ((CLUSTER == 1)) || port_free nats "$(nats_route_port "$n")" OMS_NATS_PORT
    nats_write_conf "$n"
    log_header nats-server "$log"
    (
        set -a
        # shellcheck source=/dev/null
        . "$PASSWORDS_FILE"
        set +a
        exec setsid nats-server -c "$STATE/nats$(nats_suffix "$n").conf"
    ) </dev/null >>"$log" 2>&1 &
    pid=$!
    echo "$pid" >"$pidfile"
    SPAWNED=$pid
}

# Starts every node, then waits for all: a cluster node is healthy only once
# the JetStream meta group has a quorum, i.e. after its peers started too.
nats_start() {
    local n pid started=()
    if [[ -n $CLUSTER_GIVEN && -f $CLUSTER_FILE && $(cat "$CLUSTER_FILE") != "$CLUSTER" ]] &&
        pid_read "$(nats_pidfile 1)" nats-server >/dev/null; then
        die nats "the stack runs with CLUSTER=$(cat "$CLUSTER_FILE"), not $CLUSTER: \`make down\` first"
    fi
    echo "$CLUSTER" >"$CLUSTER_FILE"
    nats_passwords
    for ((n = 1; n <= CLUSTER; n++)); do
        nats_spawn "$n"
        started[n]=$SPAWNED
    done
    for ((n = 1; n <= CLUSTER; n++)); do
        pid=${started[n]}
        if [[ -z $pid ]]; then
            pid=$(pid_read "$(nats_pidfile "$n")" nats-server) || pid=
            wait_for "$READY_TIMEOUT_S" "$pid" nats_node_healthy "$n" ||
                fail_log nats "$(nats_logfile "$n")" "pid $pid runs but http://127.0.0.1:$(nats_monitor_port "$n")/healthz does not answer (started with other ports? \`make down\` first)"
            continue
        fi
        if ! wait_for "$READY_TIMEOUT_S" "$pid" nats_node_healthy "$n"; then
            rm -f "$(nats_pidfile "$n")"
            fail_start "$(nats_component "$n")" "$pid" "GET http://127.0.0.1:$(nats_monitor_port "$n")/healthz"
        fi
        say "$(nats_component "$n")" "started (pid $pid, port $(nats_port "$n"), monitoring $(nats_monitor_port "$n"))"
    done
}

nats_stop() {
    local n pid
    for n in 1 2 3 4 5; do
        if pid=$(pid_read "$(nats_pidfile "$n")" nats-server); then
            stop_pid "$(nats_component "$n")" "$pid"
            say "$(nats_component "$n")" "stopped"
        fi
        rm -f "$(nats_pidfile "$n")"
    done
}

# ---- PostgreSQL ------------------------------------------------------------

# PostgreSQL refuses to run as root, so root runs it as `postgres`; from /
# because that user may not be allowed into the caller's directory.
pg_as_owner() {
    if is_root; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

pg_far_dir() {
    printf '/var/tmp/oms-%s' "$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)"
}

# True if the server's user can reach .oms/pg and its socket path fits the
# 107-byte limit of a Unix socket address.
pg_can_live_in_checkout() {
    local socket=$STATE/pg/.s.PGSQL.$PG_PORT
    ((${#socket} < 100)) || return 1
    ! is_root || (cd / && runuser -u postgres -- test -x "$STATE")
}

# Sets PGDATA. The data directory is .oms/pg, unless pg_can_live_in_checkout
# says no (a checkout under a 0700 home, as /root is): then it is
# /var/tmp/oms-<hash of the checkout path>/pg and .oms/pg links to it.
# With create=0 only an existing one is found.
pg_locate() {
    local create=${1:-0} far
    if [[ -L $STATE/pg ]]; then
        PGDATA=$(readlink "$STATE/pg")
    elif [[ -d $STATE/pg ]] || ((!create)); then
        PGDATA=$STATE/pg
    elif pg_can_live_in_checkout; then
        PGDATA=$STATE/pg
    else
        far=$(pg_far_dir)
        PGDATA=$far/pg
        mkdir -p "$far"
        chmod 755 "$far"
        ln -s "$PGDATA" "$STATE/pg"
        say postgres "data directory is $PGDATA (the postgres user cannot reach $(rel "$STATE")), linked from .oms/pg"
    fi
    if ((create)); then
        mkdir -p "$PGDATA"
        if is_root; then chown postgres:postgres "$PGDATA"; fi
        chmod 700 "$PGDATA"
    fi
}

pg_pid() {
    local pid
    [[ -n $PGDATA && -s $PGDATA/postmaster.pid ]] || return 1
    pid=$(head -n 1 "$PGDATA/postmaster.pid" | tr -dc 0-9)
    [[ -n $pid ]] && alive "$pid" &&
        [[ $(cat "/proc/$pid/comm" 2>/dev/null) == postgres ]] || return 1
    printf '%s\n' "$pid"
}

pg_healthy() { "$PG_BIN/pg_isready" -q -t 3 -h 127.0.0.1 -p "$PG_PORT" -U oms -d postgres; }

pg_init() {
    [[ -f $PGDATA/PG_VERSION ]] && return 0
    say postgres "initdb in $PGDATA"
    pg_as_owner "$PG_BIN/initdb" -D "$PGDATA" -U oms --auth=trust --no-locale -E UTF8 \
        </dev/null >>"$LOG/pg.log" 2>&1 ||
        fail_log postgres "$LOG/pg.log" "initdb failed"
    echo "include_if_exists = 'oms.conf'" >>"$PGDATA/postgresql.conf"
}

# Written at every start, so that port changes apply to an existing cluster.
pg_write_conf() {
    cat >"$PGDATA/oms.conf" <<EOF
# Generated by scripts/stack.sh at every start: edits are lost.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PGDATA'
max_connections = 200
shared_buffers = 256MB
# Benchmarks measure durable commits.
fsync = on
synchronous_commit = on
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
EOF
    # Opt-in for bench/pipeline/pgstats.sh: statement counts and times cost a
    # little on every statement, so the tests' stack runs without them.
    if [[ ${OMS_PG_STAT_STATEMENTS:-0} == 1 ]]; then
        echo "shared_preload_libraries = 'pg_stat_statements'" >>"$PGDATA/oms.conf"
    fi
    if is_root; then chown postgres:postgres "$PGDATA/oms.conf"; fi
}

pg_create_db() {
    local psql=("$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U oms -d postgres)
    [[ $("${psql[@]}" -tAc "select 1 from pg_database where datname = 'oms'") == 1 ]] && return 0
    "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U oms oms >>"$LOG/pg.log" 2>&1 ||
        fail_log postgres "$LOG/pg.log" "createdb oms failed"
    say postgres "created database oms"
}

pg_start() {
    local pid
    pg_locate 1
    pg_init
    if pid=$(pg_pid); then
        wait_for "$READY_TIMEOUT_S" "$pid" pg_healthy ||
            fail_log postgres "$LOG/pg.log" "pid $pid runs but pg_isready on port $PG_PORT fails (started with other ports? \`make down\` first)"
        pg_create_db
        say postgres "already running (pid $pid)"
        return
    fi
    port_free postgres "$PG_PORT" OMS_PG_PORT
    pg_write_conf
    log_header postgres "$LOG/pg.log"
    # Without -l the server inherits pg_ctl's output, our log file: the
    # postgres user needs no access to .oms/log.
    pg_as_owner "$PG_BIN/pg_ctl" -D "$PGDATA" -w -t "$READY_TIMEOUT_S" start \
        </dev/null >>"$LOG/pg.log" 2>&1 ||
        fail_log postgres "$LOG/pg.log" "pg_ctl start failed"
    wait_for "$READY_TIMEOUT_S" "" pg_healthy ||
        fail_log postgres "$LOG/pg.log" "pg_isready on port $PG_PORT fails after $READY_TIMEOUT_S s"
    pg_create_db
    say postgres "started (pid $(pg_pid || echo '?'), port $PG_PORT, data $(rel "$PGDATA"))"
}

pg_stop() {
    pg_locate 0
    pg_pid >/dev/null || return 0
    pg_as_owner "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w -t 60 stop \
        </dev/null >>"$LOG/pg.log" 2>&1 ||
        fail_log postgres "$LOG/pg.log" "pg_ctl stop -m fast failed"
    say postgres "stopped"
}

# ---- Redis -----------------------------------------------------------------

redis_healthy() { [[ $(timeout 3 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; }

redis_write_conf() {
    cat >"$STATE/redis.conf" <<EOF
# Generated by scripts/stack.sh at every start: edits are lost.
bind 127.0.0.1
port $REDIS_PORT
protected-mode no
daemonize yes
pidfile "$RUN/redis.pid"
logfile "$LOG/redis.log"
dir "$STATE/redis"
appendonly yes
EOF
}

redis_start() {
    local pid
    if pid=$(pid_read "$RUN/redis.pid" redis-server); then
        wait_for "$READY_TIMEOUT_S" "$pid" redis_healthy ||
            fail_log redis "$LOG/redis.log" "pid $pid runs but redis-cli -p $REDIS_PORT ping fails (started with other ports? \`make down\` first)"
        say redis "already running (pid $pid)"
        return
    fi
    port_free redis "$REDIS_PORT" OMS_REDIS_PORT
    mkdir -p "$STATE/redis"
    redis_write_conf
    log_header redis-server "$LOG/redis.log"
    # Errors in the configuration are printed before redis daemonizes.
    redis-server "$STATE/redis.conf" </dev/null >>"$LOG/redis.log" 2>&1 ||
        fail_log redis "$LOG/redis.log" "redis-server did not start"
    wait_for "$READY_TIMEOUT_S" "" redis_healthy ||
        fail_log redis "$LOG/redis.log" "no PONG on port $REDIS_PORT after $READY_TIMEOUT_S s"
    pid=$(pid_read "$RUN/redis.pid" redis-server) ||
        fail_log redis "$LOG/redis.log" "answers on port $REDIS_PORT but wrote no $(rel "$RUN")/redis.pid"
    say redis "started (pid $pid, port $REDIS_PORT)"
}

redis_stop() {
    local pid
    if pid=$(pid_read "$RUN/redis.pid" redis-server); then
        stop_pid redis "$pid"
        rm -f "$RUN/redis.pid"
        say redis "stopped"
    fi
}

# ---- services --------------------------------------------------------------

# Processes per service: two in a cluster, so that losing one loses nothing.
service_replicas() { if ((CLUSTER > 1)); then echo 2; else echo 1; fi; }

# service_port NAME [REPLICA]: replica 2 listens 10 ports above replica 1.
service_port() {
    local i
    for i in "${!SERVICES[@]}"; do
        [[ ${SERVICES[i]} == "$1" ]] && { echo $((HTTP_PORT_BASE + i + (${2:-1} - 1) * 10)); return; }
    done
    return 1
}

# service_component NAME REPLICA: ingest, ingest-2 (pid file and log name).
service_component() { if ((${2:-1} == 1)); then echo "$1"; else echo "$1-$2"; fi; }

service_bin() { printf '%s/services/%s/oms-%s' "$BUILD_DIR" "$1" "$1"; }

service_ready() { http_ok "http://127.0.0.1:$1/readyz"; }

# True if PID runs BIN as it is now: a rebuilt binary shows as "(deleted)".
runs_binary() { [[ $(readlink "/proc/$1/exe" 2>/dev/null) == "$(realpath "$2")" ]]; }

# Services started by service_start and not yet ready: "comp pid port bin".
STARTING=()

# service_start NAME [REPLICA]: the service connects to NATS as its own user,
# with its own inbox prefix; the other users' passwords are not passed on.
# Returns once it runs; services_await waits for it to be ready. Not one by
# one: a service waits at start for the streams other services own (ingest
# for STOCK, inventory for ORDERS...), so none is ready before its peers run.
service_start() {
    local name=$1 replica=${2:-1} bin port pid comp log password
    comp=$(service_component "$name" "$replica")
    log=$LOG/$comp.log
    bin=$(service_bin "$name")
    port=$(service_port "$name" "$replica")
    password=$(nats_password "$name")
    if pid=$(pid_read "$RUN/$comp.pid" "oms-$name"); then
        if runs_binary "$pid" "$bin" && wait_for 5 "$pid" service_ready "$port"; then
            say "$comp" "already running (pid $pid)"
            return
        fi
        say "$comp" "restarting pid $pid (binary rebuilt, another build, or not ready)"
        stop_pid "$comp" "$pid"
        rm -f "$RUN/$comp.pid"
    fi
    port_free "$comp" "$port" OMS_HTTP_PORT_BASE
    log_header "oms-$name" "$log"
    (
        # shellcheck source=/dev/null
        . "$ENV_FILE"
        unset "${!OMS_NATS_PASSWORD_@}"
        export OMS_HTTP_ADDR=127.0.0.1:$port
        export OMS_NATS_USER=$name OMS_NATS_PASSWORD=$password OMS_NATS_INBOX_PREFIX=_INBOX.$name
        exec setsid "$bin"
    ) </dev/null >>"$log" 2>&1 &
    pid=$!
    echo "$pid" >"$RUN/$comp.pid"
    STARTING+=("$comp $pid $port $bin")
}

# services_await: waits for every service service_start started to be ready.
services_await() {
    local entry comp pid port bin
    for entry in "${STARTING[@]}"; do
        read -r comp pid port bin <<<"$entry"
        if ! wait_for "$READY_TIMEOUT_S" "$pid" service_ready "$port"; then
            rm -f "$RUN/$comp.pid"
            fail_start "$comp" "$pid" "GET http://127.0.0.1:$port/readyz"
        fi
        say "$comp" "started (pid $pid, http://127.0.0.1:$port, $(rel "$bin"))"
    done
    STARTING=()
}

# service_stop NAME: stops every replica.
service_stop() {
    local pid comp replica
    for replica in 1 2; do
        comp=$(service_component "$1" "$replica")
        if pid=$(pid_read "$RUN/$comp.pid" "oms-$1"); then
            stop_pid "$comp" "$pid"
            say "$comp" "stopped"
        fi
        rm -f "$RUN/$comp.pid"
    done
}

# ---- .oms/env --------------------------------------------------------------

admin_token() {
    if [[ ! -s $TOKEN_FILE ]]; then
        (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$TOKEN_FILE")
    fi
    cat "$TOKEN_FILE"
}

# Written atomically: services and tests source it while it may be rewritten.
write_env() {
    local name upper token
    token=$(admin_token)
    {
        printf 'export OMS_ROOT=%q\n' "$ROOT"
        echo "export OMS_NATS_URL=$(nats_urls)"
        ((CLUSTER == 1)) || echo "export OMS_STREAM_REPLICAS=$CLUSTER"
        # omsctl and the tests connect as omsctl; the services' passwords are
        # here for the tests, which start services as their own users.
        echo "export OMS_NATS_USER=omsctl"
        echo "export OMS_NATS_PASSWORD=$(nats_password omsctl)"
        for name in "${SERVICES[@]}" integrations; do
            upper=${name^^}
            echo "export OMS_NATS_PASSWORD_$upper=$(nats_password "$name")"
        done
        echo "export OMS_NATS_MONITOR_URL=http://127.0.0.1:$NATS_MONITOR_PORT"
        echo "export OMS_PG_DSN=postgresql://oms@127.0.0.1:$PG_PORT/oms"
        echo "export OMS_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
        echo "export OMS_ADMIN_TOKEN=$token"
        for name in "${SERVICES[@]}"; do
            upper=${name^^}
            echo "export OMS_${upper}_URL=http://127.0.0.1:$(service_port "$name")"
        done
        # $PATH stays literal: it is expanded by whoever sources the file.
        # shellcheck disable=SC2016
        printf 'export PATH=%q:$PATH\n' "$BUILD_DIR/cli"
    } >"$ENV_FILE.tmp"
    mv -f "$ENV_FILE.tmp" "$ENV_FILE"
}

# ---- commands --------------------------------------------------------------

servers_healthy() {
    pid_read "$RUN/nats.pid" nats-server >/dev/null && nats_healthy &&
        [[ -s $PASSWORDS_FILE ]] &&
        pg_locate 0 && pg_pid >/dev/null && pg_healthy &&
        pid_read "$RUN/redis.pid" redis-server >/dev/null && redis_healthy
}

cmd_servers() {
    mkdir -p "$RUN" "$LOG"
    auto_ports
    nats_start
    pg_start
    redis_start
    write_ports
    write_env
}

cmd_services() {
    local name replica skipped=()
    mkdir -p "$RUN" "$LOG"
    servers_healthy || die services "the servers are not all running: run \`make servers\` (or \`make up\`) first"
    [[ -f $ENV_FILE ]] || write_env
    for name in "${SERVICES[@]}"; do
        if [[ -x $(service_bin "$name") ]]; then
            for ((replica = 1; replica <= $(service_replicas); replica++)); do
                service_start "$name" "$replica"
            done
        else
            service_stop "$name"
            skipped+=("$name")
        fi
    done
    services_await
    ((${#skipped[@]} == 0)) ||
        say services "no binary under $(rel "$BUILD_DIR")/services/, not started: ${skipped[*]}"
}

cmd_stop_services() {
    local name
    for name in "${SERVICES[@]}"; do service_stop "$name"; done
}

cmd_down() {
    cmd_stop_services
    redis_stop
    pg_stop
    nats_stop
    rm -f "$PORTS_FILE" "$CLUSTER_FILE"
}

# status_row COMPONENT PID PORT HEALTHCHECK...: PID empty means not running.
status_row() {
    local name=$1 pid=$2 port=$3 state=down
    shift 3
    if [[ -n $pid ]]; then
        if "$@" >/dev/null 2>&1; then state=up; else state=unhealthy; fi
    fi
    printf '%-12s %-8s %-6s %s\n' "$name" "${pid:--}" "$port" "$state"
}

cmd_status() {
    local name port n replica comp
    printf '%-12s %-8s %-6s %s\n' COMPONENT PID PORT STATE
    for ((n = 1; n <= CLUSTER; n++)); do
        status_row "$(nats_component "$n")" "$(pid_read "$(nats_pidfile "$n")" nats-server || true)" \
            "$(nats_port "$n")" nats_node_healthy "$n"
    done
    pg_locate 0
    status_row postgres "$(pg_pid || true)" "$PG_PORT" pg_healthy
    status_row redis "$(pid_read "$RUN/redis.pid" redis-server || true)" "$REDIS_PORT" redis_healthy
    for name in "${SERVICES[@]}"; do
        for ((replica = 1; replica <= $(service_replicas); replica++)); do
            port=$(service_port "$name" "$replica")
            comp=$(service_component "$name" "$replica")
            status_row "$comp" "$(pid_read "$RUN/$comp.pid" "oms-$name" || true)" "$port" \
                service_ready "$port"
        done
    done
}

cmd_logs() {
    local files=() name
    for name in "$@"; do
        case $name in
        postgres) name=pg ;;
        nats-server) name=nats ;;
        esac
        [[ -f $LOG/$name.log ]] ||
            die logs "no $(rel "$LOG")/$name.log; the logs are: $(cd "$LOG" 2>/dev/null && echo *.log)"
        files+=("$LOG/$name.log")
    done
    if ((${#files[@]} == 0)); then
        files=("$LOG"/*.log)
        [[ -e ${files[0]} ]] || die logs "no logs under $(rel "$LOG") yet: run \`make up\`"
    fi
    exec tail -n 30 -F "${files[@]}"
}

cmd_clean() {
    local target=
    cmd_down
    [[ -L $STATE/pg ]] && target=$(dirname "$(readlink "$STATE/pg")")
    rm -rf "$STATE"
    if [[ -n $target && $target == /var/tmp/oms-* ]]; then rm -rf "$target"; fi
    say clean "removed $(rel "$STATE")${target:+ and $target}"
}

main() {
    local cmd=${1:-}
    (($# == 0)) || shift
    check_ports
    case $cmd in
    up) cmd_servers && cmd_services ;;
    servers) cmd_servers ;;
    services) cmd_services ;;
    down) cmd_down ;;
    stop-services) cmd_stop_services ;;
    status) cmd_status ;;
    logs) cmd_logs "$@" ;;
    env) write_env ;;
    check-servers) servers_healthy ;;
    clean) cmd_clean ;;
    nats-up) mkdir -p "$RUN" "$LOG" && nats_start ;;
    nats-down) nats_stop && rm -f "$CLUSTER_FILE" ;;
    *)
        echo "usage: $0 up|servers|services|down|stop-services|status|logs [component...]|env|check-servers|clean|nats-up|nats-down" >&2
        exit 2
        ;;
    esac
}

main "$@"
