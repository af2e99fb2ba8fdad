#!/usr/bin/env python3
"""k8s_invariants.py - checks what OMS promises about its Kubernetes manifests.

usage: k8s_invariants.py ROOT RENDERED.yaml [--overlay OVERLAY.yaml]
                         [--json OUT.json] [--selftest]

RENDERED.yaml is the output of `kubectl kustomize ROOT/k8s` (with throwaway
secrets); every object of the files ROOT/k8s/*.yaml must be in it, and what
it adds are the generated ConfigMaps and Secrets (names with a content
hash). OVERLAY.yaml, the rendering of an overlay that sets the images, must
differ from it in the images only. Every violation is printed as
`FAIL <object>: <what is wrong>`; the exit status is 1 if there is any.
--json writes the rendered objects as a JSON array (for
scripts/k8s/validate.mjs). --selftest breaks each invariant in a copy of the
objects and fails unless every break is reported.
"""
import base64
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
# What `kubectl apply -k k8s` must pull when no overlay set the images: a name
# that says what to do, in a domain that cannot resolve (RFC 2606).
PLACEHOLDER_IMAGE = "set-your-registry.invalid/oms/%s:set-image-tag"
# The suffix kustomize appends to a generated name: 10 characters of a hash
# in its own alphabet (hex without 0 1 3 a e, plus g h k m t).
HASH_SUFFIX = re.compile(r"-[245-9bcdfghkmt]{10}$")
# Workloads of this part whose ConfigMaps and Secrets must be generated, so
# that a change rolls their pods (Prometheus and Grafana are configured
# elsewhere).
ROLLED = ["nats", "postgres", "redis"] + SERVICES
# Secret keys holding a credential: at least this many random characters.
MIN_SECRET_LEN = 32
CREDENTIAL_KEY = re.compile(r"(PASSWORD|TOKEN|SECRET|_PASS)$")
# The exporters: (workload, container port name, number, image without tag).
EXPORTERS = [("nats", "metrics", 7777, "natsio/prometheus-nats-exporter"),
             ("postgres", "metrics", 9187, "quay.io/prometheuscommunity/postgres-exporter"),
             ("redis", "metrics", 9121, "oliver006/redis_exporter")]
NATS_PROBES = {"startupProbe": "/healthz", "readinessProbe": "/healthz?js-server-only=true",
               "livenessProbe": "/healthz?js-enabled-only=true"}


def base_name(obj):
    """The name before kustomize's hash suffix (generated ConfigMaps, Secrets)."""
    name = obj.get("metadata", {}).get("name", "")
    if obj.get("kind") in ("ConfigMap", "Secret"):
        return HASH_SUFFIX.sub("", name)
    return name


def key(obj):
    return "%s/%s" % (obj.get("kind"), base_name(obj))


