"""Run an Argo pod (tests/container/argo.py) with podman, as the kubelet would run its container.

The pod's fields become podman flags: command -> --entrypoint, args after the image, env (values,
configMapKeyRef, secretKeyRef) -> an env file, securityContext -> --user/--group-add,
--read-only, no-new-privileges, --cap-drop/--cap-add, an emptyDir -> a tmpfs, a configMap or
secret volume -> a read-only directory of its keys, resource limits -> --memory/--cpus. Host
networking, so that the pods reach the test's services on loopback.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.container.argo import Mount, Pod, PodResult

PODMAN = "podman"
_QUANTITY = re.compile(r"^([0-9.]+)(m|k|Ki|M|Mi|G|Gi|T|Ti)?$")
_FACTORS = {
    None: 1,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


class PodRejectedError(Exception):
    """The kubelet would refuse this pod (e.g. runAsNonRoot with a root user), or it names a missing object."""


@dataclass
class Cluster:
    """What the pods find in their namespace: ConfigMaps and Secrets (name -> key -> value)."""

    config_maps: dict[str, dict[str, str]]
    secrets: dict[str, dict[str, str]]
    workdir: Path  # where env files and volume directories are written
    network: str = "host"


def quantity(text: str | int | float) -> float:
    """A Kubernetes resource quantity ("100m", "8Gi", "2") as a number."""
    match = _QUANTITY.match(str(text))
    if not match:
        raise PodRejectedError(f"resource quantity not understood: {text!r}")
    return float(match.group(1)) * _FACTORS[match.group(2)]


def resolve_env(env: list[dict[str, Any]], cluster: Cluster) -> dict[str, str]:
    """The container's environment: plain values, and references to ConfigMap or Secret keys."""
    resolved: dict[str, str] = {}
    for var in env:
        if "value" in var or "valueFrom" not in var:
            resolved[var["name"]] = str(var.get("value", ""))
            continue
        source = var["valueFrom"]
        if "configMapKeyRef" in source:
            ref, objects, kind = source["configMapKeyRef"], cluster.config_maps, "ConfigMap"
        elif "secretKeyRef" in source:
            ref, objects, kind = source["secretKeyRef"], cluster.secrets, "Secret"
        else:
            raise PodRejectedError(f"env {var['name']}: only configMapKeyRef and secretKeyRef are supported")
        value = objects.get(ref["name"], {}).get(ref["key"])
        if value is None:
            if ref.get("optional"):
                continue
            raise PodRejectedError(f"env {var['name']}: {kind} {ref['name']} has no key {ref['key']}")
        resolved[var["name"]] = value
    return resolved


def security_flags(security: Mapping[str, Any], image_user: str) -> list[str]:
    """podman flags for a merged pod + container securityContext (``image_user``: the image's USER)."""
    flags: list[str] = []
    user, group = security.get("runAsUser"), security.get("runAsGroup")
    if security.get("runAsNonRoot"):
        effective = str(user) if user is not None else image_user.split(":")[0]
        if effective in ("", "0", "root"):
            raise PodRejectedError("runAsNonRoot is set but the container would run as root")
    if user is not None:
        flags += ["--user", f"{user}:{group}" if group is not None else str(user)]
    for extra in [security.get("fsGroup"), *security.get("supplementalGroups", [])]:
        if extra is not None:
            flags += ["--group-add", str(extra)]
    if security.get("readOnlyRootFilesystem"):
        # No tmpfs of podman's own on /tmp, /run, /var/tmp: only the pod's volumes are writable.
        flags += ["--read-only", "--read-only-tmpfs=false"]
    if security.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    if security.get("privileged"):
        flags += ["--privileged"]
    capabilities = security.get("capabilities", {})
    flags += [flag for cap in capabilities.get("drop", []) for flag in ("--cap-drop", cap)]
    flags += [flag for cap in capabilities.get("add", []) for flag in ("--cap-add", cap)]
    seccomp = security.get("seccompProfile", {}).get("type", "RuntimeDefault")
    if seccomp == "Unconfined":
        flags += ["--security-opt", "seccomp=unconfined"]
    elif seccomp != "RuntimeDefault":
        raise PodRejectedError(f"seccompProfile {seccomp} is not supported here")
    return flags


def resource_flags(resources: Mapping[str, Any]) -> list[str]:
    """podman flags for the container's limits (memory, cpu); requests only schedule, GPUs are absent here."""
    limits = resources.get("limits", {})
    flags: list[str] = []
    if "memory" in limits:
        flags += ["--memory", str(int(quantity(limits["memory"])))]
    if "cpu" in limits:
        flags += ["--cpus", f"{quantity(limits['cpu']):g}"]
    return flags


