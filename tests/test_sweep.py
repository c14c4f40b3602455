"""The local sweep end to end with the shipped local profile (shrunk), and its crash recovery."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sd1job.config import load_config
from sd1job.store import LocalStore
from sd1job.synth.capture import write_demo_recordings
from tests.helpers import job_env

REPO = Path(__file__).resolve().parents[1]
# The local profile, shrunk so the suite stays quick: three contexts spanning the range, two riffs
# (a windowed model's eval costs n LSTM steps per sample: the riffs are most of a tiny sweep's time).
RIFFS = ["ohwell", "shadowlove"]
TINY = {
    "recordings": {"riffs": RIFFS},
    "dataset": {"contexts": [44, 220, 440], "pairs": 600},
    "train": {"epochs": 3, "patience": 2, "repeats": 1},
}
# Columns that must be identical between runs; the timing columns measure this machine, not the model.
DETERMINISTIC = ("unit", "seed", "riff", "esr", "esr_pre", "mse", "mae", "stft", "epochs_run", "best_epoch")


def tiny_profile(tmp_path: Path, name: str, **sections: dict) -> Path:
    profile = yaml.safe_load((REPO / "configs" / "local.yaml").read_text())
    for section, values in {**TINY, **sections}.items():
        profile.setdefault(section, {}).update(values)
    profile["store"] = str(tmp_path / name)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(profile))
    write_demo_recordings(LocalStore(tmp_path / name), load_config(path), seconds=6, riff_seconds=0.5)
    return path


def sweep(config: Path, *options: str, **popen: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sd1job", "sweep", "--config", str(config), *options],
        cwd=REPO,
        env=job_env({}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


def deterministic_rows(store: Path) -> list[tuple[str, ...]]:
    text = (store / "runs" / "local-demo" / "eval" / "results.csv").read_text()
    return [tuple(row[c] for c in DETERMINISTIC) for row in csv.DictReader(io.StringIO(text))]


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp_path = tmp_path_factory.mktemp("sweep")
    config = tiny_profile(tmp_path, "clean")
    process = sweep(config)
    output, _ = process.communicate(timeout=900)
    assert process.returncode == 0, output
    return tmp_path / "clean", output


@pytest.mark.slow
def test_local_profile_sweep_completes(finished_sweep: tuple[Path, str]) -> None:
    store, output = finished_sweep
    run = store / "runs" / "local-demo"
    for context in TINY["dataset"]["contexts"]:
        assert (run / "models" / f"c{context}" / "s25" / "model.keras").stat().st_size > 0
        assert (run / "models" / f"c{context}" / "s25" / "eval" / "scores.json").exists()
        assert (run / "eval" / "audio" / f"c{context}-s25" / "o_shadowlove.wav").exists()
    rows = deterministic_rows(store)
    assert len(rows) == 3 * len(RIFFS)
    assert (run / "eval" / "report.html").exists()
    assert "[sweep 3/3 units" in output and "report: " in output


@pytest.mark.slow
def test_rerun_of_a_finished_sweep_skips_everything(finished_sweep: tuple[Path, str], tmp_path: Path) -> None:
    store, _ = finished_sweep
    config = tmp_path / "again.yaml"
    profile = yaml.safe_load((REPO / "configs" / "local.yaml").read_text())
    for section, values in TINY.items():
        profile.setdefault(section, {}).update(values)
    profile["store"] = str(store)
    config.write_text(yaml.safe_dump(profile))
    results = store / "runs" / "local-demo" / "eval" / "results.json"
    before = results.stat().st_mtime_ns
    process = sweep(config)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    assert "train: 3 unit(s) already trained, skipped" in output
    assert "eval: scoring" not in output and "report: up to date" in output
    assert results.stat().st_mtime_ns == before


@pytest.mark.slow
def test_interrupted_sweep_rerun_gives_the_same_results(finished_sweep: tuple[Path, str], tmp_path: Path) -> None:
    clean_store, _ = finished_sweep
    config = tiny_profile(tmp_path, "crashed")
    crashed = tmp_path / "crashed" / "runs" / "local-demo" / "models"
    process = sweep(config, start_new_session=True)
    # Units train largest first: kill the whole sweep once the second one (c220) has checkpointed an epoch.
    checkpoint = crashed / "c220" / "s25" / "checkpoint.npz"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not checkpoint.exists():
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate()
    assert (crashed / "c440" / "s25" / "history.json").exists()
    assert not (crashed / "c220" / "s25" / "history.json").exists()
    assert not (crashed / "c44").exists()
    rerun = sweep(config)
    output, _ = rerun.communicate(timeout=900)
    assert rerun.returncode == 0, output
    assert "train: 1 unit(s) already trained, skipped" in output
    assert "train c220-s25: resuming after epoch" in output
    history = yaml.safe_load((crashed / "c220" / "s25" / "history.json").read_text())
    assert history["resumed_at_epochs"] and history["resumed_at_epochs"][0] >= 1
    assert deterministic_rows(tmp_path / "crashed") == deterministic_rows(clean_store)


@pytest.mark.slow
def test_sweep_with_two_jobs_trains_and_scores_units_in_their_own_processes(
    finished_sweep: tuple[Path, str], tmp_path: Path
) -> None:
    clean_store, _ = finished_sweep
    config = tiny_profile(tmp_path, "parallel")
    process = sweep(config, "--jobs", "2")
    output, _ = process.communicate(timeout=900)
    assert process.returncode == 0, output
    for unit in ("c44-s25", "c220-s25", "c440-s25"):
        assert f"train {unit}: starting (own process)" in output and f"eval {unit}: starting (own process)" in output
    assert deterministic_rows(tmp_path / "parallel") == deterministic_rows(clean_store)