def secret_data(obj):
    """A Secret's values as text, from data (base64) or stringData."""
    data = {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
    data.update(obj.get("stringData") or {})
    return data


def unhash(name):
    return HASH_SUFFIX.sub("", name)


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
        return self.by_key.get("%s/%s" % (kind, unhash(name)))

    def run(self, plain=None):
        self.namespaces()
        self.images()
        for name in SERVICES:
            self.service(name)
        self.nats()
        self.exporters()
        self.copies()
        self.credentials()
        self.rolled()
        self.network()
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
        if name in AUTOSCALED:
            if "replicas" in d["spec"]:
                self.fail(where, "sets spec.replicas under an HPA (every apply would scale it back)")
        elif d["spec"].get("replicas", 1) < 2:
            self.fail(where, "fewer than 2 replicas")
        self.spread(where, d)
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
        self.probe(where, c, "readinessProbe", "/readyz", "health")
        self.probe(where, c, "livenessProbe", "/healthz", "health")
        self.probe(where, c, "startupProbe", "/healthz", "health")
        ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
        if ports.get("health") != 8081 or ports.get("http") != 8080:
            self.fail(where, "container ports are %s, expected http 8080 and health 8081" % ports)
        image = PLACEHOLDER_IMAGE % name
        if c.get("image") != image:
            self.fail(where, "image %r is not the placeholder %s (set by an overlay)" % (c.get("image"), image))
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

    def probe(self, where, c, which, path, port):
        get = c.get(which, {}).get("httpGet", {})
        if get.get("path") != path or get.get("port") != port:
            self.fail(where, "%s is %r on port %r, expected httpGet %s on port %s"
                      % (which, get.get("path"), get.get("port"), path, port))

    def spread(self, where, d):
        labels = d["spec"]["template"]["metadata"].get("labels", {})
        keys = set()
        for t in pod_spec(d).get("topologySpreadConstraints", []):
            sel = t.get("labelSelector", {}).get("matchLabels", {})
            if sel and all(labels.get(k) == v for k, v in sel.items()):
                keys.add(t.get("topologyKey"))
        for want in ("kubernetes.io/hostname", "topology.kubernetes.io/zone"):
            if want not in keys:
                self.fail(where, "no topologySpreadConstraint over %s selecting its pods" % want)

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
            if want not in {unhash(r) for r in refs}:
                self.fail(where, "does not take its configuration from " + want)
        cm = self.get("ConfigMap", "oms-" + name)
        prefix = (cm or {}).get("data", {}).get("OMS_NATS_INBOX_PREFIX")
        if prefix != "_INBOX." + name:
            self.fail(where, "OMS_NATS_INBOX_PREFIX is %r, expected _INBOX.%s" % (prefix, name))
        shared = (self.get("ConfigMap", "oms-config") or {}).get("data", {})
        if shared.get("OMS_HEALTH_ADDR") != "0.0.0.0:8081":
            self.fail("ConfigMap/oms-config", "OMS_HEALTH_ADDR is %r, expected 0.0.0.0:8081"
                      % shared.get("OMS_HEALTH_ADDR"))

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
        data = secret_data(s)
        m = re.fullmatch(r"postgres(?:ql)?://([^:@/]+):([^@/]+)@[^/]+/\w+\?sslmode=([a-z-]+)",
                         data.get("OMS_PG_DSN", ""))
        if not m or m.group(1) != name:
            self.fail(key(s), "OMS_PG_DSN does not log in as role %s with a password and an sslmode" % name)
        elif len(m.group(2)) < MIN_SECRET_LEN:
            self.fail(key(s), "the password of OMS_PG_DSN is shorter than %d characters" % MIN_SECRET_LEN)
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
                if e["name"] == var and unhash(ref.get("name", "")) == secret and ref.get("key") == k:
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
        nats = next((c for c in containers(s) if c["name"] == "nats"), {})
        for which, path in NATS_PROBES.items():
            self.probe(key(s), nats, which, path, "monitor")
        conf = (self.get("ConfigMap", "nats-config") or {}).get("data", {}).get("nats.conf", "")
        cluster = re.search(r"cluster \{.*?authorization \{(.*?)\}", conf, re.S)
        if not cluster or "password: $NATS_ROUTE_PASSWORD" not in cluster.group(1):
            self.fail("ConfigMap/nats-config", "the cluster routes are not authenticated "
                      "(cluster.authorization with $NATS_ROUTE_PASSWORD)")
        env = {e["name"]: e for e in nats.get("env", [])}
        ref = env.get("NATS_ROUTE_PASSWORD", {}).get("valueFrom", {}).get("secretKeyRef", {})
        if unhash(ref.get("name", "")) != "nats-route":
            self.fail(key(s), "NATS_ROUTE_PASSWORD is not from Secret nats-route")
        for i in range(3):
            url = env.get("NATS_ROUTE_%d" % i, {}).get("value", "")
            want = "nats://route:$(NATS_ROUTE_PASSWORD)@nats-%d.nats-headless.oms.svc:6222" % i
            if url != want or "$NATS_ROUTE_%d" % i not in conf:
                self.fail(key(s), "route %d is not %s in nats.conf's routes" % (i, want))
        if not s["spec"].get("volumeClaimTemplates"):
            self.fail(key(s), "no persistent volume")
        cfg = self.get("ConfigMap", "oms-config") or {}
        if cfg.get("data", {}).get("OMS_STREAM_REPLICAS") != "3":
            self.fail("ConfigMap/oms-config", "OMS_STREAM_REPLICAS is not 3")
        for sts in ("postgres", "redis", "prometheus"):
            o = self.get("StatefulSet", sts)
            if o is None or not o["spec"].get("volumeClaimTemplates"):
                self.fail("StatefulSet/" + sts, "missing or without a persistent volume")

    def exporters(self):
        for sts, port_name, port, image in EXPORTERS:
            o = self.get("StatefulSet", sts)
            found = [c for c in containers(o) if c.get("image", "").split(":")[0] == image] if o else []
            if not found:
                self.fail("StatefulSet/" + sts, "no %s sidecar" % image)
                continue
            ports = {p.get("name"): p.get("containerPort") for p in found[0].get("ports", [])}
            if ports.get(port_name) != port:
                self.fail("StatefulSet/" + sts, "exporter ports %s, expected %s %d" % (ports, port_name, port))
            ann = o["spec"]["template"]["metadata"].get("annotations", {})
            if ann.get("prometheus.io/scrape") != "true" or ann.get("prometheus.io/port") != str(port):
                self.fail("StatefulSet/" + sts, "pod not annotated for Prometheus on the exporter's port %d" % port)
        nats = self.get("StatefulSet", "nats")
        args = next((c.get("args", []) for c in containers(nats or {}) if c["name"] == "exporter"), [])
        for flag in ("-varz", "-connz", "-routez", "-subz", "-jsz=all"):
            if flag not in args:
                self.fail("StatefulSet/nats", "the NATS exporter lacks %s" % flag)

    def credentials(self):
        """Every credential is generated: long, and no placeholder."""
        for o in self.objs:
            if o["kind"] != "Secret":
                continue
            for k, v in secret_data(o).items():
                if CREDENTIAL_KEY.search(k) and (len(v) < MIN_SECRET_LEN or "change-me" in v):
                    self.fail(key(o), "%s is not a generated credential (%d characters)" % (k, len(v)))

    def rolled(self):
        """The ConfigMaps and Secrets a pod reads carry a content hash in their
        name, so that changing one rolls the pods."""
        for name in ROLLED:
            o = self.get("Deployment", name) or self.get("StatefulSet", name)
            if o is None:
                continue
            for ref in config_refs(o):
                if not HASH_SUFFIX.search(ref):
                    self.fail(key(o), "reads %s, whose name has no content hash: a change would not "
                              "roll the pods" % ref)

    def network(self):
        pols = [o for o in self.objs if o["kind"] == "NetworkPolicy"]
        if not any(p["spec"].get("podSelector") == {} and not p["spec"].get("ingress")
                   and not p["spec"].get("egress")
                   and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"} for p in pols):
            self.fail("NetworkPolicy", "no default deny (podSelector {}, Ingress and Egress, no rules)")
        pods = pod_models(self.objs)
        for src, dst, port, want in REACH:
            if src not in pods or dst not in pods:
                self.fail("NetworkPolicy", "no pods of %s or %s to check" % (src, dst))
                continue
            got = allowed(pols, pods[src], pods[dst], port)
            if got != want:
                self.fail("NetworkPolicy", "%s -> %s:%d is %s, expected %s"
                          % (src, dst, port, "allowed" if got else "denied", "allowed" if want else "denied"))
        # The receiving side alone must refuse too: a pod whose egress is
        # open (another policy, a CNI without egress support) gets no further.
        for src, dst, port in INGRESS_DENIED:
            if src in pods and dst in pods and direction(pols, pods[dst], pods[src], pods[dst], port, "Ingress"):
                self.fail("NetworkPolicy", "%s takes traffic from %s on %d" % (dst, src, port))

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
        rendered = {key(o): o for o in self.objs}
        for k in sorted(set(plain) - set(rendered)):
            self.fail(k, "in k8s/*.yaml but not rendered: list its file in k8s/Kustomization")
        for k in sorted(set(rendered) - set(plain)):
            if not HASH_SUFFIX.search(rendered[k]["metadata"]["name"]):
                self.fail(k, "rendered but neither in k8s/*.yaml nor generated")
        for k, o in plain.items():
            if o["kind"] == "Secret" and secret_data(o) == secret_data(rendered.get(k, o)):
                self.fail(k, "a Secret committed in k8s/*.yaml (generate it: k8s/secrets/)")

    def overlay(self, objs):
        """The overlay changes the images of the six services, nothing else."""
        mine = {key(o): o for o in self.objs}
        theirs = {key(o): o for o in objs}
        if set(mine) != set(theirs):
            self.fail("overlay", "objects differ from the base: %s" % sorted(set(mine) ^ set(theirs)))
        for k, o in theirs.items():
            if k not in mine:
                continue
            a, b = copy.deepcopy(mine[k]), copy.deepcopy(o)
            for c in containers(b):
                if "set-your-registry.invalid" in c.get("image", ""):
                    self.fail(k, "the overlay leaves the placeholder image %s" % c["image"])
            for c in containers(a) + containers(b):
                c.pop("image", None)
            if a != b:
                self.fail(k, "the overlay changes more than the images")


def load_plain(root):
    objs = []
    for f in sorted(glob.glob(os.path.join(root, "k8s/*.yaml"))):
        objs += [d for d in yaml.safe_load_all(open(f)) if d]
    return index(objs)


def config_refs(o):
    """Names of the ConfigMaps and Secrets a workload's pods read."""
    spec = pod_spec(o)
    refs = []
    for c in containers(o):
        for e in c.get("envFrom", []):
            ref = e.get("configMapRef") or e.get("secretRef") or {}
            refs.append(ref.get("name", ""))
        for e in c.get("env", []):
            src = e.get("valueFrom", {})
            ref = src.get("configMapKeyRef") or src.get("secretKeyRef")
            if ref:
                refs.append(ref["name"])
    for v in spec.get("volumes", []):
        for src in [v] + v.get("projected", {}).get("sources", []):
            ref = src.get("configMap") or src.get("secret") or {}
            if ref:
                refs.append(ref.get("name") or ref.get("secretName"))
    return refs


# Who may reach whom (NetworkPolicy, in namespace oms): (from, to, port, allowed).
REACH = [(s, "nats", 4222, True) for s in SERVICES] + \
        [(s, "postgres", 5432, True) for s in SERVICES] + [
    ("analytics", "redis", 6379, True),
    ("ingest", "redis", 6379, False),
    ("prometheus", "ingest", 8080, True),
    ("prometheus", "nats", 7777, True),
    ("prometheus", "postgres", 9187, True),
    ("prometheus", "redis", 9121, True),
    ("grafana", "prometheus", 9090, True),
    ("nats", "nats", 6222, True),
    ("ingest", "nats", 6222, False),
    ("ingest", "nats", 8222, False),
    ("grafana", "postgres", 5432, False),
    ("prometheus", "postgres", 5432, False),
    ("redis", "postgres", 5432, False),
    ("nats", "postgres", 5432, False),
    ("ingest", "inventory", 8080, False),
    ("payment", "redis", 6379, False),
    ("grafana", "nats", 4222, False),
]


# (from, to, port) that the receiving pod's ingress rules alone refuse.
INGRESS_DENIED = [("ingest", "redis", 6379), ("grafana", "postgres", 5432), ("ingest", "nats", 6222),
                  ("analytics", "postgres", 9187), ("ingest", "inventory", 8080)]


def pod_models(objs):
    """workload name -> (pod labels, {port name: number}) of its pods."""
    pods = {}
    for o in objs:
        if o["kind"] in WORKLOADS:
            ports = {p.get("name"): p["containerPort"] for c in containers(o) for p in c.get("ports", [])}
            pods[o["metadata"]["name"]] = (o["spec"]["template"]["metadata"].get("labels", {}), ports)
    return pods


def selects(sel, labels):
    if sel is None:
        return False
    for k, v in sel.get("matchLabels", {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions", []):
        present = e["key"] in labels
        if e["operator"] == "In" and labels.get(e["key"]) not in e.get("values", []):
            return False
        if e["operator"] == "NotIn" and labels.get(e["key"]) in e.get("values", []):
            return False
        if e["operator"] == "Exists" and not present or e["operator"] == "DoesNotExist" and present:
            return False
    return True


def peer_matches(peers, pod):
    """A rule's from/to list against a pod of namespace oms; ipBlocks never
    match pods (their except lists hold the private ranges)."""
    if peers is None:
        return True
    for p in peers:
        ns = p.get("namespaceSelector")
        if "ipBlock" in p:
            continue
        if ns is not None and not selects(ns, {"kubernetes.io/metadata.name": "oms"}):
            continue
        if selects(p.get("podSelector", {}), pod[0]):
            return True
    return False


def port_matches(ports, pod, port):
    if ports is None:
        return True
    for p in ports:
        want = p.get("port")
        if isinstance(want, str):
            want = pod[1].get(want)
        if want is None or want == port or want <= port <= p.get("endPort", want):
            return True
    return False


def direction(pols, pod, peer, target, port, kind):
    """Whether policies let `pod` send (Egress) or take (Ingress) traffic
    to/from `peer` on `port` of `target`."""
    mine = [p for p in pols if selects(p["spec"].get("podSelector", {}), pod[0])
            and kind in p["spec"].get("policyTypes", ["Ingress"])]
    if not mine:
        return True
    field, peers = ("egress", "to") if kind == "Egress" else ("ingress", "from")
    return any(peer_matches(r.get(peers), peer) and port_matches(r.get("ports"), target, port)
               for p in mine for r in p["spec"].get(field, []))


def allowed(pols, src, dst, port):
    return (direction(pols, src, dst, dst, port, "Egress")
            and direction(pols, dst, src, dst, port, "Ingress"))


# Each break must be reported: (what, function that breaks a copy).
def _dep(objs, name):
    return next(o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == name)


def _c(objs, name):
    return pod_spec(_dep(objs, name))["containers"][0]


def _obj(objs, kind, name):
    return next(o for o in objs if o["kind"] == kind and base_name(o) == name)


def _sts_c(objs, sts, name):
    return next(c for c in pod_spec(_obj(objs, "StatefulSet", sts))["containers"] if c["name"] == name)


def _set_secret(objs, name, k, v):
    s = _obj(objs, "Secret", name)
    s.setdefault("data", {})[k] = base64.b64encode(v.encode()).decode()


BREAKS = [
    ("no readiness probe", lambda o: _c(o, "payment").pop("readinessProbe")),
    ("probe on the API port", lambda o: _c(o, "refund")["readinessProbe"]["httpGet"].update(port="http")),
    ("no health port", lambda o: _c(o, "notify")["ports"].pop()),
    ("replicas under an HPA", lambda o: _dep(o, "ingest")["spec"].update(replicas=2)),
    ("no zone spread", lambda o: pod_spec(_dep(o, "analytics"))["topologySpreadConstraints"].pop(0)),
    ("real image in the base", lambda o: _c(o, "ingest").update(image="oms/ingest:0.1.0")),
    ("NATS readiness on full /healthz",
     lambda o: _sts_c(o, "nats", "nats")["readinessProbe"]["httpGet"].update(path="/healthz")),
    ("unauthenticated routes", lambda o: _obj(o, "ConfigMap", "nats-config")["data"].update(
        {"nats.conf": "cluster {\n routes: []\n}\n"})),
    ("no NATS exporter", lambda o: pod_spec(_obj(o, "StatefulSet", "nats"))["containers"].pop()),
    ("exporter without -jsz=all", lambda o: _sts_c(o, "nats", "exporter")["args"].remove("-jsz=all")),
    ("no Redis exporter", lambda o: pod_spec(_obj(o, "StatefulSet", "redis"))["containers"].pop()),
    ("known password", lambda o: _set_secret(o, "oms-admin", "OMS_ADMIN_TOKEN", "change-me-admin-token")),
    ("short password", lambda o: _set_secret(o, "redis-auth", "REDIS_PASSWORD", "hunter2")),
    ("config without a hash", lambda o: _obj(o, "ConfigMap", "oms-config")["metadata"].update(name="oms-config")
     or pod_spec(_dep(o, "payment"))["containers"][0]["envFrom"][0]["configMapRef"].update(name="oms-config")),
    ("no default deny", lambda o: o.remove(_obj(o, "NetworkPolicy", "default-deny"))),
    ("Redis open to every service", lambda o: _obj(o, "NetworkPolicy", "redis")["spec"]["ingress"][0].pop("from")),
    ("services cannot reach NATS", lambda o: _obj(o, "NetworkPolicy", "services")["spec"]["egress"].pop(0)),
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
    ("no Secret", lambda o: o.remove(_obj(o, "Secret", "oms-ingest"))),
    ("no HPA", lambda o: o.remove(next(x for x in o if x["kind"] == "HorizontalPodAutoscaler"
                                       and x["metadata"]["name"] == "payment"))),
    ("one replica", lambda o: _dep(o, "notify")["spec"].update(replicas=1)),
]


# Each break of the overlay (against the base) must be reported.
OVERLAY_BREAKS = [
    ("placeholder image left", lambda o: _c(o, "refund").update(
        image=PLACEHOLDER_IMAGE % "refund")),
    ("more than images changed", lambda o: _dep(o, "notify")["spec"].update(replicas=5)),
    ("object dropped", lambda o: o.remove(_obj(o, "NetworkPolicy", "default-deny"))),
]


def selftest(root, objs, overlay=None):
    missed = []
    breaks = [(w, b, False) for w, b in BREAKS]
    if overlay is not None:
        breaks += [(w, b, True) for w, b in OVERLAY_BREAKS]
    for what, brk, of_overlay in breaks:
        broken = copy.deepcopy(overlay if of_overlay else objs)
        brk(broken)
        checker = Checker(root, objs if of_overlay else broken)
        if of_overlay:
            checker.overlay(broken)
        else:
            checker.run()
        if not checker.errors:
            missed.append(what)
    for what in missed:
        print("FAIL selftest: breaking the manifests (%s) was not reported" % what)
    print("k8s invariants selftest: %d of %d breaks reported" % (len(breaks) - len(missed), len(breaks)))
    return not missed


def main(argv):
    root, rendered = argv[1], argv[2]
    objs = [d for d in yaml.safe_load_all(open(rendered)) if d]
    if "--json" in argv:
        with open(argv[argv.index("--json") + 1], "w") as f:
            json.dump(objs, f)
    checker = Checker(root, objs)
    errors = checker.run(load_plain(root))
    overlay = None
    if "--overlay" in argv:
        overlay = [d for d in yaml.safe_load_all(open(argv[argv.index("--overlay") + 1])) if d]
        checker.overlay(overlay)
    for e in errors:
        print(e)
    print("k8s invariants: %d objects, %d violations" % (len(objs), len(errors)))
    ok = not errors
    if "--selftest" in argv:
        ok = selftest(root, objs, overlay) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
