"""The train stage per unit: learning, early stopping, checkpoints, resume after SIGKILL, idempotence, metrics,
determinism, repeated seeds, and the stateful model trained by truncated backpropagation through time."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from scripts import services
from sd1job import dataset
from sd1job.config import Config, config_from_mapping
from sd1job.layout import RunLayout
from sd1job.store import LocalStore
from sd1job.units import Unit
from tests.conftest import REPO_ROOT
from tests.helpers import PLAIN_LOSS

CONTEXT = 16
RUN_ID = "train-test"
UNIT = Unit("windowed", CONTEXT, 7)


def layout_for(config: Config) -> RunLayout:
    return RunLayout(config.run_id)


def synthetic_pair(samples: int = 16_000, drive: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """A mix of sines under a slow envelope (dry) through a soft clipper tanh(drive x) (wet)."""
    t = np.arange(samples) / 8000.0
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t)
    dry = envelope * (
        0.3 * np.sin(2 * np.pi * 110 * t) + 0.2 * np.sin(2 * np.pi * 233 * t + 1) + 0.1 * np.sin(2 * np.pi * 447 * t)
    )
    return dry.astype(np.float32), np.tanh(drive * dry).astype(np.float32)


def make_config(root: Path, **train: Any) -> dict[str, Any]:
    """A tiny config: batches of 50 divide both splits (one XLA compilation each)."""
    # lr 0.1 with patience 1: the loss overshoots within a dozen epochs, so early stopping fires.
    settings = {"learning_rate": 0.1, "batch_size": 50, "epochs": 12, "patience": 1, "seed": 7, **train}
    return {
        "store": str(root),
        "run_id": RUN_ID,
        "dataset": {"contexts": [CONTEXT], "pairs": 2000, "val_fraction": 0.25},
        "train": settings,
    }


def prepare(mapping: dict[str, Any], drive: float = 3.0) -> tuple[Config, LocalStore]:
    """Write the data stage's two objects (audio, positions) for the config's context; ``drive``: the clipper's."""
    config = config_from_mapping(mapping)
    store = LocalStore(config.store)
    layout = layout_for(config)
    dry, wet = synthetic_pair(drive=drive)
    store.write_bytes(layout.audio, dataset.encode_arrays(dry=dry, wet=wet))
    store.write_json(layout.manifest, {"val_fraction": config.dataset.val_fraction})
    for context in config.dataset.contexts:
        split = dataset.random_split(len(dry), context, config.dataset.pairs, config.dataset.val_fraction, 25)
        store.write_bytes(layout.positions(context), dataset.encode_arrays(train=split.train, val=split.val))
    return config, store


def load_weights(store: LocalStore, config: Config, unit: Unit = UNIT) -> list[np.ndarray]:
    import keras

    import sd1job.model  # noqa: F401  (registers the ESR loss for loading)

    path = Path(store.url(layout_for(config).model(unit)))
    return keras.saving.load_model(path).get_weights()


