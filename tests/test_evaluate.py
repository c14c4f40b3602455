"""The eval stage per unit on a local store: tiny untrained models of both kinds, short synthetic riffs."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import soundfile as sf

from sd1job import cli, scores
from sd1job.audio import decode_wav
from sd1job.config import Config
from sd1job.infer import windowed
from sd1job.infer.stateful import keras_predict_stateful
from sd1job.infer.weights import load_model_bytes
from sd1job.layout import RunLayout, riff_dry_key, riff_wet_key
from sd1job.model import build_model, build_stateful_model
from sd1job.stages import evaluate
from sd1job.stages.data import build_datasets
from sd1job.store import LocalStore, Store, open_store
from sd1job.units import Unit
from tests.helpers import small_config, write_toy_recordings

RIFF_SECONDS = 0.3


def fake_history(unit: Unit, epochs: int = 6, seconds_per_epoch: float | None = None, units: int = 8) -> dict:
    """A history.json like the train stage's, with losses falling and time growing with the context."""
    per_epoch = seconds_per_epoch if seconds_per_epoch is not None else 0.5 + 0.01 * (unit.context or 10)
    entries = [
        {
            "epoch": e,
            "loss": 0.5 / e,
            "val_loss": 0.6 / e + 0.01 * (e > epochs - 2),
            "mse": 0.01 / e,
            "mae": 0.05 / e,
            "val_mse": 0.012 / e,
            "val_mae": 0.06 / e,
            "seconds": per_epoch,
            "windows_per_second": 1500 / per_epoch,
        }
        for e in range(1, epochs + 1)
    ]
    return {
        "unit": unit.name,
        "kind": unit.kind,
        "context": unit.context,
        "seed": unit.seed,
        "lstm_units": units,
        "parameter_count": 4 * units * (units + 2) + units + 1,
        "train_windows": 1500,
        "epochs_run": epochs,
        "best_epoch": epochs - 1,
        "best_val_loss": entries[-2]["val_loss"],
        "total_seconds": per_epoch * epochs,
        "seconds_per_epoch": per_epoch,
        "stop_reason": "early_stopping",
        "still_improving": False,
        "epochs": entries,
    }


def save_model(store: Store, config: Config, unit: Unit, tmp_dir: Path, model_context: int | None = None) -> None:
    """Save an untrained model for ``unit`` (or, to test mismatches, a windowed one built for ``model_context``)."""
    units = config.train.lstm_units
    if unit.kind == "stateful" and model_context is None:
        model = build_stateful_model(units)
    else:
        model = build_model(model_context or unit.context or 4, units)
    path = tmp_dir / f"model-{unit.name}.keras"
    model.save(path)
    store.write_bytes(RunLayout(config.run_id).model(unit), path.read_bytes())


def make_run(
    root: Path,
    contexts: tuple[int, ...] = (4, 12),
    trained: tuple[Unit, ...] | None = None,
    store_url: str = "",
    **overrides: Any,
) -> Config:
    """A store with recordings, the data stage's outputs, and trained models for ``trained`` (default: every unit)."""
    keras.utils.set_random_seed(11)
    config = small_config(
        store_url or str(root / "store"), dataset__contexts=list(contexts), eval__batch_size=512, **overrides
    )
    store = open_store(config.store)
    write_toy_recordings(store, config, seconds=3.0, riff_seconds=RIFF_SECONDS)
    build_datasets(config, store)
    layout = RunLayout(config.run_id)
    models = root / "models"
    models.mkdir(exist_ok=True)
    for unit in config.units() if trained is None else trained:
        save_model(store, config, unit, models)
        store.write_json(layout.history(unit), fake_history(unit))
    return config


def config_file(config: Config, directory: Path) -> str:
    path = directory / "config.yaml"
    path.write_text(config.to_yaml())
    return str(path)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, LocalStore]:
    """Every unit of a two-context, two-kind config scored through the CLI, shared by the checks below."""
    root = tmp_path_factory.mktemp("eval")
    config = make_run(root, model__kind=["windowed", "stateful"])
    assert cli.main(["eval", "-q", "--config", config_file(config, root)]) == 0
    return config, LocalStore(config.store)


def test_every_unit_gets_its_scores_and_outputs(evaluated: tuple[Config, LocalStore]) -> None:
    config, store = evaluated
    layout = RunLayout(config.run_id)
    assert [u.name for u in config.units()] == ["c4-s25", "c12-s25", "stateful-s25"]
    for unit in config.units():
        document = store.read_json(layout.scores(unit))
        assert (document["unit"], document["kind"], document["context"], document["seed"]) == (
            unit.name,
            unit.kind,
            unit.context,
            unit.seed,
        )
        assert [row["riff"] for row in document["rows"]] == config.recordings.riffs
        for row in document["rows"]:
            assert set(scores.SCORE_NAMES) <= set(row) and row["infer_seconds"] > 0 and row["realtime_factor"] > 0
        assert document["training"]["epochs_run"] == 6 and document["training"]["best_epoch"] == 5
        assert document["flops_per_sample"] == (unit.context or 1) * 2 * 9 * 32
        assert document["audio_seconds"] == pytest.approx(2 * RIFF_SECONDS)
        assert store.exists(layout.unit_output(unit, "battery"))
    assert not store.list(layout.eval_dir)  # the report stage writes eval/, not eval


