"""Shared fixtures: real services on loopback, fresh stores, the real-data folder."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts import services

REPO_ROOT = Path(__file__).resolve().parents[1]
REALDATA = REPO_ROOT.parent / "shared" / "realdata"

# Tests must never reach a real cloud: drop any AWS settings inherited from the developer's shell.
for _name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
    os.environ.pop(_name, None)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
for _name in list(os.environ):
    if _name.startswith("SD1JOB_"):
        del os.environ[_name]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.S3Server]:
    """A real SeaweedFS S3 server with credentials enforced, for the whole session."""
    server = services.start_s3(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.stop()


@pytest.fixture
def s3_env(s3_server: services.S3Server, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point boto3 at the test S3 server (credentials, endpoint) for this test."""
    for name, value in s3_server.client_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    return s3_server.client_env


@pytest.fixture
def s3_bucket(s3_env: dict[str, str]) -> str:
    """A fresh, empty bucket on the test S3 server."""
    import boto3

    name = f"t-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"]).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.Service]:
    """A real Prometheus Pushgateway on loopback."""
    service = services.start_pushgateway(tmp_path_factory.mktemp("pushgateway"))
    yield service
    service.stop()


@pytest.fixture(scope="session")
def prometheus(pushgateway: services.Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.Service]:
    """A real Prometheus scraping the Pushgateway every second."""
    target = pushgateway.url.removeprefix("http://")
    service = services.start_prometheus(tmp_path_factory.mktemp("prometheus"), [target])
    yield service
    service.stop()


@pytest.fixture
def realdata() -> Path:
    """The shared real recordings (EGFxSet excerpts); skipped only where ../shared is absent."""
    if not REALDATA.is_dir():
        pytest.skip("../shared/realdata is not present in this checkout")
    return REALDATA
