#!/usr/bin/env python3
"""test_dashboards.py - every query of every Grafana dashboard, evaluated by a
real Prometheus against a real stack: no panel may come back empty.

On the servers `make test` runs (.oms/env), the test starts the six services
of the ASan build on ports of its own, Debian's prometheus-postgres-exporter
and prometheus-redis-exporter against the stack's PostgreSQL and Redis, and
Debian's prometheus scraping all of them every second with the alert rules of
k8s/prometheus/rules/ loaded. It then makes the data every panel shows: a
catalogue, an import whose orders end paid, failed for stock and failed for
payment, a refund, and a message no service can decode (a dead letter).

Then each `expr` of each panel of k8s/grafana/*.json, with Grafana's
variables replaced (VARIABLES below, template variables by their `All`
regex), goes to /api/v1/query; an expression answering an error or no series
fails the test, named by dashboard and panel. The rules must all evaluate
without error, and OMSDeadLetters must fire for analytics.

Panels of metrics that exist only in Kubernetes - the NATS exporter sidecar,
which Debian does not package - are skipped only when every metric they name
is in K8S_ONLY_METRICS, and that list may hold NATS exporter metrics only
(prefixes jetstream_ and gnatsd_, see docs/operations.md).

usage: test_dashboards.py SOURCE_DIR POISON_BINARY    (env: .oms/env, OMS_BIN_DIR)
"""
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

SERVICES = ["ingest", "inventory", "payment", "notify", "refund", "analytics"]

# What Grafana puts in place of its global variables: windows long enough for
# two scrapes at 1 s and short enough to see this test's data.
VARIABLES = {
    "$__rate_interval": "30s",
    "$__interval": "5s",
    "$__range": "10m",
}

# Metrics only the Kubernetes deployment has (the NATS exporter sidecar,
# prometheus-nats-exporter -varz -jsz=all): a panel naming only these is not
# evaluated here. Names from the exporter's collector sources, not verified
# locally (docs/operations.md, "Dashboards and alerts").
K8S_ONLY_METRICS = {
    "jetstream_stream_total_messages",
    "jetstream_stream_total_bytes",
    "jetstream_consumer_num_pending",
    "jetstream_consumer_num_ack_pending",
    "jetstream_consumer_num_redelivered",
    "gnatsd_varz_connections",
    "gnatsd_varz_in_msgs",
    "gnatsd_varz_out_msgs",
}
NATS_EXPORTER_PREFIXES = ("jetstream_", "gnatsd_")

READY_TIMEOUT_S = 30
DATA_TIMEOUT_S = 150
RUN_ID = "%d" % time.time()


def fail(msg):
    print("dashboards: " + msg, file=sys.stderr)
    sys.exit(1)


