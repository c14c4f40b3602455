#!/usr/bin/env bash
# Build the CPU base image: Debian bookworm (minbase) with its Python 3.11, made with debootstrap
# and imported into the engine's local storage (no image registry is needed or reached). Reused
# when the image is already there; FORCE=1 rebuilds it. Needs root (debootstrap, chroot).
#
#   [ENGINE=podman|docker] scripts/container/build-base.sh [IMAGE]
#   (default IMAGE localhost/sd1job-base:bookworm-py3.11)
set -euo pipefail
image="${1:-localhost/sd1job-base:bookworm-py3.11}"
engine="${ENGINE:-podman}"
suite=bookworm
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# python-is-python3: the image's entry point is `python -m sd1job`, as on TensorFlow's GPU image.
packages=python3,python3-pip,python-is-python3,ca-certificates

if [ "${FORCE:-0}" != 1 ] && "$engine" image inspect "$image" >/dev/null 2>&1; then
  echo "base image $image: present, reused"
  exit 0
fi
root="$(mktemp -d "${TMPDIR:-/var/tmp}/sd1job-base.XXXXXX")"
trap 'rm -rf "$root"' EXIT
start=$SECONDS
echo "base image $image: debootstrap $suite (minbase + $packages) into $root"
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$root.log" 2>&1 || {
  tail -n 20 "$root.log" >&2; rm -f "$root.log"; exit 1
}
rm -f "$root.log"
version="$(chroot "$root" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[ "$version" = 3.11 ] || { echo "error: $suite's python3 is $version, the project needs 3.11" >&2; exit 1; }
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
quiet=()
[ "$engine" = podman ] && quiet=(--quiet)
tar -C "$root" --numeric-owner -c . | "$engine" import "${quiet[@]}" \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  --message "debootstrap --variant=minbase --include=$packages $suite" \
  - "$image" >/dev/null
echo "base image $image: built in $((SECONDS - start)) s ($("$engine" image inspect --format '{{.Size}}' "$image" | numfmt --to=iec))"