def volume_flags(mounts: list[Mount], cluster: Cluster, pod_dir: Path) -> list[str]:
    """podman flags for the pod's volumes: emptyDir -> tmpfs, configMap/secret -> a read-only directory."""
    flags: list[str] = []
    for mount in mounts:
        volume = mount.volume
        if "emptyDir" in volume:
            # An emptyDir is world-writable and executable, like a kubelet's.
            options = ["rw", "exec", "mode=0777"]
            if "sizeLimit" in volume["emptyDir"]:
                options.append(f"size={int(quantity(volume['emptyDir']['sizeLimit']))}")
            flags += ["--tmpfs", f"{mount.path}:{','.join(options)}"]
        elif "configMap" in volume or "secret" in volume:
            directory = write_volume(volume, cluster, pod_dir / volume["name"])
            flags += ["--volume", f"{directory}:{mount.path}:ro"]
        else:
            raise PodRejectedError(f"volume {volume['name']}: only emptyDir, configMap and secret are supported")
    return flags


def write_volume(volume: Mapping[str, Any], cluster: Cluster, directory: Path) -> Path:
    """A configMap or secret volume's files in ``directory`` (its ``items``, or every key), mode 0644."""
    if "configMap" in volume:
        source, name, kind = volume["configMap"], volume["configMap"]["name"], "ConfigMap"
        data = cluster.config_maps.get(name)
    else:
        source, name, kind = volume["secret"], volume["secret"]["secretName"], "Secret"
        data = cluster.secrets.get(name)
    if data is None:
        raise PodRejectedError(f"volume {volume['name']}: {kind} {name} does not exist")
    items = source.get("items") or [{"key": key, "path": key} for key in data]
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    for item in items:
        if item["key"] not in data:
            raise PodRejectedError(f"volume {volume['name']}: {kind} {name} has no key {item['key']}")
        path = directory / item["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data[item["key"]])
        path.chmod(0o644)
    return directory


def run_argv(pod: Pod, cluster: Cluster, name: str, image_user: str) -> list[str]:
    """The ``podman run`` command line of one attempt of ``pod`` (its env file and volumes written)."""
    pod_dir = cluster.workdir / name
    pod_dir.mkdir(parents=True, exist_ok=True)
    env_file = pod_dir / "env"
    env = resolve_env(pod.env, cluster)
    if any("\n" in value for value in env.values()):
        raise PodRejectedError("an environment value holds a newline, which an env file cannot carry")
    env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    env_file.chmod(0o600)
    argv = [PODMAN, "run", "--rm", "--name", name, "--pull", "never", "--network", cluster.network]
    argv += ["--env-file", str(env_file)]
    argv += security_flags(pod.security, image_user)
    argv += volume_flags(pod.mounts, cluster, pod_dir)
    argv += resource_flags(pod.resources)
    if pod.working_dir:
        argv += ["--workdir", pod.working_dir]
    if pod.command:
        argv += ["--entrypoint", json.dumps(pod.command)]
    return [*argv, pod.image, *pod.args]


def container_name(pod: Pod, attempt: int) -> str:
    """A podman container name for one attempt (unique within a test session)."""
    slug = re.sub(r"[^a-zA-Z0-9_.-]+", "-", pod.node).strip("-.")
    return f"sd1job-{slug}-a{attempt}-{os.getpid()}-{time.monotonic_ns() % 10**6}"


def image_inspect(image: str) -> dict[str, Any]:
    """``podman image inspect`` of ``image``: Config (User, Entrypoint, Env...), History, GraphDriver."""
    result = subprocess.run([PODMAN, "image", "inspect", image], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)[0]


def image_config(image: str) -> dict[str, Any]:
    """The image's Config (User, Entrypoint, Cmd, Env, WorkingDir)."""
    return image_inspect(image)["Config"]


@dataclass
class PodmanRunner:
    """Runs pod attempts with podman; ``during`` may act on a running attempt (e.g. kill it)."""

    cluster: Cluster
    image_user: str
    timeout: float = 900.0
    during: Callable[[Pod, int, str, subprocess.Popen[str]], None] | None = None
    argvs: list[list[str]] = field(default_factory=list)

    def __call__(self, pod: Pod, attempt: int) -> PodResult:
        """Run one attempt to its end: exit status, stdout, stderr (kept in files, so no pipe fills up)."""
        name = container_name(pod, attempt)
        argv = run_argv(pod, self.cluster, name, self.image_user)
        self.argvs.append(argv)
        timeout = min(self.timeout, pod.deadline_seconds or self.timeout)
        out, err = self.cluster.workdir / name / "stdout", self.cluster.workdir / name / "stderr"
        with out.open("w") as stdout, err.open("w") as stderr:
            process = subprocess.Popen(argv, stdout=stdout, stderr=stderr, text=True)
            try:
                if self.during is not None:
                    self.during(pod, attempt, name, process)
                process.wait(timeout=timeout)
            except BaseException:
                subprocess.run([PODMAN, "kill", name], capture_output=True, check=False)
                process.kill()
                process.wait()
                raise
        return PodResult(process.returncode, out.read_text(), err.read_text())