def pushgateway_value(url: str, name: str, **labels: str) -> float:
    """The pushed value of one metric on a Pushgateway whose labels include ``labels``."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    pattern = re.compile(rf"^{re.escape(name)}\{{([^}}]*)\}} (\S+)$", re.MULTILINE)
    found = []
    for label_text, value in pattern.findall(text):
        pairs = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
        if all(pairs.get(k) == v for k, v in labels.items()):
            found.append(float(value))
    assert len(found) == 1, f"{name}{labels}: {len(found)} series"
    return found[0]


# --------------------------------------------------------------------------------------------- pure pieces


def test_early_stopping_matches_keras_semantics() -> None:
    from sd1job.checkpoint import EarlyStopping

    early = EarlyStopping(patience=2)
    verdicts = []
    for epoch, loss in enumerate([0.5, 0.4, 0.45, 0.41, 0.3], start=1):
        early.update(epoch, loss)
        verdicts.append(early.should_stop)
    assert verdicts == [False, False, False, True, False]
    assert (early.best_epoch, early.best_val_loss) == (5, 0.3)
    assert not early.update(6, math.nan) and early.best_epoch == 5
    restored = EarlyStopping.from_json(2, early.to_json())
    assert restored == early
    assert EarlyStopping.from_json(3, EarlyStopping(3).to_json()).best_val_loss == math.inf


def test_checkpoint_round_trip_is_one_object() -> None:
    from sd1job.checkpoint import Checkpoint, decode_checkpoint, encode_checkpoint

    rng = np.random.default_rng(0)
    original = Checkpoint(
        state={"epoch": 3, "history": [{"epoch": 1, "loss": 0.5}]},
        weights=[rng.standard_normal((3, 4)).astype(np.float32) for _ in range(12)],
        optimizer=[np.array(7, dtype=np.int64), rng.standard_normal(5).astype(np.float32)],
        best_weights=[rng.standard_normal(2).astype(np.float32)],
    )
    decoded = decode_checkpoint(encode_checkpoint(original), "mem")
    assert decoded.state == original.state
    for got, want in zip(
        decoded.weights + decoded.optimizer + decoded.best_weights,
        original.weights + original.optimizer + original.best_weights,
        strict=True,
    ):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    with pytest.raises(dataset.DatasetError):
        decode_checkpoint(dataset.encode_arrays(x=np.zeros(2)), "mem")


def test_all_zero_batch_trains_without_inf_or_nan() -> None:
    from sd1job.model import build_model
    from sd1job.training import configure_runtime

    configure_runtime(0, True)
    model = build_model(8, 4, 0.001)
    model.jit_compile = True
    silent = np.zeros((16, 8, 1), dtype=np.float32)
    result = model.train_on_batch(silent, np.zeros((16, 1), dtype=np.float32), return_dict=True)
    assert all(math.isfinite(value) for value in result.values())
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_missing_positions_is_a_one_line_error_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from sd1job.cli import main

    config, store = prepare(make_config(tmp_path / "store"))
    store.delete(layout_for(config).positions(CONTEXT))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    assert main(["train", "--config", str(path), "--unit", UNIT.name, "-q"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error
    assert "runs/train-test/data/c16/positions.npz" in error and "sd1job data" in error
    assert main(["train", "--config", str(path), "--context", "99", "-q"]) == 2
    assert "no unit of this config has context 99" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- a real short run


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, pushgateway: services.Service) -> dict[str, Any]:
    """One in-process training with the default speed settings, pushing to a real Pushgateway."""
    from sd1job.stages.train import train_unit

    root = tmp_path_factory.mktemp("train") / "store"
    mapping = make_config(root)
    mapping["metrics"] = {"pushgateway": pushgateway.url}
    config, store = prepare(mapping)
    started = time.monotonic()
    history = train_unit(config, store, UNIT)
    return {"config": config, "store": store, "history": history, "seconds": time.monotonic() - started}


@pytest.mark.slow
def test_short_run_learns_and_writes_every_output(trained: dict[str, Any]) -> None:
    config, store, history = trained["config"], trained["store"], trained["history"]
    layout = layout_for(config)
    for key in (layout.model(UNIT), layout.history(UNIT), layout.summary(UNIT), layout.loss_plot(UNIT)):
        assert store.exists(key), key
    assert not store.exists(layout.checkpoint(UNIT))  # the resume point is dropped once finished
    assert store.read_json(layout.history(UNIT)) == history
    assert (history["unit"], history["kind"], history["context"], history["seed"]) == ("c16-s7", "windowed", 16, 7)
    # Predicting zero has ESR 1; the soft clipper is learned far better within a few epochs.
    assert history["best_val_loss"] < 0.05
    epochs = history["epochs"]
    assert [e["epoch"] for e in epochs] == list(range(1, history["epochs_run"] + 1))
    fields = {"epoch", "loss", "val_loss", "mse", "mae", "val_mse", "val_mae", "seconds", "windows_per_second"}
    assert all(fields <= set(e) for e in epochs)
    assert history["parameter_count"] == 16_961
    assert history["total_seconds"] == pytest.approx(sum(e["seconds"] for e in epochs), abs=1e-3)
    summary = store.read_json(layout.summary(UNIT))
    assert summary["config"]["train"]["learning_rate"] == 0.1 and summary["unit"] == UNIT.name
    assert summary["runtime"]["jit_compile"] is True and summary["versions"]["tensorflow"]
    assert summary["flops_per_sample_inference"] == CONTEXT * 2 * 65 * 256
    assert store.read_bytes(layout.loss_plot(UNIT)).startswith(b"\x89PNG")


@pytest.mark.slow
def test_early_stopping_keeps_the_best_epochs_weights(trained: dict[str, Any]) -> None:
    import keras

    from sd1job.training import window_dataset

    config, store, history = trained["config"], trained["store"], trained["history"]
    val_losses = [e["val_loss"] for e in history["epochs"]]
    assert history["stop_reason"] == "early_stopping" and history["still_improving"] is False
    assert history["epochs_run"] < config.train.epochs
    assert history["best_epoch"] == 1 + int(np.argmin(val_losses)) < history["epochs_run"]
    assert history["best_val_loss"] == min(val_losses)
    # The saved model is the best epoch's, not the last one's: its validation loss says so.
    model = keras.saving.load_model(Path(store.url(layout_for(config).model(UNIT))))
    layout = layout_for(config)
    audio = dataset.decode_arrays(store.read_bytes(layout.audio), "audio")
    positions = dataset.decode_arrays(store.read_bytes(layout.positions(CONTEXT)), "positions")
    data = window_dataset(audio["dry"], audio["wet"], positions["val"], CONTEXT, config.train.batch_size)
    val_loss = model.evaluate(data, verbose=0, return_dict=True)["loss"]
    assert val_loss == pytest.approx(history["best_val_loss"], rel=1e-4)
    assert val_loss != pytest.approx(val_losses[-1], rel=1e-3)


@pytest.mark.slow
def test_metrics_reach_a_real_pushgateway_and_prometheus(
    trained: dict[str, Any], pushgateway: services.Service, prometheus: services.Service
) -> None:
    history = trained["history"]
    labels = {
        "job": "sd1job",
        "run": RUN_ID,
        "unit": UNIT.name,
        "arm": UNIT.arm,
        "kind": "windowed",
        "context": "16",
        "seed": "7",
    }
    url = pushgateway.url
    assert pushgateway_value(url, "sd1job_epochs_completed", **labels) == history["epochs_run"]
    windows = pushgateway_value(url, "sd1job_windows_processed_total", **labels)
    assert windows == history["epochs_run"] * history["train_windows"]
    assert pushgateway_value(url, "sd1job_best_val_esr", **labels) == pytest.approx(history["best_val_loss"])
    assert pushgateway_value(url, "sd1job_train_completed_timestamp_seconds", **labels) > 0
    assert pushgateway_value(url, "sd1job_epoch_duration_seconds_count", **labels) == history["epochs_run"]
    # Prometheus may still hold an earlier epoch's scrape: wait for the scrape of the final push.
    last_val = history["epochs"][-1]["val_loss"]
    result = services.wait_for_query(
        prometheus.url,
        f'sd1job_val_esr{{run="{RUN_ID}",unit="{UNIT.name}"}}',
        until=lambda r: bool(r) and float(r[0]["value"][1]) == pytest.approx(last_val),
    )
    assert result and float(result[0]["value"][1]) == pytest.approx(last_val)


@pytest.mark.slow
def test_rerun_of_a_trained_unit_does_not_retrain(trained: dict[str, Any]) -> None:
    from sd1job.stages.train import train_unit

    config, store = trained["config"], trained["store"]
    layout = layout_for(config)
    before = {key: store.read_bytes(key) for key in store.list(layout.unit_dir(UNIT))}
    mtime = Path(store.url(layout.model(UNIT))).stat().st_mtime_ns
    started = time.monotonic()
    history = train_unit(config, store, UNIT)
    assert time.monotonic() - started < min(5.0, trained["seconds"] / 2)
    assert history == trained["history"]
    assert {key: store.read_bytes(key) for key in store.list(layout.unit_dir(UNIT))} == before
    assert Path(store.url(layout.model(UNIT))).stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_same_config_gives_the_same_weights_on_cpu(trained: dict[str, Any], tmp_path: Path) -> None:
    from sd1job.stages.train import train_unit

    mapping = make_config(tmp_path / "store")
    config, store = prepare(mapping)
    history = train_unit(config, store, UNIT)
    assert [e["val_loss"] for e in history["epochs"]] == [e["val_loss"] for e in trained["history"]["epochs"]]
    for got, want in zip(load_weights(store, config), load_weights(trained["store"], trained["config"]), strict=True):
        assert np.array_equal(got, want)


# --------------------------------------------------------------------------------------------- kill and resume


def _train_command(config_path: Path) -> list[str]:
    return [sys.executable, "-m", "sd1job", "train", "--config", str(config_path), "--unit", UNIT.name]


def _start(config_path: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with log.open("wb") as out:
        return subprocess.Popen(
            _train_command(config_path), cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, env=env
        )


def _write_config(tmp_path: Path, name: str, port: int = 0) -> tuple[Path, Config, LocalStore]:
    # patience above epochs: the run goes to max_epochs, so the kill lands mid-training.
    mapping = make_config(tmp_path / name, learning_rate=0.01, epochs=7, patience=10)
    mapping["metrics"] = {"port": port}
    config, store = prepare(mapping)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(mapping))
    return path, config, store


def _checkpoint_epoch(store: LocalStore, config: Config) -> tuple[int, list[dict[str, Any]]]:
    from sd1job.checkpoint import decode_checkpoint

    key = layout_for(config).checkpoint(UNIT)
    if not store.exists(key):
        return 0, []
    state = decode_checkpoint(store.read_bytes(key), key).state
    return state["epoch"], state["history"]


@pytest.mark.slow
def test_sigkill_mid_training_then_rerun_resumes_and_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    port = services.free_port()
    killed_path, killed_config, killed_store = _write_config(tmp_path, "killed", port=port)
    reference_path, reference_config, reference_store = _write_config(tmp_path, "reference")
    reference = _start(reference_path, tmp_path / "reference.log")  # runs alongside, uninterrupted
    victim = _start(killed_path, tmp_path / "killed-1.log")
    scraped = ""
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and victim.poll() is None:
            epoch, _ = _checkpoint_epoch(killed_store, killed_config)
            if epoch >= 1 and not scraped:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                    scraped = response.read().decode()
            if epoch >= 2:
                break
            time.sleep(0.05)
        assert victim.poll() is None, (
            "training ended before it could be killed: " + (tmp_path / "killed-1.log").read_text()
        )
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
    finally:
        if victim.poll() is None:
            victim.kill()
    killed_at, history_at_kill = _checkpoint_epoch(killed_store, killed_config)
    assert 2 <= killed_at < 7
    assert not killed_store.exists(layout_for(killed_config).history(UNIT))

    # The live /metrics endpoint showed the training while it ran.
    labels = f'arm="{UNIT.arm}",context="{CONTEXT}",kind="windowed",run="{RUN_ID}",seed="7",unit="{UNIT.name}"'
    assert re.search(rf"^sd1job_epochs_completed\{{{labels}\}} [1-9]", scraped, re.MULTILINE)
    assert f"sd1job_windows_processed_total{{{labels}}}" in scraped
    assert re.search(rf"^sd1job_epoch_duration_seconds_count\{{{labels}\}} [1-9]", scraped, re.MULTILINE)
    assert f"sd1job_epochs_planned{{{labels}}} 7.0" in scraped

    resumed = subprocess.run(_train_command(killed_path), cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming after epoch {killed_at}" in resumed.stderr
    assert reference.wait(timeout=300) == 0, (tmp_path / "reference.log").read_text()

    final = killed_store.read_json(layout_for(killed_config).history(UNIT))
    expected = reference_store.read_json(layout_for(reference_config).history(UNIT))
    # No finished epoch was lost or redone: the first epochs are the checkpoint's, timings included.
    assert final["epochs"][:killed_at] == history_at_kill
    assert final["resumed_at_epochs"] == [killed_at]
    assert final["epochs_run"] == expected["epochs_run"] == 7
    assert [e["val_loss"] for e in final["epochs"]] == [e["val_loss"] for e in expected["epochs"]]
    for got, want in zip(
        load_weights(killed_store, killed_config), load_weights(reference_store, reference_config), strict=True
    ):
        assert np.array_equal(got, want)


@pytest.mark.slow
def test_kill_after_the_last_epoch_finishes_without_training_and_force_retrains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keras

    from sd1job.stages import train

    config, store = prepare(make_config(tmp_path / "store", epochs=2, patience=5))
    layout = layout_for(config)

    def killed(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt  # dies after the last checkpoint, before any final object

    with monkeypatch.context() as patch:
        patch.setattr(train, "write_outputs", killed)
        with pytest.raises(KeyboardInterrupt):
            train.train_unit(config, store, UNIT)
    assert store.list(layout.unit_dir(UNIT)) == [layout.checkpoint(UNIT)]

    def no_fit(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a checkpoint of the last epoch needs no more training")

    with monkeypatch.context() as patch:
        patch.setattr(keras.Model, "fit", no_fit)
        history = train.train_unit(config, store, UNIT)
    assert history["epochs_run"] == 2 and history["resumed_at_epochs"] == [2]
    assert train.is_finished(store, layout, UNIT)

    forced = train.train_unit(config, store, UNIT, force=True)
    assert forced["resumed_at_epochs"] == [] and forced["finished_at"] > history["finished_at"]
    assert [e["val_loss"] for e in forced["epochs"]] == [e["val_loss"] for e in history["epochs"]]


# ----------------------------------------------------------------------------- seeds and the stateful model


@pytest.mark.slow
def test_train_by_context_trains_each_seed_in_turn_with_its_own_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from sd1job.cli import main

    mapping = make_config(tmp_path / "store", epochs=2, patience=5, repeats=2)
    config, store = prepare(mapping)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(mapping))
    assert main(["train", "--config", str(path), "--context", str(CONTEXT), "-q"]) == 0
    units = [Unit("windowed", CONTEXT, 7), Unit("windowed", CONTEXT, 8)]
    histories = [store.read_json(layout_for(config).history(u)) for u in units]
    assert [h["seed"] for h in histories] == [7, 8] and [h["unit"] for h in histories] == ["c16-s7", "c16-s8"]
    first, second = (load_weights(store, config, u) for u in units)
    assert not all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    # The windows are the same for both seeds: they differ in initial weights and batch order only.
    assert histories[0]["train_windows"] == histories[1]["train_windows"]
    assert main(["train", "--config", str(path), "--unit", "c16-s9", "-q"]) == 2
    assert "not a unit of this config" in capsys.readouterr().err


STATEFUL = Unit("stateful", None, 7)


def stateful_mapping(root: Path, **train: Any) -> dict[str, Any]:
    mapping = make_config(root, learning_rate=0.01, lr_decay=0.9, epochs=6, patience=3, **train)
    mapping["recordings"] = {"sample_rate": 8000}
    mapping["model"] = {
        "kind": "stateful",
        "stateful": {
            "segment_seconds": 0.25,
            "warmup_samples": 200,
            "tbptt_samples": 500,
            "batch_size": 8,
            **PLAIN_LOSS,
        },
    }
    return mapping


def test_the_stateful_models_own_lr_decay_replaces_the_windowed_models_and_is_recorded_as_lr_decay(
    tmp_path: Path,
) -> None:
    from sd1job.stages.train import build_fitter, trained_settings

    mapping = stateful_mapping(tmp_path / "store")
    mapping["model"]["kind"] = ["windowed", "stateful"]
    mapping["model"]["stateful"]["lr_decay"] = 0.995
    config, store = prepare(mapping)
    fitter, _ = build_fitter(store, layout_for(config), STATEFUL, config.train, config.model, 8000)
    assert fitter.schedule.decay == 0.995 and config.train.lr_decay == 0.9
    windowed = Unit("windowed", CONTEXT, 7)
    assert trained_settings(windowed, config.train, config.model)["lr_decay"] == 0.9
    settings = trained_settings(STATEFUL, config.train, config.model)
    assert settings["lr_decay"] == 0.995 and "lr_decay" not in settings["stateful"]
    mapping["model"]["stateful"]["lr_decay"] = None
    mapping["train"]["lr_decay"] = 0.995  # the same decay set for both kinds: the same unit, the same fingerprint
    same = config_from_mapping(mapping)
    assert trained_settings(STATEFUL, same.train, same.model) == settings


@pytest.fixture(scope="module")
def stateful_trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from sd1job.stages.train import train_unit

    config, store = prepare(stateful_mapping(tmp_path_factory.mktemp("stateful") / "store"))
    return {"config": config, "store": store, "history": train_unit(config, store, STATEFUL)}


@pytest.mark.slow
def test_stateful_unit_learns_by_truncated_bptt_and_writes_its_outputs(stateful_trained: dict[str, Any]) -> None:
    from sd1job.infer.stateful import StreamingPredictor
    from sd1job.infer.weights import load_weights as read_weights

    config, store, history = stateful_trained["config"], stateful_trained["store"], stateful_trained["history"]
    layout = layout_for(config)
    assert history["kind"] == "stateful" and history["context"] is None and history["unit"] == "stateful-s7"
    # 16,000 samples, 25 % held out: 6 segments of 2,000 before the cut, one batch of 6, 1,800 scored samples each.
    assert history["train_windows"] == 6 * 1800
    assert history["best_val_loss"] < 0.2, history["epochs"]
    losses = [e["loss"] for e in history["epochs"]]
    assert losses[-1] < losses[0]
    summary = store.read_json(layout.summary(STATEFUL))
    assert summary["flops_per_sample_inference"] == 2 * 65 * 256 and summary["parameter_count"] == 16_961
    # The saved model streams: the numba predictor on the held-out stretch scores near the best val ESR.
    weights = read_weights(store.read_bytes(layout.model(STATEFUL)), "model", None)
    dry, wet = synthetic_pair()
    output = StreamingPredictor(weights).predict(dry[12_000:])
    error = np.sum((output[200:] - wet[12_200:]) ** 2) / np.sum(wet[12_200:] ** 2)
    assert error < 0.3


@pytest.mark.slow
def test_stateful_training_is_deterministic_and_resumes_from_its_checkpoint(
    stateful_trained: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sd1job.stages import train

    config, store = prepare(stateful_mapping(tmp_path / "store"))
    layout = layout_for(config)
    calls = {"epochs": 0}
    original = train.UnitRun.on_epoch

    def stop_after_two(self: Any, epoch: int, *args: Any) -> bool:
        result = original(self, epoch, *args)
        calls["epochs"] += 1
        if epoch == 2:
            raise KeyboardInterrupt  # killed right after the second checkpoint landed
        return result

    with monkeypatch.context() as patch:
        patch.setattr(train.UnitRun, "on_epoch", stop_after_two)
        with pytest.raises(KeyboardInterrupt):
            train.train_unit(config, store, STATEFUL)
    assert store.exists(layout.checkpoint(STATEFUL)) and not store.exists(layout.history(STATEFUL))
    history = train.train_unit(config, store, STATEFUL)
    assert history["resumed_at_epochs"] == [2]
    expected = stateful_trained["history"]
    assert [e["val_loss"] for e in history["epochs"]] == [e["val_loss"] for e in expected["epochs"]]
    for got, want in zip(
        load_weights(store, config, STATEFUL),
        load_weights(stateful_trained["store"], stateful_trained["config"], STATEFUL),
        strict=True,
    ):
        assert np.array_equal(got, want)


@pytest.mark.slow
def test_stateful_training_in_a_fresh_process_gives_the_same_model_without_xla(
    stateful_trained: dict[str, Any], tmp_path: Path
) -> None:
    """A pod trains one unit in a fresh process with XLA configured on (so no op-determinism switch);
    the stateful step never uses XLA and still gives, bit for bit, the model this process trained."""
    mapping = stateful_mapping(tmp_path / "store")
    assert mapping["train"].get("jit_compile", True) is True
    config, store = prepare(mapping)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(mapping))
    result = subprocess.run(
        [sys.executable, "-m", "sd1job", "train", "--config", str(path), "--unit", STATEFUL.name],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "XLA off" in result.stderr
    summary = store.read_json(layout_for(config).summary(STATEFUL))
    assert summary["runtime"]["jit_compile"] is False and summary["runtime"]["op_determinism"] is False
    for got, want in zip(
        load_weights(store, config, STATEFUL),
        load_weights(stateful_trained["store"], stateful_trained["config"], STATEFUL),
        strict=True,
    ):
        assert np.array_equal(got, want)


def test_fused_cpu_kernel_computes_the_keras_stateful_model_and_its_gradient() -> None:
    import keras
    import tensorflow as tf

    from sd1job.model import build_stateful_model, fused_stateful_call

    keras.utils.set_random_seed(3)
    model = build_stateful_model(16)
    # Gate columns told apart: a bias per gate, so a swapped gate order would show.
    lstm = model.get_layer("lstm").cell
    lstm.bias.assign(np.repeat([0.3, 1.0, -0.2, 0.5], 16).astype(np.float32))
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(0, 0.5, (3, 50, 1)), tf.float32)
    h = tf.constant(rng.normal(0, 0.3, (3, 16)), tf.float32)
    c = tf.constant(rng.normal(0, 0.3, (3, 16)), tf.float32)
    results = []
    for call in (lambda: model([x, h, c]), lambda: fused_stateful_call(model, x, h, c)):
        with tf.GradientTape() as tape:
            wet, last_h, last_c = call()
            loss = tf.reduce_sum(tf.square(wet)) + tf.reduce_sum(last_c)
        gradients = tape.gradient(loss, model.trainable_variables)
        results.append([wet, last_h, last_c, *gradients])
    for keras_value, fused_value in zip(*results, strict=True):
        np.testing.assert_allclose(fused_value.numpy(), keras_value.numpy(), rtol=1e-4, atol=1e-5)


def test_only_windowed_units_are_xla_compiled() -> None:
    from sd1job.training import uses_xla

    assert uses_xla("windowed", True) and not uses_xla("windowed", False)
    assert not uses_xla("stateful", True) and not uses_xla("stateful", False)


def test_still_improving_means_cut_while_falling_not_a_best_last_epoch_on_a_plateau() -> None:
    from sd1job.checkpoint import still_improving

    assert still_improving([0.5, 0.4, 0.3, 0.2, 0.1], stopped_early=False)
    assert not still_improving([0.5, 0.2, 0.2, 0.2, 0.195], stopped_early=False)  # 2.5 % in 3 epochs: a plateau
    assert not still_improving([0.5, 0.4, 0.3, 0.2, 0.1], stopped_early=True)
    assert still_improving([0.5, 0.4], stopped_early=False)  # too short to tell


def test_learning_rate_schedule_is_a_function_of_the_epoch() -> None:
    from sd1job.training import learning_rate_at

    assert [learning_rate_at(k, 0.01, 0.5) for k in range(3)] == [0.01, 0.005, 0.0025]
    assert learning_rate_at(7, 0.001, 1.0) == 0.001


def test_warm_up_ramps_the_rate_over_the_first_updates_then_follows_the_epoch_schedule() -> None:
    from sd1job.training import Schedule

    schedule = Schedule(0.02, 0.5, warmup_updates=4, updates_per_epoch=3)
    rates = [schedule.at_update(epoch, update) for epoch in range(2) for update in range(3)]
    # updates 0..3 at 1/4..4/4 of their epoch's rate (epoch 1's is halved), then the epoch's rate
    np.testing.assert_allclose(rates, [0.005, 0.01, 0.015, 0.01, 0.01, 0.01])
    assert Schedule(0.02, 0.5).at_update(0, 0) == 0.02  # no warm-up: the seed's


class _RecordingOptimizer:
    """What ``Schedule.set_for_update`` assigns (the optimizer's learning rate variable stands in)."""

    def __init__(self) -> None:
        self.assigned: list[float] = []
        self.learning_rate = self

    def assign(self, value: float) -> None:
        self.assigned.append(value)


def test_warm_up_touches_the_optimizer_only_while_it_lasts() -> None:
    from sd1job.training import Schedule

    schedule, optimizer = Schedule(0.01, 1.0, warmup_updates=2, updates_per_epoch=10), _RecordingOptimizer()
    for update in range(5):
        schedule.set_for_update(optimizer, 0, update)
    assert optimizer.assigned == [0.005, 0.01, 0.01]  # the ramp, then the epoch's rate restored once


@pytest.mark.parametrize("kind", ["windowed", "stateful"])
def test_fitters_train_each_update_at_the_warm_up_rate(kind: str, tmp_path: Path) -> None:
    from sd1job.stages.train import build_fitter

    mapping = stateful_mapping(tmp_path) if kind == "stateful" else make_config(tmp_path)
    mapping["train"].update(lr_decay=0.5, lr_warmup_updates=5, epochs=2)
    config, store = prepare(mapping)
    unit = STATEFUL if kind == "stateful" else UNIT
    fitter, _ = build_fitter(store, layout_for(config), unit, config.train, config.model, config.recordings.sample_rate)
    optimizer = fitter.model.optimizer if kind == "windowed" else fitter.optimizer
    seen: list[tuple[int, int, float]] = []

    def on_update(epoch: int, update: int, loss: float) -> bool:
        seen.append((epoch, update, float(optimizer.learning_rate.numpy())))
        return False

    fitter.fit(0, 2, lambda *_: False, on_update)
    per_epoch = fitter.schedule.updates_per_epoch
    assert len(seen) == 2 * per_epoch and per_epoch >= 3
    expected = [fitter.schedule.at_update(epoch - 1, update - 1) for epoch, update, _ in seen]
    np.testing.assert_allclose([rate for *_, rate in seen], expected, rtol=1e-6)
    assert seen[0][2] == pytest.approx(config.train.learning_rate / 5)  # the ramp was taken, not skipped


@pytest.mark.slow
def test_a_time_budget_stops_training_after_the_epoch_that_uses_it(tmp_path: Path) -> None:
    from sd1job.stages.train import train_unit

    config, store = prepare(make_config(tmp_path / "store", epochs=5, patience=5, max_train_seconds=0.001))
    history = train_unit(config, store, UNIT)
    assert history["epochs_run"] == 1 and history["stop_reason"] == "time_budget"
    assert history["still_improving"] is True  # cut by the budget after one epoch: nothing says it plateaued
