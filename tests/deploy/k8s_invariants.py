#!/usr/bin/env python3
"""k8s_invariants.py - checks what OMS promises about its Kubernetes manifests.

usage: k8s_invariants.py ROOT RENDERED.yaml [--json OUT.json] [--selftest]

RENDERED.yaml is the output of `kubectl kustomize ROOT/k8s`. The plain files
ROOT/k8s/*.yaml (what `kubectl apply -f k8s` applies) must hold the same
objects. Every violation is printed as `FAIL <object>: <what is wrong>`; the
exit status is 1 if there is any. --json writes the rendered objects as a JSON
array (for scripts/k8s/validate.mjs). --selftest breaks each invariant in a
copy of the objects and fails unless every break is reported.
"""
import copy
import glob
import json
import os
import re
import sys

import yaml

SERVICES = ["ingest", "inventory", "payment", "notify", "refund", "analytics"]
AUTOSCALED = ["ingest", "inventory", "payment"]
# Peak RSS measured by bench/ (docs/performance.md), in MiB. Services not yet
# measured are held to payment's figure (the same runtime, one consumer).
MEASURED_PEAK_MIB = {"ingest": 33.6, "inventory": 15.3, "payment": 13.3,
                     "notify": 13.3, "refund": 13.3, "analytics": 13.3}
# What a pod needs to stop cleanly: preStop (5 s) + relay drain (10 s, lib/
# service.c RELAY_DRAIN_MS) + NATS flush (5 s) + a batch in flight.
MIN_GRACE_S = 30
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


def key(obj):
    return "%s/%s" % (obj.get("kind"), obj.get("metadata", {}).get("name"))


def index(objs):
    return {key(o): o for o in objs}


def quantity(q):
    """Kubernetes quantity -> float in base units (bytes or cores)."""
    q = str(q)
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6,
             "G": 1e9, "m": 1e-3}
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", q)
    if not m or (m.group(2) and m.group(2) not in units):
        raise ValueError("bad quantity %r" % q)
    return float(m.group(1)) * units.get(m.group(2), 1)


def pod_spec(obj):
    return obj.get("spec", {}).get("template", {}).get("spec", {})


def containers(obj):
    spec = pod_spec(obj)
    return spec.get("containers", []) + spec.get("initContainers", [])


