#!/usr/bin/env bash
# Write a containers.conf for podman and buildah on this machine to PATH (the Makefile points
# CONTAINERS_CONF at it; nothing is written to /etc):
# - runc with cgroupfs: crun, Debian's default runtime, fails on these machines' cgroups;
# - ulimits the runtime may set: podman's rootful defaults (nofile 1048576, nproc 4194304) exceed
#   what a process may raise to here, so every container would fail with "error setting rlimit".
#   nofile is this shell's hard limit; nproc is that capped at kernel.pid_max, which bounds the
#   limit conmon runs with.
#
#   scripts/container/containers-conf.sh PATH
set -euo pipefail
out="${1:?usage: $0 PATH}"
nofile="$(ulimit -Hn)"
nproc="$(ulimit -Hu)"
pid_max="$(cat /proc/sys/kernel/pid_max)"
[ "$nofile" = unlimited ] && nofile=1048576
if [ "$nproc" = unlimited ] || [ "$nproc" -gt "$pid_max" ]; then nproc="$pid_max"; fi
mkdir -p "$(dirname "$out")"
cat >"$out" <<CONF
# Written by scripts/container/containers-conf.sh for this machine; rewrite it there, not here.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
