#!/usr/bin/env bash
# test_rules.sh - the alert rules of k8s/prometheus/rules/ checked by
# promtool (syntax), unit-tested by `promtool test rules` (rules_test.yml),
# and every alert of the rule files tested both firing and not firing there,
# so that a new alert cannot arrive without its test. Then the Kubernetes
# Prometheus configuration (k8s/50-prometheus.yaml) by `promtool check
# config` - Debian's promtool has no Kubernetes discovery, so each
# kubernetes_sd_configs is swapped for a static target and the rules path for
# the repository's - and the Alertmanager configuration (52-alertmanager.yaml)
# by `amtool check-config`.
# usage: tests/monitoring/test_rules.sh SOURCE_DIR
set -euo pipefail

ROOT=$1
HERE=$ROOT/tests/monitoring
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for tool in promtool amtool; do
    command -v $tool >/dev/null ||
        { echo "$tool not found: install Debian's prometheus and prometheus-alertmanager (make deps)" >&2; exit 1; }
done

promtool check rules "$ROOT"/k8s/prometheus/rules/*.yml
(cd "$HERE" && promtool test rules rules_test.yml)

/usr/bin/python3 - "$ROOT" <<'PY'
import glob, sys, yaml
root = sys.argv[1]
alerts = set()
for f in sorted(glob.glob(root + "/k8s/prometheus/rules/*.yml")):
    for g in yaml.safe_load(open(f))["groups"]:
        alerts |= {r["alert"] for r in g["rules"] if "alert" in r}
tests = yaml.safe_load(open(root + "/tests/monitoring/rules_test.yml"))
files = {f.rsplit("/", 1)[-1] for f in tests["rule_files"]}
missing = {f.rsplit("/", 1)[-1] for f in glob.glob(root + "/k8s/prometheus/rules/*.yml")} - files
firing, quiet = set(), set()
for t in tests["tests"]:
    for a in t.get("alert_rule_test", []):
        (firing if a.get("exp_alerts") else quiet).add(a["alertname"])
bad = ["rules_test.yml does not load %s" % f for f in sorted(missing)]
bad += ["%s: no test where it fires" % a for a in sorted(alerts - firing)]
bad += ["%s: no test where it stays quiet" % a for a in sorted(alerts - quiet)]
bad += ["%s: tested but no such alert" % a for a in sorted((firing | quiet) - alerts)]
for b in bad:
    print("rules: " + b, file=sys.stderr)
if bad:
    sys.exit(1)
print("rules: %d alerts, each tested firing and quiet" % len(alerts))
PY

/usr/bin/python3 - "$ROOT" "$WORK" <<'PY'
import sys, yaml
root, work = sys.argv[1:]
def configmap(path, name, key):
    for d in yaml.safe_load_all(open(root + "/k8s/" + path)):
        if d and d["kind"] == "ConfigMap" and d["metadata"]["name"] == name:
            return d["data"][key]
    sys.exit("%s: no ConfigMap %s" % (path, name))
prom = yaml.safe_load(configmap("50-prometheus.yaml", "prometheus-config", "prometheus.yml"))
if prom.get("rule_files") != ["/etc/prometheus-rules/*.yml"]:
    sys.exit("prometheus.yml loads %s, the rules are mounted in /etc/prometheus-rules" % prom.get("rule_files"))
prom["rule_files"] = [root + "/k8s/prometheus/rules/*.yml"]
jobs = {}
for job in prom["scrape_configs"]:
    jobs[job["job_name"]] = job
    job.pop("kubernetes_sd_configs")
    job["static_configs"] = [{"targets": ["127.0.0.1:1"]}]
missing = {"oms", "nats", "postgres", "redis"} - set(jobs)
if missing:
    sys.exit("prometheus.yml has no scrape job %s" % sorted(missing))
yaml.safe_dump(prom, open(work + "/prometheus.yml", "w"))
open(work + "/alertmanager.yml", "w").write(
    configmap("52-alertmanager.yaml", "alertmanager-config", "alertmanager.yml"))
PY
promtool check config "$WORK/prometheus.yml"
amtool check-config "$WORK/alertmanager.yml"
