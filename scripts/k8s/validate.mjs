// validate.mjs - strict offline validation of Kubernetes objects, as the API
// server (and `kubectl apply --validate=strict`) would judge them, and the
// mistakes it would accept but that break a deploy. Reads a JSON array of
// objects on stdin (the output of `kubectl kustomize k8s`, converted by
// tests/deploy/k8s_invariants.py), prints one line per object and every
// error with the object and field path, and exits 1 if any is invalid.
//
// Rules:
//   schema       the Kubernetes OpenAPI schema of the kind (the compiled
//                validators of the npm package kubernetes-models): types,
//                required fields, enums, formats;
//   unknown      fields the schema does not define. The schemas do not say
//                additionalProperties: false, so the validator is run on a
//                proxy that records every field it reads: a field it never
//                looked at is one the schema does not have (maps such as
//                labels are iterated, so their keys are read);
//   removed      apiVersions the API server no longer serves;
//   names        object, namespace, container, volume and port names
//                (RFC 1123 / RFC 1035 / IANA service names), label syntax;
//   ports        port numbers outside 1-65535;
//   selectors    a workload's selector that does not match its own pod
//                template, a Service, PodDisruptionBudget or HPA that
//                selects or targets no workload of the set.
import { readFileSync } from "node:fs";

// apiVersion -> where to go instead (the API server stopped serving these).
const REMOVED = {
  "extensions/v1beta1": "apps/v1 (workloads), networking.k8s.io/v1 (Ingress, NetworkPolicy); removed in 1.16/1.22",
  "apps/v1beta1": "apps/v1; removed in 1.16",
  "apps/v1beta2": "apps/v1; removed in 1.16",
  "policy/v1beta1": "policy/v1 (PodDisruptionBudget); removed in 1.25",
  "autoscaling/v2beta1": "autoscaling/v2; removed in 1.25",
  "autoscaling/v2beta2": "autoscaling/v2; removed in 1.26",
  "networking.k8s.io/v1beta1": "networking.k8s.io/v1; removed in 1.22",
  "batch/v1beta1": "batch/v1 (CronJob); removed in 1.25",
  "batch/v2alpha1": "batch/v1; removed",
  "rbac.authorization.k8s.io/v1beta1": "rbac.authorization.k8s.io/v1; removed in 1.22",
  "rbac.authorization.k8s.io/v1alpha1": "rbac.authorization.k8s.io/v1; removed in 1.22",
  "admissionregistration.k8s.io/v1beta1": "admissionregistration.k8s.io/v1; removed in 1.22",
  "apiextensions.k8s.io/v1beta1": "apiextensions.k8s.io/v1; removed in 1.22",
  "storage.k8s.io/v1beta1": "storage.k8s.io/v1; removed in 1.22-1.27",
  "scheduling.k8s.io/v1beta1": "scheduling.k8s.io/v1; removed in 1.22",
  "coordination.k8s.io/v1beta1": "coordination.k8s.io/v1; removed in 1.22",
  "discovery.k8s.io/v1beta1": "discovery.k8s.io/v1; removed in 1.25",
  "events.k8s.io/v1beta1": "events.k8s.io/v1; removed in 1.25",
  "node.k8s.io/v1beta1": "node.k8s.io/v1; removed in 1.25",
  "certificates.k8s.io/v1beta1": "certificates.k8s.io/v1; removed in 1.22",
  "flowcontrol.apiserver.k8s.io/v1beta1": "flowcontrol.apiserver.k8s.io/v1; removed in 1.26",
  "flowcontrol.apiserver.k8s.io/v1beta2": "flowcontrol.apiserver.k8s.io/v1; removed in 1.29",
};

const WORKLOADS = new Set(["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"]);
// Names that are path segments rather than DNS names.
const PATH_NAMED = new Set(["Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"]);
// Kinds whose names become DNS labels (Service: RFC 1035, first a letter).
const LABEL_NAMED = new Set(["Namespace"]);

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const IANA_SVC_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const PORT_KEYS = new Set(["port", "containerPort", "targetPort", "hostPort", "nodePort", "endPort"]);

// "apps/v1" Deployment -> IoK8sApiAppsV1Deployment, the package's schema name.
function schemaName(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["core", apiVersion];
  const cap = (s) => s.charAt(0).toUpperCase() + s.slice(1);
  return `IoK8sApi${cap(group.split(".")[0])}${cap(version)}${kind}`;
}

// A proxy over `value` that records, per object, which fields were read.
function tracked(value, path, seen) {
  if (value === null || typeof value !== "object") return value;
  let entry = seen.get(value);
  if (!entry) {
    entry = { path, read: new Set() };
    entry.proxy = new Proxy(value, {
      get(target, prop, receiver) {
        const field = Reflect.get(target, prop, receiver);
        if (typeof prop !== "string" || !Object.hasOwn(target, prop)) return field;
        entry.read.add(prop);
        return tracked(field, `${path}/${prop}`, seen);
      },
    });
    seen.set(value, entry);
  }
  return entry.proxy;
}

