#!/usr/bin/env python3
"""pgstats.py - counters of PostgreSQL and nats-server around a bench run.

Used by bench/pipeline/pgstats.sh; reads the stack from the environment
(.oms/env: OMS_PG_DSN, OMS_NATS_MONITOR_URL).

  pgstats.py snapshot FILE        write the counters as JSON
  pgstats.py wait-quiet           until no JetStream consumer has pending or unacked messages
  pgstats.py report BEFORE AFTER ORDERS

Counters are differences of two snapshots, not resets: pg_stat_reset() would
also zero n_dead_tup, which autovacuum decides on, and so change the run it
measures. Only pg_stat_statements is reset (by pgstats.sh), as its figures
are not otherwise per run.
"""
import json
import os
import subprocess
import sys
import time
import urllib.request

PSQL = os.environ.get("PSQL", "psql")
TOP_STATEMENTS = 25


def psql_json(sql):
    """Rows of `sql` as a list of dicts (one json_agg round trip)."""
    wrapped = "SELECT coalesce(json_agg(t), '[]') FROM (%s) t" % sql
    out = subprocess.run([PSQL, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                          "-d", os.environ["OMS_PG_DSN"], "-c", wrapped],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def nats(path):
    base = os.environ["OMS_NATS_MONITOR_URL"].rstrip("/")
    with urllib.request.urlopen(base + path, timeout=10) as r:
        return json.load(r)


def consumers(jsz):
    """(stream, consumer) -> consumer info, over every account."""
    found = {}
    for acc in jsz.get("account_details") or []:
        for st in acc.get("stream_detail") or []:
            for c in st.get("consumer_detail") or []:
                found[st["name"] + "/" + c["name"]] = c
    return found


def streams(jsz):
    found = {}
    for acc in jsz.get("account_details") or []:
        for st in acc.get("stream_detail") or []:
            found[st["name"]] = st.get("state", {})
    return found


JSZ = "/jsz?accounts=true&streams=true&consumers=true"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def backend_cpu():
    """pid -> {name, cpu_s} for every backend of this server on this machine.

    A service names each connection it opens (application_name: the consumer
    or worker using it), so the CPU PostgreSQL spent for each one is the
    backend process's user + system time from /proc."""
    found = {}
    for r in psql_json("SELECT pid, coalesce(nullif(application_name, ''), backend_type) AS name,"
                       " coalesce(usename, '') AS role FROM pg_stat_activity"):
        try:
            with open("/proc/%d/stat" % r["pid"]) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone, or another machine's server
        ticks = int(fields[11]) + int(fields[12])  # utime, stime
        found[str(r["pid"])] = {"name": "%s/%s" % (r["role"], r["name"]) if r["role"] else r["name"],
                                "cpu_s": ticks / CLK_TCK}
    return found


def snapshot(path):
    snap = {
        "time": time.time(),
        "tables": psql_json(
            "SELECT schemaname || '.' || relname AS name, n_tup_ins, n_tup_upd, n_tup_hot_upd,"
            " n_tup_del, n_dead_tup, n_live_tup, autovacuum_count, autoanalyze_count,"
            " vacuum_count, seq_scan, seq_tup_read, coalesce(idx_scan, 0) AS idx_scan,"
            " pg_total_relation_size(relid) AS bytes FROM pg_stat_user_tables"),
        "indexes": psql_json(
            "SELECT schemaname || '.' || indexrelname AS name, schemaname || '.' || relname AS tbl,"
            " idx_scan, pg_relation_size(indexrelid) AS bytes FROM pg_stat_user_indexes"),
        "database": psql_json(
            "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted,"
            " tup_returned, tup_fetched, blks_read, blks_hit, temp_bytes"
            " FROM pg_stat_database WHERE datname = current_database()")[0],
        "wal": psql_json("SELECT wal_records, wal_fpi, wal_bytes::bigint AS wal_bytes,"
                         " wal_write, wal_sync FROM pg_stat_wal")[0],
        "checkpoints": psql_json("SELECT checkpoints_timed + checkpoints_req AS checkpoints,"
                                 " buffers_checkpoint, buffers_backend FROM pg_stat_bgwriter")[0],
        "backends": backend_cpu(),
        "varz": {k: nats("/varz").get(k, 0) for k in ("in_msgs", "out_msgs", "in_bytes", "out_bytes")},
        "jsz": nats(JSZ),
    }
    with open(path, "w") as f:
        json.dump(snap, f)


def statements():
    return psql_json(
        "SELECT regexp_replace(query, '\\s+', ' ', 'g') AS query, calls, total_exec_time,"
        " rows, wal_bytes::bigint AS wal_bytes, wal_records, shared_blks_dirtied"
        " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
        " WHERE d.datname = current_database()"
        # this script's own snapshots
        " AND query NOT LIKE 'SELECT coalesce(json_agg(t)%' AND query NOT LIKE '%pg_stat_statements_reset%'"
        " ORDER BY total_exec_time DESC")


def wait_quiet(limit_s=120):
    deadline = time.time() + limit_s
    while time.time() < deadline:
        busy = sum(c.get("num_pending", 0) + c.get("num_ack_pending", 0)
                   for c in consumers(nats(JSZ)).values())
        if busy == 0:
            return
        time.sleep(0.5)
    print("pgstats: consumers still busy after %d s; counting anyway" % limit_s, file=sys.stderr)


def per(n, orders):
    return n / orders


def report_statements(orders):
    rows = statements()
    total_ms = sum(r["total_exec_time"] for r in rows)
    calls = sum(r["calls"] for r in rows)
    print("== PostgreSQL statements (pg_stat_statements, all of database oms): %.1f calls/order, %.1f us/order execution"
          % (per(calls, orders), total_ms * 1000 / orders))
    print("  %8s %9s %8s %9s %10s  %s" % ("calls/o", "us/order", "ms/call", "rows/o", "WAL B/o", "statement"))
    for r in rows[:TOP_STATEMENTS]:
        print("  %8.2f %9.1f %8.3f %9.2f %10.1f  %s" % (
            per(r["calls"], orders), r["total_exec_time"] * 1000 / orders,
            r["total_exec_time"] / max(r["calls"], 1), per(r["rows"], orders),
            per(r["wal_bytes"], orders), r["query"][:150]))


def report_backends(b, a, orders):
    """CPU per PostgreSQL connection name, over the backends alive at the end
    (the services keep theirs for their life; one that ended during the run
    is missing, one that started counts from zero)."""
    by_name = {}
    for pid, now in a.get("backends", {}).items():
        was = b.get("backends", {}).get(pid)
        spent = now["cpu_s"] - (was["cpu_s"] if was and was["name"] == now["name"] else 0)
        by_name[now["name"]] = by_name.get(now["name"], 0) + spent
    total = sum(by_name.values())
    print("== PostgreSQL CPU by connection (backend user + system time from /proc): %.1f us/order"
          % (total * 1e6 / orders))
    print("  %9s  %s" % ("us/order", "role/connection"))
    for name, spent in sorted(by_name.items(), key=lambda kv: -kv[1]):
        if spent * 1e6 / orders >= 0.5:
            print("  %9.1f  %s" % (spent * 1e6 / orders, name))


def report_database(b, a, orders):
    d = {k: a["database"][k] - b["database"][k] for k in a["database"]}
    w = {k: a["wal"][k] - b["wal"][k] for k in a["wal"]}
    c = {k: a["checkpoints"][k] - b["checkpoints"][k] for k in a["checkpoints"]}
    print("== database (pg_stat_database, per order)")
    print("  commits %.2f  rollbacks %.3f  rows inserted %.2f updated %.2f deleted %.2f  returned %.0f fetched %.1f"
          % tuple(per(d[k], orders) for k in ("xact_commit", "xact_rollback", "tup_inserted", "tup_updated",
                                             "tup_deleted", "tup_returned", "tup_fetched")))
    print("  blocks hit %.1f read %.2f  temp bytes %.0f" % tuple(
        per(d[k], orders) for k in ("blks_hit", "blks_read", "temp_bytes")))
    print("== WAL (pg_stat_wal): %.0f bytes/order, %.1f records/order, %.2f full-page images/order,"
          " %.2f WAL writes/order, %.2f WAL fsyncs/order; %d checkpoints, %d buffers written by them"
          % (per(w["wal_bytes"], orders), per(w["wal_records"], orders), per(w["wal_fpi"], orders),
             per(w["wal_write"], orders), per(w["wal_sync"], orders), c["checkpoints"], c["buffers_checkpoint"]))


def report_tables(b, a, orders):
    before = {t["name"]: t for t in b["tables"]}
    print("== tables (pg_stat_user_tables, per order; dead = n_dead_tup at the end; av = autovacuum runs)")
    print("  %7s %7s %7s %7s %8s %4s %4s %7s %9s %9s  %s" % ("ins/o", "upd/o", "hot/o", "del/o", "dead", "av", "an",
                                                          "seqsc/o", "seqrows/o", "size MB", "table"))
    rows = []
    for t in a["tables"]:
        p = before.get(t["name"], {k: 0 for k in t})
        delta = {k: t[k] - p.get(k, 0) for k in ("n_tup_ins", "n_tup_upd", "n_tup_hot_upd", "n_tup_del",
                                                  "autovacuum_count", "autoanalyze_count", "seq_scan",
                                                  "seq_tup_read")}
        if not any(delta[k] for k in ("n_tup_ins", "n_tup_upd", "n_tup_del", "seq_tup_read")):
            continue
        rows.append((delta["n_tup_ins"] + delta["n_tup_upd"] + delta["n_tup_del"], t, delta))
    for _, t, d in sorted(rows, key=lambda r: -r[0]):
        print("  %7.2f %7.2f %7.2f %7.2f %8d %4d %4d %7.3f %9.1f %9.1f  %s" % (
            per(d["n_tup_ins"], orders), per(d["n_tup_upd"], orders), per(d["n_tup_hot_upd"], orders),
            per(d["n_tup_del"], orders), t["n_dead_tup"], d["autovacuum_count"], d["autoanalyze_count"],
            per(d["seq_scan"], orders), per(d["seq_tup_read"], orders), t["bytes"] / 1e6, t["name"]))


def report_indexes(b, a, orders):
    """Indexes of tables written during the run, with the scans they served:
    an index with no scan is written on every insert for no reader."""
    before = {i["name"]: i for i in b["indexes"]}
    tb = {t["name"]: t for t in b["tables"]}
    written = {}
    for t in a["tables"]:
        p = tb.get(t["name"], {})
        written[t["name"]] = (t["n_tup_ins"] - p.get("n_tup_ins", 0)) + (t["n_tup_upd"] - p.get("n_tup_upd", 0)) \
            - (t["n_tup_hot_upd"] - p.get("n_tup_hot_upd", 0))
    print("== indexes of written tables (pg_stat_user_indexes): index entries written per order"
          " (inserts + non-HOT updates) and scans per order during the run")
    print("  %8s %8s %9s  %s" % ("writes/o", "scans/o", "size MB", "index"))
    for i in sorted(a["indexes"], key=lambda i: (i["tbl"], i["name"])):
        w = written.get(i["tbl"], 0)
        if w <= 0:
            continue
        scans = i["idx_scan"] - before.get(i["name"], {}).get("idx_scan", 0)
        print("  %8.2f %8.2f %9.1f  %s%s" % (per(w, orders), per(scans, orders), i["bytes"] / 1e6, i["name"],
                                            "   <- no scan during the run" if scans == 0 else ""))


def report_nats(b, a, orders):
    v = {k: a["varz"][k] - b["varz"][k] for k in a["varz"]}
    api_b, api_a = b["jsz"].get("api", {}), a["jsz"].get("api", {})
    print("== nats-server (/varz, /jsz, per order)")
    print("  messages in %.2f (%.0f bytes)  out %.2f (%.0f bytes)  JetStream API calls %.2f (errors %d)" % (
        per(v["in_msgs"], orders), per(v["in_bytes"], orders), per(v["out_msgs"], orders),
        per(v["out_bytes"], orders), per(api_a.get("total", 0) - api_b.get("total", 0), orders),
        api_a.get("errors", 0) - api_b.get("errors", 0)))
    sb, sa = streams(b["jsz"]), streams(a["jsz"])
    stored = {n: s.get("last_seq", 0) - sb.get(n, {}).get("last_seq", 0) for n, s in sa.items()}
    print("  stored per order: " + "  ".join("%s %.2f" % (n, per(m, orders)) for n, m in sorted(stored.items()) if m))
    cb, ca = consumers(b["jsz"]), consumers(a["jsz"])
    delivered = acked = redelivered = 0
    print("  %10s %10s %10s  %s" % ("deliv/o", "acked/o", "redeliv", "consumer"))
    for name, c in sorted(ca.items()):
        p = cb.get(name, {})
        d = c["delivered"]["consumer_seq"] - p.get("delivered", {}).get("consumer_seq", 0)
        k = c["ack_floor"]["consumer_seq"] - p.get("ack_floor", {}).get("consumer_seq", 0)
        r = c.get("num_redelivered", 0) - p.get("num_redelivered", 0)
        delivered, acked, redelivered = delivered + d, acked + k, redelivered + r
        if d:
            print("  %10.2f %10.2f %10d  %s" % (per(d, orders), per(k, orders), r, name))
    print("  %10.2f %10.2f %10d  all consumers (each delivery is acked once: acks/order = acked/order)"
          % (per(delivered, orders), per(acked, orders), redelivered))
    # Pull requests (MSG.NEXT) are not JetStream API calls in /jsz: what
    # comes in besides publishes and acks is mostly fetches.
    published = sum(stored.values())
    print("  in = %.2f stored publishes + %.2f acks + %.2f other (mostly pull requests, i.e. fetches)"
          % (per(published, orders), per(acked, orders), per(v["in_msgs"] - published - acked, orders)))


def report(before_path, after_path, orders):
    with open(before_path) as f:
        b = json.load(f)
    with open(after_path) as f:
        a = json.load(f)
    print("== %d orders; counters over %.0f s (the run, then until every consumer was idle, then 11 s"
          " for PostgreSQL to publish its table counters)" % (orders, a["time"] - b["time"]))
    report_statements(orders)
    report_backends(b, a, orders)
    report_database(b, a, orders)
    report_tables(b, a, orders)
    report_indexes(b, a, orders)
    report_nats(b, a, orders)


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "snapshot":
        snapshot(sys.argv[2])
    elif len(sys.argv) >= 2 and sys.argv[1] == "wait-quiet":
        wait_quiet()
    elif len(sys.argv) >= 5 and sys.argv[1] == "report":
        report(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
