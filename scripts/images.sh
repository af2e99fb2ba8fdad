#!/usr/bin/env bash
# images.sh - builds one container image per service with Docker, named and
# tagged as the Kubernetes overlay says (its `images:` list is the one place
# where image names and tags are set: OMS_K8S_OVERLAY, by default
# deploy/overlays/example). Services whose sources are not in the tree yet
# are skipped. `make images` runs it; IMAGES_DRY_RUN=1 only prints the
# docker commands.
#
# usage: scripts/images.sh [service...]   (default: every service in the tree)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
OVERLAY=${OMS_K8S_OVERLAY:-deploy/overlays/example}
[[ $OVERLAY == /* ]] || OVERLAY=$ROOT/$OVERLAY
KUSTOMIZATION=$OVERLAY/kustomization.yaml

# Prints "name tag" for the placeholder image of <service> in k8s/ from the
# images: list (newName, if given, replaces the name).
image_of() {
    awk -v want="set-your-registry.invalid/oms/$1" '
        /^images:/ { in_images = 1; next }
        in_images && /^[^ #-]/ { in_images = 0 }
        in_images && $1 == "-" && $2 == "name:" { name = $3; new_name = $3; next }
        in_images && $1 == "newName:" { new_name = $2 }
        in_images && $1 == "newTag:" && name == want { print new_name, $2; found = 1; exit }
        END { exit !found }
    ' "$KUSTOMIZATION"
}

main() {
    local services=("$@") name image tag
    if ((${#services[@]} == 0)); then
        for name in ingest inventory payment notify refund analytics; do
            [[ -f $ROOT/services/$name/CMakeLists.txt ]] && services+=("$name")
        done
    fi
    if [[ ${IMAGES_DRY_RUN:-0} != 1 ]] && ! command -v docker >/dev/null; then
        echo "images: docker not found; install Docker (or run with IMAGES_DRY_RUN=1)" >&2
        exit 1
    fi
    for name in "${services[@]}"; do
        read -r image tag < <(image_of "$name") ||
            { echo "images: ${KUSTOMIZATION#"$ROOT"/} has no images: entry for set-your-registry.invalid/oms/$name" >&2; exit 1; }
        [[ -f $ROOT/services/$name/Dockerfile ]] ||
            { echo "images: services/$name/Dockerfile is missing" >&2; exit 1; }
        echo "images: $image:$tag from services/$name/Dockerfile"
        if [[ ${IMAGES_DRY_RUN:-0} == 1 ]]; then
            echo "docker build -f services/$name/Dockerfile -t $image:$tag ."
        else
            (cd "$ROOT" && docker build -f "services/$name/Dockerfile" -t "$image:$tag" .)
        fi
    done
}

main "$@"
