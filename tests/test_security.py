"""Credentials stay secret: never logged, never written into results, manifests or the report."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from scripts import services
from tests.helpers import job_env, prepare_run, run_job, small_config

REPO = Path(__file__).resolve().parents[1]
SECRETS = (services.TEST_ACCESS_KEY, services.TEST_SECRET_KEY)


@pytest.mark.slow
def test_a_whole_run_on_s3_never_reveals_the_credentials(s3_server: services.S3Server, tmp_path: Path) -> None:
    bucket = f"s-{uuid.uuid4().hex[:10]}"
    client = s3_server.client()
    client.create_bucket(Bucket=bucket)
    config = small_config(f"s3://{bucket}/exp", dataset__contexts=[8], train={"epochs": 1, "lstm_units": 8})
    config_file = prepare_run(config, tmp_path / "config.yaml", s3_server.client_env)
    env = job_env(s3_server.client_env)
    transcript = []
    for args in (["train", "--unit", "c8-s25"], ["eval"], ["report"], ["data", "--force"]):
        result = run_job([args[0], "--config", str(config_file), *args[1:]], env, timeout=600)
        assert result.returncode == 0, result.stderr
        transcript.append(result.stdout + result.stderr)
    # A refused key must not echo the secret either.
    bad = run_job(
        ["data", "--config", str(config_file), "--force"],
        {**env, "AWS_SECRET_ACCESS_KEY": SECRETS[1] + "x", "AWS_MAX_ATTEMPTS": "1"},
        timeout=120,
    )
    assert bad.returncode == 2
    transcript.append(bad.stdout + bad.stderr)

    keys = [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert any(k.endswith("report.html") for k in keys) and any(k.endswith("results.json") for k in keys)
    for key in keys:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        for secret in SECRETS:
            assert secret.encode() not in body, f"{secret!r} found in {key}"
    for text in transcript:
        for secret in SECRETS:
            assert secret not in text


def test_no_credentials_in_the_repository_manifests() -> None:
    # Manifests, workflow and image carry references to a Secret, never values.
    for path in [*(REPO / "k8s").rglob("*.y*ml"), *(REPO / "argo").rglob("*.y*ml"), REPO / "Dockerfile"]:
        text = path.read_text()
        for secret in SECRETS:
            assert secret not in text, path


def test_the_cluster_install_carries_no_secret_values() -> None:
    import yaml

    rendered = subprocess.run(
        ["kubectl", "kustomize", str(REPO / "k8s")], capture_output=True, text=True, check=True
    ).stdout
    assert not [d for d in yaml.safe_load_all(rendered) if d and d.get("kind") == "Secret"]
    example = yaml.safe_load((REPO / "k8s" / "secret.example.yaml").read_text())
    assert example["metadata"]["name"] == "sd1job-s3"
    assert all(value.startswith("REPLACE-WITH-") for value in example["stringData"].values())