class Checker:
    def __init__(self, root, objs):
        self.root = root
        self.objs = objs
        self.by_key = index(objs)
        self.errors = []

    def fail(self, where, what):
        self.errors.append("FAIL %s: %s" % (where, what))

    def get(self, kind, name):
        return self.by_key.get("%s/%s" % (kind, name))

    def run(self, plain=None):
        self.namespaces()
        self.images()
        for name in SERVICES:
            self.service(name)
        self.nats()
        self.copies()
        if plain is not None:
            self.plain_matches(plain)
        return self.errors

    def namespaces(self):
        for o in self.objs:
            if o["kind"] != "Namespace" and o["metadata"].get("namespace") != "oms":
                self.fail(key(o), "not in namespace oms")

    def images(self):
        for o in self.objs:
            if o["kind"] not in WORKLOADS:
                continue
            for c in containers(o):
                image = c.get("image", "")
                tag = image.rsplit("/", 1)[-1].partition(":")[2]
                if "@sha256:" not in image and (not tag or tag == "latest"):
                    self.fail(key(o), "container %s image %r has no pinned tag" % (c["name"], image))
                if c.get("resources", {}).get("limits", {}).get("memory") is None:
                    self.fail(key(o), "container %s has no memory limit" % c["name"])
            sc = pod_spec(o).get("securityContext", {})
            if sc.get("runAsNonRoot") is not True or sc.get("runAsUser", 0) == 0:
                self.fail(key(o), "pod does not run as a non-root user (runAsNonRoot, runAsUser)")

    def service(self, name):
        d = self.get("Deployment", name)
        if d is None:
            self.fail("Deployment/" + name, "missing")
            return
        where = key(d)
        if d["spec"].get("replicas", 1) < 2:
            self.fail(where, "fewer than 2 replicas")
        spec = pod_spec(d)
        if spec.get("terminationGracePeriodSeconds", 30) < MIN_GRACE_S:
            self.fail(where, "terminationGracePeriodSeconds below %d s (graceful drain)" % MIN_GRACE_S)
        if spec.get("securityContext", {}).get("runAsNonRoot") is not True:
            self.fail(where, "runAsNonRoot is not true")
        cs = spec.get("containers", [])
        if len(cs) != 1:
            self.fail(where, "expected one container, found %d" % len(cs))
            return
        c = cs[0]
        self.probe(where, c, "readinessProbe", "/readyz")
        self.probe(where, c, "livenessProbe", "/healthz")
        self.resources(where, name, c)
        csc = c.get("securityContext", {})
        if csc.get("readOnlyRootFilesystem") is not True:
            self.fail(where, "root filesystem is not read-only")
        if csc.get("allowPrivilegeEscalation") is not False:
            self.fail(where, "allowPrivilegeEscalation is not false")
        self.configuration(where, name, c)
        self.pdb(name, d)
        self.secret(name)
        if name in AUTOSCALED:
            self.hpa(name)
        ann = d["spec"]["template"]["metadata"].get("annotations", {})
        if ann.get("prometheus.io/scrape") != "true":
            self.fail(where, "pod not annotated for Prometheus (prometheus.io/scrape)")
        if "image" in c and not c["image"].split(":")[0].endswith("/" + name):
            self.fail(where, "image %r is not the %s image" % (c["image"], name))

    def probe(self, where, c, which, path):
        got = c.get(which, {}).get("httpGet", {}).get("path")
        if got != path:
            self.fail(where, "%s is %r, expected httpGet %s" % (which, got, path))

    def resources(self, where, name, c):
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in res.get(kind, {}):
                    self.fail(where, "no %s %s" % (r, kind[:-1]))
                    return
        for r in ("cpu", "memory"):
            if quantity(res["limits"][r]) < quantity(res["requests"][r]):
                self.fail(where, "%s limit below its request" % r)
        peak = MEASURED_PEAK_MIB[name] * 2**20
        if quantity(res["requests"]["memory"]) < 1.5 * peak:
            self.fail(where, "memory request below 1.5 x measured peak RSS %.1f MiB" % MEASURED_PEAK_MIB[name])
        if quantity(res["limits"]["memory"]) < 4 * peak:
            self.fail(where, "memory limit below 4 x measured peak RSS %.1f MiB" % MEASURED_PEAK_MIB[name])

    def configuration(self, where, name, c):
        for e in c.get("env", []):
            src = e.get("valueFrom", {})
            if "value" in e or not ("configMapKeyRef" in src or "secretKeyRef" in src):
                self.fail(where, "env %s is not from a ConfigMap or Secret" % e.get("name"))
        refs = set()
        for e in c.get("envFrom", []):
            ref = e.get("configMapRef") or e.get("secretRef")
            kind = "ConfigMap" if "configMapRef" in e else "Secret"
            if ref is None:
                self.fail(where, "envFrom entry that is neither ConfigMap nor Secret")
                continue
            if self.get(kind, ref["name"]) is None:
                self.fail(where, "envFrom names missing %s/%s" % (kind, ref["name"]))
            refs.add("%s/%s" % (kind, ref["name"]))
        for want in ("ConfigMap/oms-config", "ConfigMap/oms-" + name, "Secret/oms-" + name):
            if want not in refs:
                self.fail(where, "does not take its configuration from " + want)
        cm = self.get("ConfigMap", "oms-" + name)
        prefix = (cm or {}).get("data", {}).get("OMS_NATS_INBOX_PREFIX")
        if prefix != "_INBOX." + name:
            self.fail(where, "OMS_NATS_INBOX_PREFIX is %r, expected _INBOX.%s" % (prefix, name))

    def pdb(self, name, d):
        labels = d["spec"]["template"]["metadata"].get("labels", {})
        for o in self.objs:
            if o["kind"] == "PodDisruptionBudget":
                sel = o["spec"].get("selector", {}).get("matchLabels", {})
                if sel and all(labels.get(k) == v for k, v in sel.items()):
                    return
        self.fail(key(d), "no PodDisruptionBudget selects its pods")

    def secret(self, name):
        s = self.get("Secret", "oms-" + name)
        if s is None:
            self.fail("Secret/oms-" + name, "missing")
            return
        data = s.get("stringData", {})
        m = re.fullmatch(r"postgres(?:ql)?://([^:@/]+):([^@/]+)@[^/]+/\w+", data.get("OMS_PG_DSN", ""))
        if not m or m.group(1) != name:
            self.fail(key(s), "OMS_PG_DSN does not log in as role %s with a password" % name)
        if data.get("OMS_NATS_USER") != name or not data.get("OMS_NATS_PASSWORD"):
            self.fail(key(s), "OMS_NATS_USER/OMS_NATS_PASSWORD are not those of user %s" % name)
        for sts, var, k in (("nats", "OMS_NATS_PASSWORD_", "OMS_NATS_PASSWORD"),
                            ("postgres", "DSN_", "OMS_PG_DSN")):
            if not self.env_from_secret(sts, var + name.upper(), "oms-" + name, k):
                self.fail("StatefulSet/" + sts, "does not take %s%s from Secret oms-%s"
                          % (var, name.upper(), name))

    def env_from_secret(self, sts, var, secret, k):
        o = self.get("StatefulSet", sts)
        for c in containers(o) if o else []:
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef", {})
                if e["name"] == var and ref.get("name") == secret and ref.get("key") == k:
                    return True
        return False

    def hpa(self, name):
        for o in self.objs:
            if o["kind"] == "HorizontalPodAutoscaler":
                t = o["spec"]["scaleTargetRef"]
                if t["kind"] == "Deployment" and t["name"] == name:
                    if o["spec"].get("minReplicas", 1) < 2:
                        self.fail(key(o), "minReplicas below 2")
                    return
        self.fail("Deployment/" + name, "no HorizontalPodAutoscaler")

    def nats(self):
        s = self.get("StatefulSet", "nats")
        if s is None:
            self.fail("StatefulSet/nats", "missing")
            return
        if s["spec"].get("replicas") != 3:
            self.fail(key(s), "not 3 nodes")
        if not s["spec"].get("volumeClaimTemplates"):
            self.fail(key(s), "no persistent volume")
        cfg = self.get("ConfigMap", "oms-config") or {}
        if cfg.get("data", {}).get("OMS_STREAM_REPLICAS") != "3":
            self.fail("ConfigMap/oms-config", "OMS_STREAM_REPLICAS is not 3")
        for sts in ("postgres", "redis", "prometheus"):
            o = self.get("StatefulSet", sts)
            if o is None or not o["spec"].get("volumeClaimTemplates"):
                self.fail("StatefulSet/" + sts, "missing or without a persistent volume")

    def copies(self):
        auth = open(os.path.join(self.root, "deploy/nats/auth.conf")).read()
        got = (self.get("ConfigMap", "nats-auth") or {}).get("data", {}).get("auth.conf")
        if got is None or got.strip() != auth.strip():
            self.fail("ConfigMap/nats-auth", "differs from deploy/nats/auth.conf (run scripts/k8s-sync.sh)")
        dash = (self.get("ConfigMap", "grafana-dashboards") or {}).get("data", {})
        files = sorted(glob.glob(os.path.join(self.root, "k8s/grafana/*.json")))
        if not files:
            self.fail("k8s/grafana", "no dashboard")
        for f in files:
            name = os.path.basename(f)
            if name not in dash or json.loads(dash[name]) != json.load(open(f)):
                self.fail("ConfigMap/grafana-dashboards", "%s differs from k8s/grafana/%s (run scripts/k8s-sync.sh)" % (name, name))

    def plain_matches(self, plain):
        rendered = index(self.objs)
        for k in sorted(set(rendered) ^ set(plain)):
            self.fail(k, "in only one of `kubectl apply -f k8s` and `-k k8s`")
        for k, o in plain.items():
            r = rendered.get(k)
            if r is None or o["kind"] not in WORKLOADS:
                continue
            pi = [c["image"] for c in containers(o)]
            ri = [c["image"] for c in containers(r)]
            if pi != ri:
                self.fail(k, "image %s in k8s/*.yaml but %s from k8s/Kustomization" % (pi, ri))


