#!/usr/bin/env bash
# test_k8s.sh - the Kubernetes manifests, checked offline:
#   1. on a copy of the tree with throwaway secrets (scripts/k8s-secrets.sh
#      into the copy: a fresh clone has none, and real ones are never read),
#      `kubectl kustomize` renders the base k8s/ and the overlay
#      deploy/overlays/example (kubectl's built-in kustomize);
#   2. scripts/k8s/validate.mjs validates every rendered object strictly
#      (schemas of the npm package kubernetes-models, unknown fields, removed
#      apiVersions, names, ports, selectors), and rejects each broken
#      manifest of tests/deploy/fixtures/ for the reason its first line names;
#   3. k8s_invariants.py checks what OMS promises (probes, limits from measured
#      figures, non-root, read-only root, PDB, HPA without replicas, generated
#      credentials, hashed ConfigMaps and Secrets, NetworkPolicy reachability,
#      exporters, placeholder images in the base and only the images changed
#      by the overlay), and that it reports each of those broken;
#   4. the ConfigMap copied from k8s/grafana/ is current (scripts/k8s-sync.sh
#      --check).
# usage: tests/deploy/test_k8s.sh SOURCE_DIR WORK_DIR
set -euo pipefail

ROOT=$1
WORK=$2/k8s
VALIDATOR=$ROOT/scripts/k8s

command -v kubectl >/dev/null ||
    { echo "kubectl not found: it renders the manifests (kubectl kustomize); see docs/operations.md" >&2; exit 1; }
[[ -d $VALIDATOR/node_modules/kubernetes-models ]] ||
    { echo "$VALIDATOR/node_modules is missing: run \`make deps\` (npm ci there)" >&2; exit 1; }

# to_json YAML JSON: the objects of a multi-document YAML file as a JSON array.
to_json() {
    /usr/bin/python3 -c 'import json, sys, yaml
json.dump([d for d in yaml.safe_load_all(open(sys.argv[1])) if d], open(sys.argv[2], "w"))' "$1" "$2"
}

# validate JSON LOG: the validator over one set of objects.
validate() {
    (cd "$VALIDATOR" && node validate.mjs <"$1") >"$2"
}

# tree: the parts of the source tree kustomize reads, with throwaway secrets.
tree() {
    rm -rf "$WORK"
    mkdir -p "$WORK/tree"
    # Without the credentials of this checkout, if it has any.
    tar -C "$ROOT" --exclude='k8s/secrets/*.env' -cf - k8s deploy/nats deploy/overlays \
        scripts/k8s-secrets.sh | tar -C "$WORK/tree" -xf -
    bash "$WORK/tree/scripts/k8s-secrets.sh" >/dev/null
}

# fixtures: each broken manifest must be refused, for the reason it names.
fixtures() {
    local f want n=0 missed=0
    for f in "$ROOT"/tests/deploy/fixtures/*.yaml; do
        want=$(sed -n '1s/^# expect: //p' "$f")
        [[ -n $want ]] || { echo "FAIL $f: no '# expect: ' first line"; missed=1; continue; }
        to_json "$f" "$WORK/fixture.json"
        n=$((n + 1))
        if validate "$WORK/fixture.json" "$WORK/fixture.log"; then
            echo "FAIL validate.mjs accepted ${f#"$ROOT"/}"
            missed=1
        elif ! grep -qF -- "$want" "$WORK/fixture.log"; then
            echo "FAIL validate.mjs refused ${f#"$ROOT"/} but not with \"$want\":"
            grep '^INVALID' "$WORK/fixture.log"
            missed=1
        fi
    done
    ((missed == 0)) || return 1
    echo "k8s validator selftest: $n of $n broken manifests refused, each for its reason"
}

"$ROOT/scripts/k8s-sync.sh" --check
tree
kubectl kustomize "$WORK/tree/k8s" >"$WORK/rendered.yaml"
kubectl kustomize "$WORK/tree/deploy/overlays/example" >"$WORK/overlay.yaml"
/usr/bin/python3 "$ROOT/tests/deploy/k8s_invariants.py" "$ROOT" "$WORK/rendered.yaml" \
    --overlay "$WORK/overlay.yaml" --json "$WORK/rendered.json" --selftest
to_json "$WORK/overlay.yaml" "$WORK/overlay.json"
for set in rendered overlay; do
    validate "$WORK/$set.json" "$WORK/validate-$set.log" || {
        grep -v '^valid ' "$WORK/validate-$set.log"
        exit 1
    }
    echo "$set: $(tail -n 1 "$WORK/validate-$set.log")"
done
fixtures
# The rendered objects hold the throwaway credentials: not left behind.
rm -rf "$WORK/tree" "$WORK"/*.yaml "$WORK"/*.json