// kustomize writes long Secret values as base64 broken into lines, which the
// API server's decoder (Go's encoding/base64) reads as one.
function unwrapSecret(obj) {
  if (obj.kind !== "Secret" || !obj.data) return obj;
  const data = Object.fromEntries(Object.entries(obj.data).map(([k, v]) =>
    [k, typeof v === "string" ? v.replace(/[\r\n]/g, "") : v]));
  return { ...obj, data };
}

async function schemaErrors(obj, where) {
  let validate;
  try {
    ({ validate } = await import(`kubernetes-models/_schemas/${schemaName(obj.apiVersion, obj.kind)}`));
  } catch {
    return [`${where}: no schema for apiVersion ${obj.apiVersion} kind ${obj.kind}`];
  }
  const seen = new Map();
  if (!validate(tracked(unwrapSecret(obj), "", seen))) {
    return validate.errors.map(
      // The compiled validators carry no messages: keyword and parameters.
      (d) => `${where}: ${d.instancePath || "/"} ${d.message ?? d.keyword} ` +
        Object.values(d.params ?? {}).filter((v) => typeof v !== "object").join(", ") +
        (d.params?.allowedValues ? ` (${d.params.allowedValues.join(", ")})` : ""),
    );
  }
  const errors = [];
  for (const [value, { path, read }] of seen) {
    if (Array.isArray(value)) continue;
    for (const field of Object.keys(value)) {
      if (!read.has(field)) errors.push(`${where}: unknown field ${path}/${field}`);
    }
  }
  return errors;
}

function nameErrors(obj, where) {
  const errors = [];
  const name = obj.metadata?.name ?? "";
  const bad = (what, value, rule) => errors.push(`${where}: invalid name ${what} "${value}" (${rule})`);
  if (PATH_NAMED.has(obj.kind)) {
    if (!name || /[/%]/.test(name) || name === "." || name === "..") bad("metadata.name", name, "a path segment");
  } else if (obj.kind === "Service") {
    if (name.length > 63 || !DNS1035_LABEL.test(name)) bad("metadata.name", name, "RFC 1035 label");
  } else if (LABEL_NAMED.has(obj.kind)) {
    if (name.length > 63 || !DNS1123_LABEL.test(name)) bad("metadata.name", name, "RFC 1123 label");
  } else if (name.length > 253 || !DNS1123_SUBDOMAIN.test(name)) {
    bad("metadata.name", name, "RFC 1123 subdomain");
  }
  const ns = obj.metadata?.namespace;
  if (ns !== undefined && (ns.length > 63 || !DNS1123_LABEL.test(ns))) bad("metadata.namespace", ns, "RFC 1123 label");
  labelErrors(obj.metadata?.labels, `${where}: metadata.labels`, errors);
  const pod = obj.spec?.template?.spec;
  if (pod) {
    labelErrors(obj.spec.template.metadata?.labels, `${where}: spec.template.metadata.labels`, errors);
    for (const c of [...(pod.containers ?? []), ...(pod.initContainers ?? [])]) {
      if (!DNS1123_LABEL.test(c.name ?? "") || c.name.length > 63) bad("container", c.name, "RFC 1123 label");
      for (const p of c.ports ?? []) {
        if (p.name !== undefined && !ianaName(p.name)) bad("container port", p.name, "IANA service name");
      }
    }
    for (const v of pod.volumes ?? []) {
      if (!DNS1123_LABEL.test(v.name ?? "") || v.name.length > 63) bad("volume", v.name, "RFC 1123 label");
    }
  }
  if (obj.kind === "Service") {
    for (const p of obj.spec?.ports ?? []) {
      if (p.name !== undefined && !ianaName(p.name)) bad("service port", p.name, "IANA service name");
    }
  }
  return errors;
}

// IANA service name: at most 15 characters, a letter among them, no "--".
function ianaName(name) {
  return name.length <= 15 && IANA_SVC_NAME.test(name) && /[a-z]/.test(name) && !name.includes("--");
}

function labelErrors(labels, where, errors) {
  for (const [k, v] of Object.entries(labels ?? {})) {
    const slash = k.lastIndexOf("/");
    const prefix = slash >= 0 ? k.slice(0, slash) : "";
    const name = k.slice(slash + 1);
    if ((slash >= 0 && (prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix))) ||
        !name || name.length > 63 || !LABEL_VALUE.test(name)) {
      errors.push(`${where}: invalid label key "${k}"`);
    }
    if (typeof v !== "string" || v.length > 63 || !LABEL_VALUE.test(v)) {
      errors.push(`${where}: invalid label value "${k}: ${v}"`);
    }
  }
}