def load_plain(root):
    objs = []
    for f in sorted(glob.glob(os.path.join(root, "k8s/*.yaml"))):
        objs += [d for d in yaml.safe_load_all(open(f)) if d]
    return index(objs)


# Each break must be reported: (what, function that breaks a copy).
def _dep(objs, name):
    return next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == name)


def _c(objs, name):
    return pod_spec(_dep(objs, name))["containers"][0]


BREAKS = [
    ("no readiness probe", lambda o: _c(o, "payment").pop("readinessProbe")),
    ("liveness on /readyz", lambda o: _c(o, "ingest")["livenessProbe"]["httpGet"].update(path="/readyz")),
    ("no memory limit", lambda o: _c(o, "inventory")["resources"]["limits"].pop("memory")),
    ("memory limit below measured", lambda o: _c(o, "ingest")["resources"]["limits"].update(memory="64Mi")),
    ("runs as root", lambda o: pod_spec(_dep(o, "refund"))["securityContext"].update(runAsUser=0)),
    ("writable root", lambda o: _c(o, "notify")["securityContext"].update(readOnlyRootFilesystem=False)),
    ("latest tag", lambda o: _c(o, "analytics").update(image="oms/analytics:latest")),
    ("short grace", lambda o: pod_spec(_dep(o, "payment")).update(terminationGracePeriodSeconds=5)),
    ("literal env", lambda o: _c(o, "payment").setdefault("env", []).append({"name": "OMS_X", "value": "1"})),
    ("no PDB", lambda o: o.remove(next(x for x in o if x["kind"] == "PodDisruptionBudget"
                                         and x["metadata"]["name"] == "inventory"))),
    ("no Secret", lambda o: o.remove(next(x for x in o if x["kind"] == "Secret"
                                          and x["metadata"]["name"] == "oms-ingest"))),
    ("no HPA", lambda o: o.remove(next(x for x in o if x["kind"] == "HorizontalPodAutoscaler"
                                       and x["metadata"]["name"] == "payment"))),
    ("one replica", lambda o: _dep(o, "notify")["spec"].update(replicas=1)),
]


def selftest(root, objs):
    missed = []
    for what, brk in BREAKS:
        broken = copy.deepcopy(objs)
        brk(broken)
        if not Checker(root, broken).run():
            missed.append(what)
    for what in missed:
        print("FAIL selftest: breaking the manifests (%s) was not reported" % what)
    print("k8s invariants selftest: %d of %d breaks reported" % (len(BREAKS) - len(missed), len(BREAKS)))
    return not missed


def main(argv):
    root, rendered = argv[1], argv[2]
    objs = [d for d in yaml.safe_load_all(open(rendered)) if d]
    if "--json" in argv:
        with open(argv[argv.index("--json") + 1], "w") as f:
            json.dump(objs, f)
    errors = Checker(root, objs).run(load_plain(root))
    for e in errors:
        print(e)
    print("k8s invariants: %d objects, %d violations" % (len(objs), len(errors)))
    ok = not errors
    if "--selftest" in argv:
        ok = selftest(root, objs) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
