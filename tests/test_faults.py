"""Faults caused for real: an S3 server that goes away, killed stages, concurrent writers.

Each test starts what it breaks (its own SeaweedFS server, its own subprocesses) so the session
fixtures stay healthy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import boto3
import pytest

from sd1job.store import LocalStore, open_store
from tests import services
from tests.helpers import job_env, prepare_run, run_job, small_config, write_toy_recordings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def own_s3(tmp_path: Path) -> services.S3Server:
    server = services.start_s3(tmp_path / "weed")
    yield server
    server.stop()


def _prepare_s3_run(server: services.S3Server, tmp_path: Path) -> tuple[Path, str]:
    bucket = f"f-{uuid.uuid4().hex[:10]}"
    client = boto3.client("s3", **_client_args(server))
    client.create_bucket(Bucket=bucket)
    config = small_config(f"s3://{bucket}/exp")
    env_backup = dict(os.environ)
    os.environ.update(server.client_env)
    try:
        write_toy_recordings(open_store(config.store), config)
    finally:
        os.environ.clear()
        os.environ.update(env_backup)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(config.to_yaml())
    return config_file, bucket


def _client_args(server: services.S3Server) -> dict[str, str]:
    env = server.client_env
    return {
        "endpoint_url": env["AWS_ENDPOINT_URL"],
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": "us-east-1",
    }


def _objects(server: services.S3Server, bucket: str, prefix: str) -> list[str]:
    client = boto3.client("s3", **_client_args(server))
    return [item["Key"] for item in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


@pytest.mark.slow
def test_stage_rides_out_a_short_s3_outage(own_s3: services.S3Server, tmp_path: Path) -> None:
    config_file, bucket = _prepare_s3_run(own_s3, tmp_path)
    own_s3.stop()
    restarter = threading.Timer(3.0, own_s3.restart)
    restarter.start()
    started = time.monotonic()
    result = run_job(["data", "--config", str(config_file)], job_env({**own_s3.client_env, "AWS_MAX_ATTEMPTS": "10"}))
    restarter.join()
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started > 2.5  # it really waited for the server
    assert "exp/runs/test-run/data/manifest.json" in _objects(own_s3, bucket, "exp/runs/")


@pytest.mark.slow
def test_stage_fails_cleanly_when_s3_stays_down(own_s3: services.S3Server, tmp_path: Path) -> None:
    config_file, bucket = _prepare_s3_run(own_s3, tmp_path)
    own_s3.stop()
    result = run_job(["data", "--config", str(config_file)], job_env({**own_s3.client_env, "AWS_MAX_ATTEMPTS": "2"}))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: s3://{bucket}/exp/") and "Could not connect to the endpoint" in lines[-1]
    own_s3.restart()
    assert _objects(own_s3, bucket, "exp/runs/") == []


@pytest.mark.slow
def test_killed_data_stage_rerun_gives_the_same_outputs(tmp_path: Path) -> None:
    outputs = {}
    for name, kill in (("killed", True), ("clean", False)):
        root = tmp_path / name
        config = small_config(str(root), dataset__contexts=[8, 16, 24, 32, 40, 48, 56, 64], dataset__pairs=20_000)
        write_toy_recordings(LocalStore(root), config, seconds=6.0)
        config_file = tmp_path / f"{name}.yaml"
        config_file.write_text(config.to_yaml())
        env = job_env({})
        if kill:
            process = subprocess.Popen(
                [sys.executable, "-m", "sd1job", "data", "--config", str(config_file)], cwd=REPO, env=env
            )
            deadline = time.monotonic() + 60
            while not (root / "runs/test-run/data/c8/positions.npz").exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            process.send_signal(signal.SIGKILL)
            process.wait()
        assert run_job(["data", "--config", str(config_file)], env).returncode == 0
        store = LocalStore(root)
        outputs[name] = {k: store.read_bytes(k) for k in store.list("runs") if not k.endswith("manifest.json")}
        assert not [p for p in root.rglob(".*.tmp")], "a torn temp file was left visible"
    assert outputs["killed"].keys() == outputs["clean"].keys()
    for key, data in outputs["clean"].items():
        assert outputs["killed"][key] == data, key


def _train_config(root: Path, contexts: list[int], epochs: int = 4) -> object:
    return small_config(
        str(root),
        dataset__contexts=contexts,
        dataset__pairs=800,
        train={"epochs": epochs, "patience": epochs, "batch_size": 64, "lstm_units": 8},
    )


@pytest.mark.slow
def test_ten_trainers_at_once_against_one_s3_store(s3_server: services.S3Server, tmp_path: Path) -> None:
    bucket = f"c-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", **_client_args(s3_server)).create_bucket(Bucket=bucket)
    contexts = [4 * k for k in range(1, 11)]
    config = _train_config(tmp_path, contexts, epochs=2)
    config.store = f"s3://{bucket}/shared"
    config_file = prepare_run(config, tmp_path / "config.yaml", s3_server.client_env)
    env = job_env(s3_server.client_env)
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "sd1job", "train", "--config", str(config_file), "--context", str(n), "-q"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for n in contexts
    ]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    assert [p.returncode for p in processes] == [0] * 10, outputs
    keys = _objects(s3_server, bucket, "shared/runs/test-run/models/")
    for n in contexts:
        mine = [k for k in keys if f"/models/c{n}/" in k]
        assert any(k.endswith("model.keras") for k in mine) and any(k.endswith("history.json") for k in mine)
    client = boto3.client("s3", **_client_args(s3_server))
    for n in contexts:
        body = client.get_object(Bucket=bucket, Key=f"shared/runs/test-run/models/c{n}/history.json")["Body"].read()
        history = __import__("json").loads(body)
        assert history["context"] == n, "another context's history landed here"
        assert history["epochs_run"] == 2


def _run_until(args: list[str], condition: object, timeout: float = 300) -> int:
    """Start `python -m sd1job ARGS`, SIGKILL it as soon as ``condition()`` is true; return its status."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sd1job", *args, "-q"],
        cwd=REPO,
        env=job_env({}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    return process.wait()


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def _after_next_write(path: Path, pause: float) -> object:
    """A condition that turns true ``pause`` seconds after ``path`` is next replaced."""
    before = _mtime(path)
    moment: list[float] = []

    def condition() -> bool:
        if not moment:
            if _mtime(path) not in (before, None):
                moment.append(time.monotonic() + pause)
            return False
        return time.monotonic() >= moment[0]

    return condition


@pytest.mark.slow
def test_kills_at_random_points_and_during_checkpoint_writes_lose_nothing(tmp_path: Path) -> None:
    import json
    import random

    epochs = 6
    results = {}
    for name in ("clean", "killed"):
        root = tmp_path / name
        config = _train_config(root, [8], epochs=epochs)
        write_toy_recordings(LocalStore(root), config, seconds=2.0)
        from sd1job.data_stage import run_data

        run_data(config, LocalStore(root))
        config_file = tmp_path / f"{name}.yaml"
        config_file.write_text(config.to_yaml())
        model_dir = root / "runs/test-run/models/c8"
        train = ["train", "--config", str(config_file), "--context", "8"]
        if name == "killed":
            rng = random.Random(25)
            kills = 0
            # 1: during a checkpoint write (its temp file exists); 2-3: at a random moment of the epoch
            # after the next checkpoint (a seeded pause of up to 0.3 s after it lands).
            status = _run_until(train, lambda d=model_dir: any(d.glob("checkpoint/.checkpoint.npz.*.tmp")))
            kills += status == -signal.SIGKILL
            for _ in range(2):
                checkpoint = model_dir / "checkpoint" / "checkpoint.npz"
                status = _run_until(train, _after_next_write(checkpoint, rng.uniform(0.0, 0.3)))
                kills += status == -signal.SIGKILL
            assert kills == 3, "the trainer finished before it could be killed"
        result = run_job(["train", "--config", str(config_file), "--context", "8"], job_env({}))
        assert result.returncode == 0, result.stdout + result.stderr
        history = json.loads((model_dir / "history.json").read_text())
        results[name] = history
        assert [e["epoch"] for e in history["epochs"]] == list(range(1, epochs + 1))
    assert results["killed"]["epochs_run"] == results["clean"]["epochs_run"] == epochs
    for clean, killed in zip(results["clean"]["epochs"], results["killed"]["epochs"], strict=True):
        assert killed["loss"] == pytest.approx(clean["loss"], rel=1e-5)
        assert killed["val_loss"] == pytest.approx(clean["val_loss"], rel=1e-5)


@pytest.mark.slow
def test_killed_eval_rerun_gives_the_same_outputs(tmp_path: Path) -> None:
    import csv
    import io

    from sd1job.train import train_context

    root = tmp_path / "store"
    config = _train_config(root, [8, 16], epochs=2)
    config_file = prepare_run(config, tmp_path / "config.yaml", {}, seconds=2.0)
    store = LocalStore(root)
    for context in (8, 16):
        train_context(config, store, context)
    eval_dir = root / "runs/test-run/eval"

    assert run_job(["eval", "--config", str(config_file)], job_env({})).returncode == 0
    clean = {p.relative_to(eval_dir): p.read_bytes() for p in eval_dir.rglob("*.wav")}
    clean_rows = (eval_dir / "results.csv").read_text()
    for path in sorted(eval_dir.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()

    outputs = eval_dir / "audio" / "c8"
    status = _run_until(["eval", "--config", str(config_file)], lambda: outputs.is_dir() and any(outputs.iterdir()))
    assert status == -signal.SIGKILL, "eval finished before it could be killed"
    assert not (eval_dir / "report.html").exists()
    assert run_job(["eval", "--config", str(config_file)], job_env({})).returncode == 0
    again = {p.relative_to(eval_dir): p.read_bytes() for p in eval_dir.rglob("*.wav")}
    assert again == clean

    def scores(text: str) -> list[tuple[str, ...]]:
        columns = ("context", "riff", "esr", "esr_pre", "mse", "mae", "stft", "epochs_run", "best_epoch")
        return [tuple(row[c] for c in columns) for row in csv.DictReader(io.StringIO(text))]

    assert scores((eval_dir / "results.csv").read_text()) == scores(clean_rows)
