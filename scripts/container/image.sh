#!/usr/bin/env bash
# Build or push sd1job's image with whichever engine is present: docker (when its engine answers),
# else podman, else buildah. Used by `make image` and `make image-push`.
#
#   scripts/container/image.sh engine                  print the engine it would use
#   scripts/container/image.sh build gpu|cpu IMAGE     build (cpu: on CPU_BASE, made when missing)
#   scripts/container/image.sh push IMAGE              push to the registry IMAGE names
#
# Environment: CPU_BASE (default localhost/sd1job-base:bookworm-py3.11); HOST_CA_BUNDLE, a CA
# bundle mounted read-only over the base's during podman/buildah build steps, so that pip trusts
# what the host trusts (default: the host's /etc/ssl/certs/ca-certificates.crt when present; set
# it empty for none). The bundle is never copied into the image.
set -euo pipefail
cd "$(dirname "$0")/../.."
CPU_BASE="${CPU_BASE:-localhost/sd1job-base:bookworm-py3.11}"
GPU_BASE=""  # empty: the Dockerfile's default BASE_IMAGE
HOST_CA_BUNDLE="${HOST_CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}"

engine() {
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then echo docker
  elif command -v podman >/dev/null; then echo podman
  elif command -v buildah >/dev/null; then echo buildah
  else
    echo "error: no container engine: install docker, podman or buildah (make image-test installs podman and buildah)" >&2
    return 1
  fi
}

build() {
  local variant="$1" image="$2" engine base args=()
  engine="$(engine)"
  case "$variant" in
    gpu) base="$GPU_BASE" ;;
    cpu)
      base="$CPU_BASE"
      if [ "$engine" = buildah ]; then
        echo "error: the CPU base is imported with podman or docker; install one of them" >&2
        return 1
      fi
      ENGINE="$engine" bash scripts/container/build-base.sh "$base" ;;
    *) echo "error: VARIANT must be gpu or cpu, got '$variant'" >&2; return 2 ;;
  esac
  [ -n "$base" ] && args+=(--build-arg "BASE_IMAGE=$base")
  case "$engine" in
    docker) set -- docker build ;;
    # --layers: reuse every unchanged step; chroot isolation works where a nested runtime does not.
    podman) set -- podman build --layers --isolation chroot ;;
    buildah) set -- buildah bud --layers --isolation chroot ;;
  esac
  if [ "$engine" != docker ] && [ -n "$HOST_CA_BUNDLE" ] && [ -f "$HOST_CA_BUNDLE" ]; then
    args+=(--volume "$HOST_CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro")
  fi
  echo "building $image ($variant, base ${base:-from the Dockerfile}) with $engine"
  local start=$SECONDS
  "$@" "${args[@]}" --tag "$image" .
  echo "built $image with $engine in $((SECONDS - start)) s"
}

push() {
  local engine
  engine="$(engine)"
  echo "pushing $1 with $engine"
  "$engine" push "$1"
}

case "${1:-}" in
  engine) engine ;;
  build) build "${2:?variant}" "${3:?image}" ;;
  push) push "${2:?image}" ;;
  *) echo "usage: $0 engine | build gpu|cpu IMAGE | push IMAGE" >&2; exit 2 ;;
esac