def port_busy(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


def wait_http(url, proc, what, log):
    deadline = time.time() + READY_TIMEOUT_S
    while time.time() < deadline:
        if proc.poll() is not None:
            fail("%s exited with status %s during start-up; see %s" % (what, proc.returncode, log))
        try:
            if http_get(url, 2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    fail("%s not ready at %s after %d s; see %s" % (what, url, READY_TIMEOUT_S, log))


class Stack:
    """The processes this test started, stopped in reverse order at exit."""

    def __init__(self, work):
        self.work = work
        self.procs = []

    def start(self, what, argv, env, ready_url):
        log = os.path.join(self.work, what + ".log")
        with open(log, "ab") as f:
            p = subprocess.Popen(argv, env=env, stdout=f, stderr=f, stdin=subprocess.DEVNULL)
        self.procs.append(p)
        wait_http(ready_url, p, what, log)
        return p

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def service_env(name, port, redis_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMS_NATS_PASSWORD_")}
    env["OMS_HTTP_ADDR"] = "127.0.0.1:%d" % port
    password = os.environ.get("OMS_NATS_PASSWORD_" + name.upper())
    if password is not None:
        env.update(OMS_NATS_USER=name, OMS_NATS_PASSWORD=password,
                   OMS_NATS_INBOX_PREFIX="_INBOX." + name)
    if name == "payment":
        env["OMS_PAYMENT_SUCCESS_RATE"] = "0.7"  # some payments fail
    if name == "analytics":
        env["OMS_REDIS_URL"] = redis_url
    if name == "ingest":
        env["OMS_INGEST_SEAL_MS"] = "200"
    return env


def redis_db_url(base, db):
    """OMS_REDIS_URL with its database replaced by db."""
    u = urllib.parse.urlsplit(base)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/%d" % db, "", ""))


def write_prometheus_config(path, root, ports):
    targets = "".join(
        "      - targets: ['127.0.0.1:%d']\n"
        "        labels: {service: %s, pod: %s-local, pod_ready: 'true'}\n" % (ports[s], s, s)
        for s in SERVICES)
    rules = sorted(glob.glob(os.path.join(root, "k8s/prometheus/rules/*.yml")))
    with open(path, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n")
        f.write("rule_files:\n" + "".join("  - %s\n" % r for r in rules))
        f.write("scrape_configs:\n  - job_name: oms\n    static_configs:\n" + targets)
        f.write("  - job_name: postgres\n    static_configs:\n"
                "      - targets: ['127.0.0.1:%d']\n        labels: {pod: postgres-local}\n"
                % ports["postgres-exporter"])
        f.write("  - job_name: redis\n    static_configs:\n"
                "      - targets: ['127.0.0.1:%d']\n        labels: {pod: redis-local}\n"
                % ports["redis-exporter"])


def start_everything(stack, root, ports):
    bindir = os.environ.get("OMS_BIN_DIR") or os.environ.get("OMS_BUILD_DIR")
    if not bindir:
        fail("OMS_BIN_DIR is not set: run through `make test`")
    redis_url = redis_db_url(os.environ["OMS_REDIS_URL"], 4)
    for s in SERVICES:
        stack.start(s, [os.path.join(bindir, "services", s, "oms-" + s)],
                    service_env(s, ports[s], redis_url),
                    "http://127.0.0.1:%d/readyz" % ports[s])
    dsn = os.environ["OMS_PG_DSN"]
    dsn += ("&" if "?" in dsn else "?") + "sslmode=disable"
    stack.start("postgres-exporter",
                ["prometheus-postgres-exporter",
                 "--web.listen-address=127.0.0.1:%d" % ports["postgres-exporter"]],
                dict(os.environ, DATA_SOURCE_NAME=dsn),
                "http://127.0.0.1:%d/metrics" % ports["postgres-exporter"])
    redis_addr = urllib.parse.urlsplit(os.environ["OMS_REDIS_URL"]).netloc
    stack.start("redis-exporter",
                ["prometheus-redis-exporter", "-redis.addr", "redis://" + redis_addr,
                 "-web.listen-address", "127.0.0.1:%d" % ports["redis-exporter"]],
                dict(os.environ), "http://127.0.0.1:%d/metrics" % ports["redis-exporter"])
    config = os.path.join(stack.work, "prometheus.yml")
    write_prometheus_config(config, root, ports)
    stack.start("prometheus",
                ["prometheus", "--config.file=" + config,
                 "--storage.tsdb.path=" + os.path.join(stack.work, "data"),
                 "--web.listen-address=127.0.0.1:%d" % ports["prometheus"]],
                dict(os.environ), "http://127.0.0.1:%d/-/ready" % ports["prometheus"])
    return bindir


def omsctl(bindir, *args):
    r = subprocess.run([os.path.join(bindir, "cli", "omsctl")] + list(args),
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        fail("omsctl %s exited %d: %s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
    return r.stdout


def psql(sql):
    r = subprocess.run(["psql", "-XAtq", os.environ["OMS_PG_DSN"], "-c", sql],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        fail("psql %r: %s" % (sql, r.stderr))
    return r.stdout.split()


def wait_pg(sql, want, timeout_s=60):
    deadline = time.time() + timeout_s
    got = None
    while time.time() < deadline:
        got = int(psql(sql)[0])
        if got >= want:
            return got
        time.sleep(0.5)
    fail("%s is %s after %d s, expected %d" % (sql, got, timeout_s, want))


def make_data(work, bindir, poison):
    """Paid, stock-failed, payment-failed and refunded orders; a dead letter."""
    n, prefix = 60, "MON%s" % RUN_ID
    products = os.path.join(work, "products.csv")
    with open(products, "w") as f:
        f.write("sku,name,on_hand,price\n%s-A,Plenty,100000,10.00\n%s-B,Scarce,5,20.00\n"
                % (prefix, prefix))
    omsctl(bindir, "stock", "load", products)
    wait_pg("SELECT count(*) FROM inventory.products WHERE sku LIKE '%s-%%'" % prefix, 2)
    orders = os.path.join(work, "orders.csv")
    with open(orders, "w") as f:
        f.write("order_id,customer_id,customer_name,customer_email,sku,qty,unit_price\n")
        for i in range(n):
            sku = "B" if i % 4 == 0 else "A"  # B runs out after a few orders
            f.write("%s-%03d,C-%02d,Customer %02d,c%02d@example.com,%s-%s,%d,%d.%02d\n"
                    % (prefix, i, i % 7, i % 7, i % 7, prefix, sku, 1 + i % 3, 5 + i, i % 100))
    omsctl(bindir, "import", orders)
    terminal = ("SELECT count(*) FROM ingest.orders WHERE order_id LIKE '%s-%%'"
                " AND status IN ('paid', 'failed')" % prefix)
    wait_pg(terminal, n)
    paid = psql("SELECT order_id FROM ingest.orders WHERE order_id LIKE '%s-%%'"
                " AND status = 'paid' ORDER BY order_id LIMIT 1" % prefix)
    if not paid:
        fail("no order of the import was paid")
    omsctl(bindir, "refund", paid[0], "1.00", "--key", "mon-" + RUN_ID)
    r = subprocess.run([poison, "order.paid", "poison-" + RUN_ID], timeout=60)
    if r.returncode != 0:
        fail("publishing the dead letter failed")
    wait_pg("SELECT count(*) FROM analytics.dead_letters WHERE event_id = 'poison-%s'" % RUN_ID, 1)


# ---- the dashboards ------------------------------------------------------

def panels(items):
    for p in items:
        yield p
        yield from panels(p.get("panels", []))  # rows hold their panels


def template_values(dash):
    """Each template variable -> what the test puts in its place."""
    out = {}
    for v in dash.get("templating", {}).get("list", []):
        cur = v.get("current", {}).get("value")
        if isinstance(cur, list):
            cur = cur[0] if len(cur) == 1 else None
        out[v["name"]] = cur if cur and cur != "$__all" else ".+"
    return out


def substitute(expr, tvars):
    for k, v in VARIABLES.items():
        expr = expr.replace(k, v)
    for name in sorted(tvars, key=len, reverse=True):
        expr = expr.replace("${%s}" % name, tvars[name]).replace("$" + name, tvars[name])
    if "$" in expr:
        fail("unknown Grafana variable left in %r" % expr)
    return expr


METRIC_NAME = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b")


def k8s_only(expr):
    """True if the expression names a Kubernetes-only metric, and no other
    metric of OMS or the exporters (so that no mixed query hides)."""
    names = set(METRIC_NAME.findall(re.sub(r'"[^"]*"', "", expr)))
    if not names & K8S_ONLY_METRICS:
        return False
    others = {n for n in names - K8S_ONLY_METRICS
              if n == "up" or n.startswith(("oms_", "pg_", "redis_") + NATS_EXPORTER_PREFIXES)}
    if others:
        fail("%r mixes Kubernetes-only NATS metrics with %s: split the query" % (expr, sorted(others)))
    return True


def dashboard_queries(root):
    """(where, expr) of every Prometheus target; fails on a panel whose data
    source is not the provisioned Prometheus or whose type is not core."""
    uid = datasource_uid(root)
    out = []
    for f in sorted(glob.glob(os.path.join(root, "k8s/grafana/*.json"))):
        dash = json.load(open(f))
        tvars = template_values(dash)
        for v in dash.get("templating", {}).get("list", []):
            if v.get("type") == "query" and (v.get("datasource") or {}).get("uid") != uid:
                fail("%s: variable %r uses data source %r, provisioned is only %r"
                     % (os.path.basename(f), v["name"], v.get("datasource"), uid))
        for p in panels(dash.get("panels", [])):
            if p.get("type") == "row":
                continue
            where = "%s: panel %r" % (os.path.basename(f), p.get("title"))
            if p.get("type") not in CORE_PANELS:
                fail("%s is of type %r, which no manifest installs" % (where, p.get("type")))
            for t in p.get("targets", []):
                ds = t.get("datasource") or p.get("datasource") or {}
                if ds.get("uid") != uid:
                    fail("%s uses data source %r, provisioned is only %r" % (where, ds, uid))
                if not t.get("expr"):
                    fail("%s has a target without expr" % where)
                out.append(("%s, query %s" % (where, t.get("refId", "?")),
                            substitute(t["expr"], tvars)))
    return out


# Grafana's own panel types (no plugin to install).
CORE_PANELS = {"timeseries", "stat", "gauge", "bargauge", "table", "text", "barchart",
               "piechart", "heatmap", "histogram", "state-timeline", "status-history"}


def datasource_uid(root):
    path = os.path.join(root, "k8s/grafana/provisioning/datasources/prometheus.yaml")
    m = re.findall(r"^\s*uid:\s*(\S+)", open(path).read(), re.M)
    if len(m) != 1:
        fail("%s must provision exactly one data source (uid), found %s" % (path, m))
    return m[0]


def query(prom_port, expr):
    url = "http://127.0.0.1:%d/api/v1/query?%s" % (
        prom_port, urllib.parse.urlencode({"query": expr}))
    try:
        body = json.loads(http_get(url, 10)[1])
    except urllib.error.HTTPError as e:
        body = json.loads(e.read().decode() or "{}")
    if body.get("status") != "success":
        return None, body.get("error", "no answer")
    return body["data"]["result"], None


def check_allow_list(queries):
    bad = sorted(m for m in K8S_ONLY_METRICS if not m.startswith(NATS_EXPORTER_PREFIXES))
    if bad:
        fail("K8S_ONLY_METRICS may hold NATS exporter metrics only, not %s" % bad)
    used = set()
    for _, expr in queries:
        used |= set(METRIC_NAME.findall(expr)) & K8S_ONLY_METRICS
    if K8S_ONLY_METRICS - used:
        fail("K8S_ONLY_METRICS lists metrics no panel uses: %s" % sorted(K8S_ONLY_METRICS - used))


def evaluate(prom_port, queries):
    """Polls until every query has a series or DATA_TIMEOUT_S passes."""
    pending = [(w, e) for w, e in queries if not k8s_only(e)]
    skipped = len(queries) - len(pending)
    deadline = time.time() + DATA_TIMEOUT_S
    errors = {}
    while pending and time.time() < deadline:
        still = []
        for where, expr in pending:
            result, err = query(prom_port, expr)
            if err is not None or not result:
                errors[where] = (expr, err or "no series")
                still.append((where, expr))
        pending = still
        if pending:
            time.sleep(2)
    for where, expr in pending:
        print("dashboards: %s: %s: %s" % (where, errors[where][1], expr), file=sys.stderr)
    if pending:
        fail("%d of %d queries return nothing" % (len(pending), len(queries)))
    print("dashboards: %d queries return data (%d Kubernetes-only NATS queries skipped)"
          % (len(queries) - skipped, skipped))


def check_rules(prom_port):
    deadline = time.time() + 30
    while True:
        rules = json.loads(http_get("http://127.0.0.1:%d/api/v1/rules" % prom_port)[1])
        groups = rules["data"]["groups"]
        bad = [(r["name"], r.get("lastError")) for g in groups for r in g["rules"]
               if r.get("health") != "ok"]
        firing = [a for g in groups for r in g["rules"] for a in r.get("alerts", [])
                  if r["name"] == "OMSDeadLetters" and a["state"] == "firing"
                  and a["labels"].get("service") == "analytics"]
        if not bad and firing and groups:
            print("dashboards: %d rules evaluate, OMSDeadLetters fires for analytics"
                  % sum(len(g["rules"]) for g in groups))
            return
        if time.time() > deadline:
            dl = [r for g in groups for r in g["rules"] if r["name"] == "OMSDeadLetters"]
            got, _ = query(prom_port, "oms_dead_letters_total[1m]")
            fail("rules not healthy %s, or OMSDeadLetters not firing for analytics: %s; "
                 "its expression gives %s" % (bad, json.dumps(dl), json.dumps(got)))
        time.sleep(1)


def wait_scraped(prom_port, targets):
    """Until every target was scraped, twice: the counters' zeros are in
    Prometheus before the data, so that the alerts see increases."""
    deadline = time.time() + READY_TIMEOUT_S
    while time.time() < deadline:
        result, _ = query(prom_port, "count(up == 1)")
        if result and int(result[0]["value"][1]) == targets:
            time.sleep(2)
            return
        time.sleep(0.5)
    fail("prometheus has not scraped all %d targets after %d s" % (targets, READY_TIMEOUT_S))


def main():
    root, poison = sys.argv[1], sys.argv[2]
    for tool in ("prometheus", "prometheus-postgres-exporter", "prometheus-redis-exporter", "psql"):
        if shutil.which(tool) is None:
            fail("%s not found: run `make deps`" % tool)
    queries = dashboard_queries(root)
    check_allow_list(queries)

    base = int(os.environ.get("OMS_HTTP_PORT_BASE") or 18081) + 50
    names = SERVICES + ["prometheus", "postgres-exporter", "redis-exporter"]
    ports = {n: base + i for i, n in enumerate(names)}
    busy = [p for p in ports.values() if port_busy(p)]
    if busy:
        fail("ports %s are in use; set OMS_HTTP_PORT_BASE so that base+50..+58 are free" % busy)

    # omsctl talks to the services this test started, not the stack's.
    for s in SERVICES:
        os.environ["OMS_%s_URL" % s.upper()] = "http://127.0.0.1:%d" % ports[s]

    work = os.path.join(os.environ.get("OMS_BUILD_DIR", tempfile.gettempdir()),
                        "Testing", "monitoring")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    stack = Stack(work)
    try:
        bindir = start_everything(stack, root, ports)
        wait_scraped(ports["prometheus"], len(SERVICES) + 2)
        make_data(work, bindir, poison)
        evaluate(ports["prometheus"], queries)
        check_rules(ports["prometheus"])
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