// Every port number under spec, wherever it is (containers, probes, Services,
// NetworkPolicies); named ports are checked as names.
function portErrors(value, path, where, errors = []) {
  if (value === null || typeof value !== "object") return errors;
  for (const [k, v] of Object.entries(value)) {
    if (PORT_KEYS.has(k) && typeof v === "number" && (!Number.isInteger(v) || v < 1 || v > 65535)) {
      errors.push(`${where}: ${path}/${k} ${v} is out of range (1-65535)`);
    } else if (PORT_KEYS.has(k) && typeof v === "string" && !/^\d+$/.test(v) && !ianaName(v)) {
      errors.push(`${where}: ${path}/${k} "${v}" is no port number nor IANA service name`);
    } else if (PORT_KEYS.has(k) && typeof v === "string" && /^\d+$/.test(v) && (+v < 1 || +v > 65535)) {
      errors.push(`${where}: ${path}/${k} ${v} is out of range (1-65535)`);
    } else {
      portErrors(v, `${path}/${k}`, where, errors);
    }
  }
  return errors;
}

// A label selector (matchLabels + matchExpressions, or a Service's plain map).
function selects(selector, labels) {
  if (!selector) return false;
  const plain = selector.matchLabels === undefined && selector.matchExpressions === undefined;
  const matchLabels = plain ? selector : selector.matchLabels ?? {};
  if (!Object.entries(matchLabels).every(([k, v]) => labels[k] === v)) return false;
  return (plain ? [] : selector.matchExpressions ?? []).every((e) => {
    const has = Object.hasOwn(labels, e.key);
    switch (e.operator) {
      case "In": return has && e.values.includes(labels[e.key]);
      case "NotIn": return !has || !e.values.includes(labels[e.key]);
      case "Exists": return has;
      case "DoesNotExist": return !has;
      default: return false;
    }
  });
}

function podLabels(obj) {
  return obj.spec?.template?.metadata?.labels ?? {};
}

function selectorErrors(obj, where, objects) {
  const errors = [];
  const workloads = objects.filter((o) => WORKLOADS.has(o.kind) &&
    (o.metadata?.namespace ?? "") === (obj.metadata?.namespace ?? ""));
  if (WORKLOADS.has(obj.kind) && obj.spec?.selector && !selects(obj.spec.selector, podLabels(obj))) {
    errors.push(`${where}: spec.selector ${JSON.stringify(obj.spec.selector)} does not match its pod ` +
      `template labels ${JSON.stringify(podLabels(obj))}`);
  }
  if (obj.kind === "Service" && obj.spec?.selector && Object.keys(obj.spec.selector).length) {
    const matched = workloads.filter((w) => selects(obj.spec.selector, podLabels(w)));
    if (!matched.length) {
      errors.push(`${where}: spec.selector ${JSON.stringify(obj.spec.selector)} matches no ` +
        "Deployment/StatefulSet pod labels");
    }
    for (const p of obj.spec.ports ?? []) {
      if (typeof p.targetPort !== "string" || !matched.length) continue;
      const named = matched.some((w) => [...(w.spec.template.spec?.containers ?? [])]
        .some((c) => (c.ports ?? []).some((cp) => cp.name === p.targetPort)));
      if (!named) errors.push(`${where}: targetPort "${p.targetPort}" is no container port of the pods it selects`);
    }
  }
  if (obj.kind === "PodDisruptionBudget" && !workloads.some((w) => selects(obj.spec?.selector, podLabels(w)))) {
    errors.push(`${where}: spec.selector matches no Deployment/StatefulSet pod labels`);
  }
  if (obj.kind === "HorizontalPodAutoscaler") {
    const t = obj.spec?.scaleTargetRef ?? {};
    if (!workloads.some((w) => w.kind === t.kind && w.metadata?.name === t.name)) {
      errors.push(`${where}: scaleTargetRef ${t.kind}/${t.name} is not in the set`);
    }
  }
  return errors;
}

async function check(obj, objects) {
  const where = `${obj.kind}/${obj.metadata?.name ?? "?"}`;
  if (Object.hasOwn(REMOVED, obj.apiVersion)) {
    return [`${where}: apiVersion ${obj.apiVersion} is removed: use ${REMOVED[obj.apiVersion]}`];
  }
  return [
    ...(await schemaErrors(obj, where)),
    ...nameErrors(obj, where),
    ...portErrors(obj.spec, "spec", where),
    ...selectorErrors(obj, where, objects),
  ];
}

const objects = JSON.parse(readFileSync(0, "utf8"));
let failed = 0;
for (const obj of objects) {
  const errors = await check(obj, objects);
  if (errors.length) {
    failed++;
    for (const e of errors) console.log(`INVALID ${e}`);
  } else {
    console.log(`valid ${obj.apiVersion} ${obj.kind}/${obj.metadata.name}`);
  }
}
console.log(`k8s schemas: ${objects.length - failed} valid, ${failed} invalid`);
process.exit(failed ? 1 : 0);
