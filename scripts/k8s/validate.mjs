// validate.mjs - validates Kubernetes objects against the Kubernetes OpenAPI
// schemas that the kubernetes-models package ships (compiled JSON-schema
// validators, offline). Reads a JSON array of objects on stdin (the output of
// `kubectl kustomize k8s`, converted by tests/deploy/k8s_invariants.py),
// prints one line per object and every error with the object and field path,
// and exits 1 if any object is invalid or of a kind it has no schema for.
//
// The schemas reject wrong types, missing required fields and bad enum or
// format values; like the API server's own OpenAPI schemas they do not set
// additionalProperties: false, so a misspelt optional field is not reported
// here (the invariant checks catch the fields OMS relies on).
import { readFileSync } from "node:fs";

// apiVersion "apps/v1" -> "apps/v1", core "v1" -> "v1": the package's layout.
function modulePath(apiVersion, kind) {
  return `kubernetes-models/${apiVersion}/${kind}`;
}

async function validate(obj) {
  const where = `${obj.kind}/${obj.metadata?.name ?? "?"}`;
  let mod;
  try {
    mod = await import(modulePath(obj.apiVersion, obj.kind));
  } catch {
    return [`${where}: no schema for apiVersion ${obj.apiVersion} kind ${obj.kind}`];
  }
  const Model = mod[obj.kind];
  try {
    new Model(obj).validate();
    return [];
  } catch (e) {
    const details = (e.errors ?? []).map(
      (d) => `${where}: ${d.instancePath || "/"} ${d.message}` +
        (d.params?.allowedValues ? ` (${d.params.allowedValues.join(", ")})` : ""),
    );
    return details.length ? details : [`${where}: ${e.message}`];
  }
}

const objects = JSON.parse(readFileSync(0, "utf8"));
let failed = 0;
for (const obj of objects) {
  const errors = await validate(obj);
  if (errors.length) {
    failed++;
    for (const e of errors) console.log(`INVALID ${e}`);
  } else {
    console.log(`valid ${obj.apiVersion} ${obj.kind}/${obj.metadata.name}`);
  }
}
console.log(`k8s schemas: ${objects.length - failed} valid, ${failed} invalid`);
process.exit(failed ? 1 : 0);