@pytest.mark.parametrize("name", ["c4-s25", "c12-s25", "stateful-s25"])
def test_outputs_are_24_bit_aligned_and_match_keras(evaluated: tuple[Config, LocalStore], name: str) -> None:
    config, store = evaluated
    layout = RunLayout(config.run_id)
    unit = next(u for u in config.units() if u.name == name)
    document = store.read_json(layout.scores(unit))
    model = load_model_bytes(store.read_bytes(layout.model(unit)), "model")
    for row in document["rows"]:
        riff = row["riff"]
        data = store.read_bytes(layout.unit_output(unit, riff))
        info = sf.info(io.BytesIO(data))
        dry = decode_wav(store.read_bytes(riff_dry_key(config.recordings.test_dir, riff)), "dry").samples
        wet = decode_wav(store.read_bytes(riff_wet_key(config.recordings.test_dir, riff)), "wet").samples
        assert info.subtype == "PCM_24" and info.samplerate == config.recordings.sample_rate
        assert info.frames == len(dry) == len(wet)
        # independent check: Keras on the same input, scored against the wet riff
        if unit.kind == "stateful":
            reference = keras_predict_stateful(model, dry)
        else:
            reference = windowed.keras_predict(model, dry, unit.context)
        assert row["esr"] == pytest.approx(scores.esr(wet, reference), rel=1e-4)
        assert row["esr_pre"] == pytest.approx(scores.esr_pre(wet, reference, 0.85), rel=1e-4)
        np.testing.assert_allclose(decode_wav(data, "out").samples, np.clip(reference, -1, 1), atol=1e-5)


def test_a_scored_unit_is_skipped_until_its_model_or_the_riffs_change(tmp_path: Path) -> None:
    config = make_run(tmp_path, contexts=(4,))
    store = LocalStore(config.store)
    layout = RunLayout(config.run_id)
    (unit,) = config.units()
    assert evaluate.score_units(config, store, [unit], explicit=True) == [unit]
    written = store.read_bytes(layout.scores(unit))
    assert evaluate.score_units(config, store, [unit], explicit=True) == []
    assert store.read_bytes(layout.scores(unit)) == written
    history = fake_history(unit, epochs=7)  # retrained: a new history stands for a new model
    store.write_json(layout.history(unit), history)
    assert not evaluate.is_finished(store, layout, unit, config.eval, config.recordings)
    assert evaluate.score_units(config, store, [unit], explicit=True) == [unit]
    assert store.read_json(layout.scores(unit))["training"]["epochs_run"] == 7
    write_toy_recordings(store, config, seconds=3.0, riff_seconds=2 * RIFF_SECONDS)
    assert not evaluate.is_finished(store, layout, unit, config.eval, config.recordings)
    assert evaluate.score_units(config, store, [unit], explicit=True, force=False) == [unit]


def test_without_a_unit_every_trained_unit_is_scored_and_the_rest_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_run(tmp_path, contexts=(4, 8, 12), trained=(Unit("windowed", 4, 25), Unit("windowed", 12, 25)))
    store = LocalStore(config.store)
    layout = RunLayout(config.run_id)
    store.delete(layout.history(Unit("windowed", 12, 25)))  # a model but no history: not trained
    assert cli.main(["eval", "--config", config_file(config, tmp_path)]) == 0
    assert store.exists(layout.scores(Unit("windowed", 4, 25)))
    assert not store.exists(layout.scores(Unit("windowed", 12, 25)))
    assert "c8-s25 is not trained yet" in caplog.text and "c12-s25 is not trained yet" in caplog.text


def test_an_untrained_unit_asked_for_by_name_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = make_run(tmp_path, contexts=(4, 12), trained=(Unit("windowed", 4, 25),))
    assert cli.main(["eval", "--config", config_file(config, tmp_path), "--unit", "c12-s25"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: c12-s25: not trained") and "\n" not in error
    assert not LocalStore(config.store).exists(RunLayout(config.run_id).scores(Unit("windowed", 12, 25)))


def test_no_trained_unit_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = make_run(tmp_path, trained=())
    assert cli.main(["eval", "--config", config_file(config, tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: no trained unit to score") and "\n" not in error


def test_corrupt_model_file_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = make_run(tmp_path, contexts=(4,))
    store = LocalStore(config.store)
    store.write_bytes(RunLayout(config.run_id).model(Unit("windowed", 4, 25)), b"garbage, not a zip")
    assert cli.main(["eval", "--config", config_file(config, tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert "models/c4/s25/model.keras" in error and "not a readable Keras model" in error and "\n" not in error


def test_model_for_another_context_or_kind_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = make_run(tmp_path, contexts=(4,), model__kind=["windowed", "stateful"])
    store = LocalStore(config.store)
    save_model(store, config, Unit("windowed", 4, 25), tmp_path, model_context=6)
    assert cli.main(["eval", "--config", config_file(config, tmp_path), "--unit", "c4-s25"]) == 2
    error = capsys.readouterr().err.strip()
    assert "models/c4/s25/model.keras" in error and "(None, 4, 1)" in error
    save_model(store, config, Unit("stateful", None, 25), tmp_path, model_context=4)
    assert cli.main(["eval", "--config", config_file(config, tmp_path), "--unit", "stateful-s25"]) == 2
    error = capsys.readouterr().err.strip()
    assert "models/stateful/s25/model.keras" in error and "(None, None, 1)" in error


def test_history_without_required_fields_names_the_file(tmp_path: Path) -> None:
    config = make_run(tmp_path, contexts=(4,))
    store = LocalStore(config.store)
    (unit,) = config.units()
    history = fake_history(unit)
    del history["best_epoch"]
    store.write_json(RunLayout(config.run_id).history(unit), history)
    with pytest.raises(evaluate.EvalError, match=r"c4/s25/history\.json: history lacks field\(s\) best_epoch"):
        evaluate.score_units(config, store, [unit], explicit=True)
