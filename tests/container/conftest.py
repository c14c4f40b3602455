"""Fixtures of the container tests: the built image, the sweep file, and the cluster objects its pods read.

`make image-test` builds the CPU image and names it in CONTAINER_TEST_IMAGE; the tests fail (not
skip) when podman or the image is missing, with the command that provides them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts import services
from tests.container import argo, podman

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_IMAGE = "localhost/sd1job:test-cpu"


@pytest.fixture(scope="session")
def image() -> str:
    """The image under test (built by `make image-test`)."""
    name = os.environ.get("CONTAINER_TEST_IMAGE", DEFAULT_IMAGE)
    if shutil.which(podman.PODMAN) is None or "CONTAINERS_CONF" not in os.environ:
        pytest.fail("podman is not set up here: run `make image-test` (it installs podman and writes CONTAINERS_CONF)")
    exists = subprocess.run([podman.PODMAN, "image", "exists", name], check=False)
    if exists.returncode != 0:
        pytest.fail(f"image {name} is not built: run `make image-test`")
    return name


@pytest.fixture(scope="session")
def image_config(image: str) -> dict[str, Any]:
    """The image's config (User, Entrypoint, Env, ...)."""
    return podman.image_config(image)


@pytest.fixture(scope="session")
def sweep_template() -> dict[str, Any]:
    """The WorkflowTemplate of argo/sweep.yaml."""
    return argo.workflow_template(list(yaml.safe_load_all((REPO_ROOT / "argo" / "sweep.yaml").read_text())))


@pytest.fixture(scope="session")
def k8s_objects() -> list[dict[str, Any]]:
    """Every object `kubectl kustomize k8s/` renders."""
    result = subprocess.run(
        ["kubectl", "kustomize", str(REPO_ROOT / "k8s")], capture_output=True, text=True, check=True, timeout=60
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def config_map(objects: list[dict[str, Any]], name: str) -> dict[str, str]:
    """The data of the rendered ConfigMap ``name``."""
    matches = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"ConfigMap {name}: {len(matches)} rendered"
    return dict(matches[0]["data"])


def cluster_secrets(s3_server: services.S3Server) -> dict[str, dict[str, str]]:
    """The Secret k8s/secret.example.yaml shapes, holding the test S3 server's credentials under its keys."""
    example = yaml.safe_load((REPO_ROOT / "k8s" / "secret.example.yaml").read_text())
    return {example["metadata"]["name"]: {key: s3_server.client_env[key] for key in example["stringData"]}}


def make_cluster(
    objects: list[dict[str, Any]], s3_server: services.S3Server, config_yaml: str, workdir: Path
) -> podman.Cluster:
    """The namespace the pods see: the rendered sd1job-config, with the test's config file and S3 endpoint."""
    config = config_map(objects, "sd1job-config")
    assert {"config.yaml", "AWS_ENDPOINT_URL"} <= set(config), sorted(config)
    config |= {"config.yaml": config_yaml, "AWS_ENDPOINT_URL": s3_server.url}
    return podman.Cluster(config_maps={"sd1job-config": config}, secrets=cluster_secrets(s3_server), workdir=workdir)


def new_bucket(s3_server: services.S3Server) -> str:
    """A fresh, empty bucket on the test S3 server."""
    name = f"c-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name)
    return name
