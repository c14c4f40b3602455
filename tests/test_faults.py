"""Faults caused for real: an S3 server that goes away, killed stages, concurrent writers.

Each test starts what it breaks (its own SeaweedFS server, its own subprocesses) so the session
fixtures stay healthy. Every kill is checked to have landed where it was aimed (mid-stage, before
the stage's last object), and every rerun to have resumed rather than started over.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scripts import services
from sd1job.checkpoint import decode_checkpoint
from sd1job.config import Config
from sd1job.layout import RunLayout
from sd1job.stages.data import build_datasets
from sd1job.store import LocalStore, open_store
from sd1job.units import Unit
from tests.helpers import (
    PLAIN_LOSS,
    environment,
    foreign_stderr_lines,
    job_env,
    prepare_run,
    run_job,
    small_config,
    start_job,
    user_env,
    write_toy_recordings,
)

LAYOUT = RunLayout("test-run")
OUTAGE_SECONDS = 3.0


@pytest.fixture
def own_s3(tmp_path: Path) -> services.S3Server:
    server = services.start_s3(tmp_path / "weed")
    yield server
    server.stop()


def _prepare_s3_run(server: services.S3Server, tmp_path: Path, **overrides: object) -> tuple[Config, Path, str]:
    bucket = f"f-{uuid.uuid4().hex[:10]}"
    server.client().create_bucket(Bucket=bucket)
    config = small_config(f"s3://{bucket}/exp", **overrides)
    with environment(server.client_env):
        write_toy_recordings(open_store(config.store), config, seconds=6.0)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(config.to_yaml())
    return config, config_file, bucket


def _objects(server: services.S3Server, bucket: str, prefix: str) -> list[str]:
    return [item["Key"] for item in server.client().list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]


def _crash(server: services.S3Server) -> None:
    """Kill the S3 server at once (SIGKILL, no graceful shutdown during which it might still answer)."""
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait()


@pytest.mark.slow
def test_stage_rides_out_an_s3_outage_that_starts_mid_stage(own_s3: services.S3Server, tmp_path: Path) -> None:
    # Sixteen contexts with their exported arrays: about a second of writes after the first object.
    config, config_file, bucket = _prepare_s3_run(
        own_s3, tmp_path, dataset__contexts=[8 * k for k in range(1, 17)], dataset__pairs=20_000
    )
    prefix = "exp/runs/test-run/data/"
    env = job_env({**own_s3.client_env, "AWS_MAX_ATTEMPTS": "10"})
    process = start_job(
        ["data", "--config", str(config_file), "--export"],
        env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (landed := _objects(own_s3, bucket, prefix)) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.005)
    _crash(own_s3)
    assert landed and process.poll() is None, "the stage had not started writing, or had already finished"
    assert f"{prefix}manifest.json" not in landed
    time.sleep(OUTAGE_SECONDS)
    own_s3.restart()
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    manifest = json.loads(own_s3.client().get_object(Bucket=bucket, Key=f"{prefix}manifest.json")["Body"].read())
    # The stage itself waited the outage out: its own build time spans it.
    assert manifest["build_seconds"] >= OUTAGE_SECONDS, manifest["build_seconds"]
    written = set(_objects(own_s3, bucket, prefix))
    expected = {f"{prefix}audio.npz", f"{prefix}manifest.json"}
    for context in config.dataset.contexts:
        expected |= {f"{prefix}c{context}/positions.npz", f"{prefix}c{context}/arrays.npz"}
    assert written == expected
    assert json.loads(stdout) == [unit.name for unit in config.units()]


@pytest.mark.slow
def test_stage_fails_cleanly_when_s3_stays_down(own_s3: services.S3Server, tmp_path: Path) -> None:
    _, config_file, bucket = _prepare_s3_run(own_s3, tmp_path)
    own_s3.stop()
    result = run_job(["data", "--config", str(config_file)], job_env({**own_s3.client_env, "AWS_MAX_ATTEMPTS": "2"}))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr  # the whole of stderr: the one error line
    assert (
        result.stderr.startswith(f"error: s3://{bucket}/exp/") and "Could not connect to the endpoint" in result.stderr
    )
    own_s3.restart()
    assert _objects(own_s3, bucket, "exp/runs/") == []


def _run_until(args: list[str], condition: Callable[[], bool], timeout: float = 300) -> int:
    """Start `python -m sd1job ARGS -q`, SIGKILL it while ``condition()`` holds; return its status.

    The process is stopped (SIGSTOP) as soon as the condition is seen and killed only if the
    condition still holds while it is frozen, so the kill cannot land after the state it aims at
    has passed (a temp file renamed between the check and the signal); otherwise it resumes.
    """
    process = start_job([*args, "-q"], job_env({}), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if condition():
            process.send_signal(signal.SIGSTOP)
            _, status = os.waitpid(process.pid, os.WUNTRACED)  # returns once it is frozen (or has exited)
            if not os.WIFSTOPPED(status):
                process.returncode = os.waitstatus_to_exitcode(status)
                return process.returncode
            if condition():
                process.send_signal(signal.SIGKILL)
                break
            process.send_signal(signal.SIGCONT)
        time.sleep(0.001)
    return process.wait()


def _temp_files(folder: Path) -> list[Path]:
    """Temp files a LocalStore writer leaves while (or if killed while) writing under ``folder``."""
    return list(folder.rglob(".*.tmp"))


@pytest.mark.slow
def test_killed_data_stage_rerun_gives_the_same_outputs(tmp_path: Path) -> None:
    outputs = {}
    for name, kill in (("killed", True), ("clean", False)):
        root = tmp_path / name
        config = small_config(str(root), dataset__contexts=[8 * k for k in range(1, 9)], dataset__pairs=20_000)
        write_toy_recordings(LocalStore(root), config, seconds=6.0)
        config_file = tmp_path / f"{name}.yaml"
        config_file.write_text(config.to_yaml())
        data = ["data", "--config", str(config_file), "--export"]
        data_dir = root / LAYOUT.data_dir
        if kill:
            # Killed while it writes an exported array (a temp file open), before the manifest.
            status = _run_until(data, lambda d=data_dir: any(d.glob("c*/.arrays.npz.*.tmp")))
            assert status == -signal.SIGKILL, "the data stage finished before it could be killed"
            assert not (root / LAYOUT.manifest).exists(), "the kill landed after the stage finished"
            assert _temp_files(data_dir), "the kill did not land during a write"
        assert run_job(data, job_env({})).returncode == 0
        store = LocalStore(root)
        outputs[name] = {k: store.read_bytes(k) for k in store.list("runs") if not k.endswith("manifest.json")}
        assert not _temp_files(root), "a killed writer's temp file was left behind"
    assert outputs["killed"].keys() == outputs["clean"].keys()
    for key, data in outputs["clean"].items():
        assert outputs["killed"][key] == data, key


def _train_config(root: Path, contexts: list[int], epochs: int = 4, jit_compile: bool = True) -> Config:
    train = {"epochs": epochs, "patience": epochs, "batch_size": 64, "lstm_units": 8, "jit_compile": jit_compile}
    return small_config(str(root), dataset__contexts=contexts, dataset__pairs=800, train=train)


@pytest.mark.slow
def test_ten_trainers_at_once_against_one_s3_store(s3_server: services.S3Server, tmp_path: Path) -> None:
    bucket = f"c-{uuid.uuid4().hex[:10]}"
    s3_server.client().create_bucket(Bucket=bucket)
    contexts = [4 * k for k in range(1, 11)]
    # Without XLA: ten compilations at once would cost most of the test's time and test nothing here.
    config = _train_config(tmp_path, contexts, epochs=2, jit_compile=False)
    config.store = f"s3://{bucket}/shared"
    config_file = prepare_run(config, tmp_path / "config.yaml", s3_server.client_env)
    env = job_env(s3_server.client_env)
    units = config.units()
    assert len(units) == 10
    processes = [
        start_job(
            ["train", "--config", str(config_file), "--unit", unit.name, "-q"],
            env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for unit in units
    ]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    assert [p.returncode for p in processes] == [0] * 10, outputs
    keys = _objects(s3_server, bucket, "shared/runs/test-run/models/")
    client = s3_server.client()
    for unit in units:
        assert f"shared/{LAYOUT.model(unit)}" in keys
        body = client.get_object(Bucket=bucket, Key=f"shared/{LAYOUT.history(unit)}")["Body"].read()
        history = json.loads(body)
        assert history["unit"] == unit.name and history["context"] == unit.context, "another unit's history landed"
        assert history["epochs_run"] == 2


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def _mid_epoch(checkpoint: Path, fraction: float) -> Callable[[], bool]:
    """A condition that turns true ``fraction`` of an epoch into the epoch after the checkpoint's second next
    replacement, an epoch lasting as long as between those two replacements (so a kill lands mid-training
    however fast the machine)."""
    seen = [_mtime(checkpoint)]
    writes: list[float] = []

    def condition() -> bool:
        stamp = _mtime(checkpoint)
        if stamp is not None and stamp != seen[-1]:
            seen.append(stamp)
            writes.append(time.monotonic())
        return len(writes) >= 2 and time.monotonic() >= writes[1] + fraction * (writes[1] - writes[0])

    return condition


def _checkpoint_epoch(path: Path) -> int | None:
    """The last finished epoch a checkpoint holds (None if there is none); it must decode whole."""
    if not path.exists():
        return None
    return int(decode_checkpoint(path.read_bytes(), str(path)).state["epoch"])


def _finish(root: Path, config_file: Path, unit: Unit) -> dict[str, Any]:
    """Train ``unit`` to the end in a real process (as a user would, not quiet); return its history.json."""
    result = run_job(["train", "--config", str(config_file), "--unit", unit.name], user_env({}))
    assert result.returncode == 0, result.stderr
    assert foreign_stderr_lines(result.stderr) == [], "TensorFlow's start-up lines (or others) reached stderr"
    history = json.loads((root / LAYOUT.history(unit)).read_text())
    assert history["resumed_at_epochs"] == [] or f"train {unit.name}: resuming after epoch" in result.stderr
    return history


def _prepare_local(root: Path, config: Config, tmp_path: Path, name: str) -> Path:
    write_toy_recordings(LocalStore(root), config, seconds=2.0)
    build_datasets(config, LocalStore(root))
    config_file = tmp_path / f"{name}.yaml"
    config_file.write_text(config.to_yaml())
    return config_file


def _assert_same_epochs(killed: dict[str, Any], clean: dict[str, Any], epochs: int) -> None:
    assert killed["epochs_run"] == clean["epochs_run"] == epochs
    assert [e["epoch"] for e in killed["epochs"]] == list(range(1, epochs + 1))
    for before, after in zip(clean["epochs"], killed["epochs"], strict=True):
        assert after["loss"] == pytest.approx(before["loss"], rel=1e-5)
        assert after["val_loss"] == pytest.approx(before["val_loss"], rel=1e-5)


@pytest.mark.slow
def test_kills_at_random_points_and_during_checkpoint_writes_lose_nothing(tmp_path: Path) -> None:
    # The three kills land by epoch 6 or so; the rest is slack for a loaded machine, where an epoch
    # shorter than the one before it can finish before its seeded moment comes.
    epochs = 10
    unit = Unit("windowed", 8, 25)
    histories = {}
    for name in ("clean", "killed"):
        root = tmp_path / name
        config_file = _prepare_local(root, _train_config(root, [8], epochs=epochs), tmp_path, name)
        checkpoint = root / LAYOUT.checkpoint(unit)
        train = ["train", "--config", str(config_file), "--unit", unit.name]
        resumed_at: list[int] = []  # the checkpoint epoch each restart found
        if name == "killed":
            rng = random.Random(25)
            # 1: during a checkpoint write (its temp file exists); 2-3: at a seeded moment of an epoch,
            # two checkpoints after the (re)start.
            status = _run_until(train, lambda folder=checkpoint.parent: bool(_temp_files(folder)))
            kills = [status]
            for _ in range(2):
                if (epoch := _checkpoint_epoch(checkpoint)) is not None:
                    resumed_at.append(epoch)
                kills.append(_run_until(train, _mid_epoch(checkpoint, rng.uniform(0.1, 0.9))))
            assert kills == [-signal.SIGKILL] * 3, "the trainer finished before it could be killed"
            epoch = _checkpoint_epoch(checkpoint)
            assert epoch is not None and epoch < epochs, "no checkpoint to resume from"
            resumed_at.append(epoch)
        histories[name] = _finish(root, config_file, unit)
        # The reruns really resumed, each from the checkpoint it found (a silent restart gives []).
        assert histories[name]["resumed_at_epochs"] == resumed_at
    assert histories["killed"]["resumed_at_epochs"], "the killed run never resumed"
    _assert_same_epochs(histories["killed"], histories["clean"], epochs)


@pytest.mark.slow
def test_a_killed_stateful_unit_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    epochs = 5
    unit = Unit("stateful", None, 25)
    stateful = {"segment_seconds": 0.25, "warmup_samples": 200, "tbptt_samples": 500, "batch_size": 8, **PLAIN_LOSS}
    histories = {}
    for name in ("clean", "killed"):
        root = tmp_path / name
        config = small_config(
            str(root),
            model={"kind": "stateful", "stateful": stateful},
            train={"epochs": epochs, "patience": epochs, "lstm_units": 8, "learning_rate": 0.01},
        )
        config_file = _prepare_local(root, config, tmp_path, name)
        checkpoint = root / LAYOUT.checkpoint(unit)
        resumed_at = []
        if name == "killed":
            train = ["train", "--config", str(config_file), "--unit", unit.name]
            status = _run_until(train, _mid_epoch(checkpoint, random.Random(26).uniform(0.1, 0.9)))
            assert status == -signal.SIGKILL, "the trainer finished before it could be killed"
            epoch = _checkpoint_epoch(checkpoint)
            assert epoch is not None and epoch < epochs
            resumed_at.append(epoch)
        histories[name] = _finish(root, config_file, unit)
        assert histories[name]["resumed_at_epochs"] == resumed_at
        assert histories[name]["kind"] == "stateful" and histories[name]["unit"] == "stateful-s25"
    _assert_same_epochs(histories["killed"], histories["clean"], epochs)


SCORES = ("riff", "esr", "esr_pre", "mse", "mae", "stft")


@pytest.mark.slow
def test_killed_eval_rerun_gives_the_same_outputs(tmp_path: Path) -> None:
    from sd1job.stages.train import train_unit

    root = tmp_path / "store"
    config = _train_config(root, [8, 16], epochs=2)
    store = LocalStore(root)
    # Riffs of 3 s: scoring the first unit takes long enough after its first output to be killed in between.
    write_toy_recordings(store, config, seconds=2.0, riff_seconds=3.0)
    build_datasets(config, store)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(config.to_yaml())
    units = config.units()
    for unit in units:
        train_unit(config, store, unit)
    evaluate = ["eval", "--config", str(config_file)]

    def outputs() -> dict[str, bytes]:
        return {key: store.read_bytes(key) for u in units for key in store.list(f"{LAYOUT.unit_dir(u)}/eval")}

    def scores() -> dict[str, list[tuple]]:
        return {u.name: [tuple(r[c] for c in SCORES) for r in store.read_json(LAYOUT.scores(u))["rows"]] for u in units}

    assert run_job(evaluate, job_env({})).returncode == 0
    clean_outputs, clean_scores = outputs(), scores()
    assert len(clean_outputs) == len(units) * (len(config.recordings.riffs) + 1)
    for unit in units:
        store.delete_prefix(f"{LAYOUT.unit_dir(unit)}/eval")

    first = root / LAYOUT.unit_output(units[0], config.recordings.riffs[0])
    status = _run_until(evaluate, first.exists)
    assert status == -signal.SIGKILL, "eval finished before it could be killed"
    assert not (root / LAYOUT.scores(units[0])).exists(), "the kill landed after the unit was scored"
    assert run_job(evaluate, job_env({})).returncode == 0
    again = outputs()
    assert again.keys() == clean_outputs.keys()
    for key, data in clean_outputs.items():
        if key.endswith(".wav"):
            assert again[key] == data, key
    assert scores() == clean_scores
