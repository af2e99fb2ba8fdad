#!/usr/bin/env bash
# test_rules.sh - the alert rules of k8s/prometheus/rules/ checked by
# promtool (syntax), unit-tested by `promtool test rules` (rules_test.yml),
# and every alert of the rule files tested both firing and not firing there,
# so that a new alert cannot arrive without its test.
# usage: tests/monitoring/test_rules.sh SOURCE_DIR
set -euo pipefail

ROOT=$1
HERE=$ROOT/tests/monitoring
command -v promtool >/dev/null ||
    { echo "promtool not found: install Debian's prometheus (make deps)" >&2; exit 1; }

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
