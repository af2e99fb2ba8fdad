#!/usr/bin/env bash
# test_k8s.sh - the Kubernetes manifests, checked offline:
#   1. `kubectl kustomize k8s` renders them (kubectl's built-in kustomize);
#   2. every rendered object validates against the Kubernetes OpenAPI schemas
#      shipped by the npm package kubernetes-models (scripts/k8s/validate.mjs);
#   3. k8s_invariants.py checks what OMS promises (probes, limits from measured
#      figures, non-root, read-only root, PDB, Secret, HPA, pinned images,
#      `apply -f` == `apply -k`), and that it reports each of those broken;
#   4. the ConfigMaps copied from deploy/nats/auth.conf and k8s/grafana/ are
#      current (scripts/k8s-sync.sh --check).
# usage: tests/deploy/test_k8s.sh SOURCE_DIR WORK_DIR
set -euo pipefail

ROOT=$1
WORK=$2
VALIDATOR=$ROOT/scripts/k8s

mkdir -p "$WORK"
command -v kubectl >/dev/null ||
    { echo "kubectl not found: it renders the manifests (kubectl kustomize); see docs/operations.md" >&2; exit 1; }
[[ -d $VALIDATOR/node_modules/kubernetes-models ]] ||
    { echo "$VALIDATOR/node_modules is missing: run \`make deps\` (npm ci there)" >&2; exit 1; }

"$ROOT/scripts/k8s-sync.sh" --check
kubectl kustomize "$ROOT/k8s" >"$WORK/rendered.yaml"
/usr/bin/python3 "$ROOT/tests/deploy/k8s_invariants.py" "$ROOT" "$WORK/rendered.yaml" \
    --json "$WORK/rendered.json" --selftest
(cd "$VALIDATOR" && node validate.mjs <"$WORK/rendered.json") >"$WORK/validate.log" || {
    grep -v '^valid ' "$WORK/validate.log"
    exit 1
}
tail -n 1 "$WORK/validate.log"
