#!/usr/bin/env bash
# bench/pipeline - orders from import to paid/failed through every service.
# Needs the stack and services (`make up`). Usage:
#   bench/pipeline/run.sh [ORDERS] [--rate R]   (default 20000 orders, as fast as possible;
#                                                --rate R offers R orders/s)
#   bench/pipeline/run.sh ORDERS RATE            (the same, the older form)
# Stock: 50 SKUs with enough units for about 90% of the demand.
#
# Besides orders/s and latency it prints the CPU spent during the run by each
# process group of this stack (found by the pids in .oms/run and PostgreSQL's
# postmaster.pid, so that other stacks on the same machine are not counted),
# by the bench itself and by the whole machine (/proc/stat), in seconds and
# µs per order, and the peak RSS of each service during the run.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
cd "$ROOT"
. .oms/env
ORDERS=20000
RATE=0
positional=0
while (($#)); do
    case $1 in
    --rate) RATE=${2:?--rate needs orders/s}; shift 2 ;;
    --rate=*) RATE=${1#--rate=}; shift ;;
    -h | --help) sed -n 3,6p "${BASH_SOURCE[0]}"; exit 0 ;;
    *)
        if ((positional == 0)); then ORDERS=$1; else RATE=$1; fi
        positional=$((positional + 1)); shift ;;
    esac
done
[[ $ORDERS =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: ORDERS must be a positive integer, not '$ORDERS'" >&2; exit 2; }
[[ $RATE =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "run.sh: --rate must be orders/s (0 = as fast as possible), not '$RATE'" >&2; exit 2; }
BIN=${BUILD_DIR:-build}
SERVICES=(ingest inventory payment notify refund analytics)
STATE=${OMS_STACK_DIR:-$ROOT/.oms}
tag=$(date +%s)

# pid_of NAME: the pid recorded in .oms/run/NAME.pid, if that process lives.
pid_of() {
    local f=$STATE/run/$1.pid pid
    [[ -s $f ]] || return 1
    pid=$(tr -dc 0-9 <"$f")
    [[ -n $pid && -d /proc/$pid ]] && echo "$pid"
}

postmaster_pid() {
    local data=$STATE/pg pid
    [[ -L $data ]] && data=$(readlink "$data")
    [[ -s $data/postmaster.pid ]] || return 1
    pid=$(head -n 1 "$data/postmaster.pid" | tr -dc 0-9)
    [[ -n $pid && -d /proc/$pid ]] && echo "$pid"
}

# The process groups: "pid group" lines for the roots; PostgreSQL's backends
# are the postmaster's children and are added by cpu_snapshot. A cluster
# stack (make up CLUSTER=3) adds nats-2, nats-3 and NAME-2 for each service:
# each counts in its group.
group_roots() {
    local name pid n
    for n in "" -2 -3; do
        pid=$(pid_of "nats$n") && echo "$pid nats-server"
    done
    pid=$(postmaster_pid) && echo "$pid postgresql"
    pid=$(pid_of redis) && echo "$pid redis"
    for name in "${SERVICES[@]}"; do
        for n in "" -2; do
            pid=$(pid_of "$name$n") && echo "$pid $name"
        done
    done
    echo "$$ bench"
}

# cpu_snapshot: "group ticks" per group, ticks = utime+stime+cutime+cstime
# of the group's processes (a backend that exits during the run is then
# counted in the postmaster's cutime, so the difference of two snapshots is
# the group's CPU in between). The bench's ticks are this shell's children:
# bench-pipeline, once it has exited.
cpu_snapshot() {
    {
        group_roots | sed 's/^/root /'
        cat /proc/[0-9]*/stat 2>/dev/null || true
    } | awk -v self=$$ '
        $1 == "root" { group[$2] = $3; next }
        {
            # comm may hold spaces and parentheses: fields count from the last ")".
            rest = substr($0, match($0, /\) [A-Z] /) + 2)
            n = split(rest, f, " ")
            pid = $1; ppid = f[2]
            ticks[pid] = (pid == self) ? f[14] + f[15] : f[12] + f[13] + f[14] + f[15]
            parent[pid] = ppid
        }
        END {
            for (pid in ticks) {
                g = (pid in group) ? group[pid] : ((parent[pid] in group && group[parent[pid]] == "postgresql") ? "postgresql" : "")
                if (g != "") sum[g] += ticks[pid]
            }
            for (g in sum) print g, sum[g]
        }'
}

machine_busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

# Peak RSS per run: writing 5 to clear_refs resets VmHWM (Linux >= 4.0); where
# that is refused the peak is the process's since it started (said so).
reset_peaks() {
    local name pid
    hwm_reset=1
    for name in "${SERVICES[@]}" "${SERVICES[@]/%/-2}"; do
        pid=$(pid_of "$name") || continue
        echo 5 2>/dev/null >"/proc/$pid/clear_refs" || hwm_reset=0
    done
}

print_cpu() {
    local before=$1 after=$2 busy0=$3 busy1=$4 hz
    hz=$(getconf CLK_TCK)
    echo "cpu during the run (s, us/order):"
    join -a 2 -e 0 -o 0,1.2,2.2 <(sort <<<"$before") <(sort <<<"$after") |
        awk -v hz="$hz" -v n="$ORDERS" '
            { d[$1] = ($3 - $2) / hz; s += d[$1] }
            END {
                split("postgresql nats-server redis ingest inventory payment notify refund analytics bench", order, " ")
                for (i = 1; i in order; i++) if (order[i] in d)
                    printf "  %-12s %8.2f s %9.1f us/order\n", order[i], d[order[i]], d[order[i]] * 1e6 / n
                printf "  %-12s %8.2f s %9.1f us/order\n", "stack+bench", s, s * 1e6 / n
            }'
    awk -v a="$busy0" -v b="$busy1" -v hz="$hz" -v n="$ORDERS" 'BEGIN {
        d = (b - a) / hz; printf "  %-12s %8.2f s %9.1f us/order (/proc/stat, every process on the machine)\n", "machine", d, d * 1e6 / n }'
}

print_peaks() {
    local name pid line=""
    # The largest of a service's processes (one, or two on a cluster stack).
    for name in "${SERVICES[@]}"; do
        line+=$(for n in "" -2; do
            pid=$(pid_of "$name$n") || continue
            awk '/VmHWM/ {print $2}' "/proc/$pid/status"
        done | sort -n | tail -n 1 | awk -v n="$name" '{printf "%s_peak_rss_mb=%.1f ", n, $1 / 1024}')
    done
    ((hwm_reset)) || line+="(peaks since each service started: clear_refs refused)"
    echo "$line"
}

# Demand: 4 lines of 1-3 units (2 on average) over 50 SKUs.
per_sku=$(( ORDERS * 4 * 2 * 9 / 10 / 50 ))
csv=$(mktemp)
{ echo "sku,name,on_hand,price"
  for i in $(seq 0 49); do printf 'BENCH-SKU-%03d,Bench product %d,%d,1.00\n' "$i" "$i" "$per_sku"; done
} > "$csv"
omsctl stock load "$csv" > /dev/null
rm -f "$csv"
sleep 1
reset_peaks
cpu0=$(cpu_snapshot)
busy0=$(machine_busy_ticks)
status=0
"$BIN/bench/bench-pipeline" --orders "$ORDERS" --rate "$RATE" --tag "$tag" || status=$?
busy1=$(machine_busy_ticks)
cpu1=$(cpu_snapshot)
print_cpu "$cpu0" "$cpu1" "$busy0" "$busy1"
print_peaks
exit "$status"
