"""The eval stage end to end on a local store: tiny untrained models, short synthetic riffs."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import keras
import numpy as np
import pytest
import soundfile as sf

from sd1job import cli, evaluate, scores
from sd1job.audio import decode_wav
from sd1job.config import Config
from sd1job.data_stage import run_data
from sd1job.infer import windowed
from sd1job.infer.weights import load_model_bytes
from sd1job.layout import layout_for, riff_dry_key, riff_wet_key
from sd1job.model import build_model
from sd1job.store import LocalStore, Store, open_store
from tests.helpers import small_config, write_toy_recordings

RIFF_SECONDS = 0.3
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def fake_history(context: int, epochs: int = 6, seconds_per_epoch: float | None = None) -> dict[str, Any]:
    """A history.json like the train stage's, with losses falling and time growing with the context."""
    per_epoch = seconds_per_epoch if seconds_per_epoch is not None else 0.5 + 0.01 * context
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
        "context": context,
        "epochs_run": epochs,
        "best_epoch": epochs - 1,
        "best_val_loss": entries[-2]["val_loss"],
        "total_seconds": per_epoch * epochs,
        "seconds_per_epoch": per_epoch,
        "stop_reason": "early_stopping",
        "epochs": entries,
    }


def save_model(store: Store, config: Config, context: int, tmp_dir: Path, model_context: int | None = None) -> None:
    """Save an untrained model for ``context`` (or, to test mismatches, built for ``model_context``)."""
    model = build_model(model_context or context, config.train.lstm_units, config.train.learning_rate)
    path = tmp_dir / f"model-{context}.keras"
    model.save(path)
    store.write_bytes(layout_for(config).model(context), path.read_bytes())


def make_run(
    root: Path, contexts: tuple[int, ...] = (4, 12), trained: tuple[int, ...] | None = None, store_url: str = ""
) -> Config:
    """A store (local under ``root`` unless ``store_url``) with recordings, the data stage's manifest,
    and finished models for ``trained`` (default: every context)."""
    keras.utils.set_random_seed(11)
    config = small_config(store_url or str(root / "store"), dataset__contexts=list(contexts), eval__batch_size=512)
    store = open_store(config.store)
    write_toy_recordings(store, config, seconds=1.0, riff_seconds=RIFF_SECONDS)
    run_data(config, store)
    layout = layout_for(config)
    models = root / "models"
    models.mkdir(exist_ok=True)
    for context in contexts if trained is None else trained:
        save_model(store, config, context, models)
        store.write_json(layout.history(context), fake_history(context))
    return config


def config_file(config: Config, directory: Path) -> str:
    path = directory / "config.yaml"
    path.write_text(config.to_yaml())
    return str(path)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, LocalStore]:
    """One full eval through the CLI, shared by the checks below."""
    root = tmp_path_factory.mktemp("eval")
    config = make_run(root)
    assert cli.main(["eval", "-q", "--config", config_file(config, root)]) == 0
    return config, LocalStore(config.store)


def test_results_files_have_every_column_and_row(evaluated: tuple[Config, LocalStore]) -> None:
    config, store = evaluated
    layout = layout_for(config)
    rows = list(csv.DictReader(io.StringIO(store.read_text(layout.eval_file("results.csv")))))
    assert list(rows[0].keys()) == list(evaluate.COLUMNS)
    assert {(int(r["context"]), r["riff"]) for r in rows} == {(c, r) for c in (4, 12) for r in config.recordings.riffs}
    for row in rows:
        assert all(row[column] != "" for column in evaluate.COLUMNS), row
        assert float(row["realtime_factor"]) > 0 and float(row["infer_seconds"]) > 0
    results = json.loads(store.read_text(layout.eval_file("results.json")))
    assert results["columns"] == list(evaluate.COLUMNS)
    assert [set(r) for r in results["rows"]] == [set(evaluate.COLUMNS)] * 4
    assert [s["context"] for s in results["summary"]] == [4, 12]
    assert results["pre_emphasis"] == 0.85
    for entry in results["summary"]:
        mine = [r for r in results["rows"] if r["context"] == entry["context"]]
        assert entry["esr"] == pytest.approx(np.mean([r["esr"] for r in mine]))
        assert entry["stft"] == pytest.approx(np.mean([r["stft"] for r in mine]))
        assert entry["epochs_run"] == 6 and entry["best_epoch"] == 5
        assert entry["seconds_per_epoch"] == pytest.approx(0.5 + 0.01 * entry["context"])
    assert [r["riff"] for r in results["reference"]] == config.recordings.riffs
    assert results["missing"] == []
    summary = list(csv.DictReader(io.StringIO(store.read_text(layout.eval_file("summary.csv")))))
    assert [int(s["context"]) for s in summary] == [4, 12]


def test_outputs_are_24_bit_aligned_and_match_the_scores(evaluated: tuple[Config, LocalStore]) -> None:
    config, store = evaluated
    layout = layout_for(config)
    results = json.loads(store.read_text(layout.eval_file("results.json")))
    for row in results["rows"]:
        context, riff = row["context"], row["riff"]
        data = store.read_bytes(layout.output_audio(context, riff))
        info = sf.info(io.BytesIO(data))
        dry = decode_wav(store.read_bytes(riff_dry_key(config, riff)), "dry")
        wet = decode_wav(store.read_bytes(riff_wet_key(config, riff)), "wet")
        assert info.subtype == "PCM_24" and info.samplerate == config.recordings.sample_rate
        assert info.frames == len(dry.samples) == len(wet.samples)
        # independent check: Keras model.predict on the zero-padded windows, scored against the wet riff
        model = load_model_bytes(store.read_bytes(layout.model(context)), "model")
        reference = windowed.keras_predict(model, dry.samples, context)
        assert row["esr"] == pytest.approx(scores.esr(wet.samples, reference), rel=1e-4)
        assert row["esr_pre"] == pytest.approx(scores.esr_pre(wet.samples, reference, 0.85), rel=1e-4)
        written = decode_wav(data, "out").samples
        np.testing.assert_allclose(written, np.clip(reference, -1, 1), atol=1e-5)


def test_reference_scores_the_dry_signal_against_the_wet(evaluated: tuple[Config, LocalStore]) -> None:
    config, store = evaluated
    results = json.loads(store.read_text(layout_for(config).eval_file("results.json")))
    for entry in results["reference"]:
        dry = decode_wav(store.read_bytes(riff_dry_key(config, entry["riff"])), "dry").samples
        wet = decode_wav(store.read_bytes(riff_wet_key(config, entry["riff"])), "wet").samples
        assert entry["esr_dry_vs_wet"] == pytest.approx(scores.esr(wet, dry))
        assert entry["seconds"] == pytest.approx(RIFF_SECONDS)


def test_plots_exist_and_are_non_empty_pngs(evaluated: tuple[Config, LocalStore]) -> None:
    config, store = evaluated
    layout = layout_for(config)
    names = [evaluate.PLOT_ESR, evaluate.PLOT_EPOCH_TIME, evaluate.PLOT_LOSSES, evaluate.PLOT_WAVEFORMS]
    for name in [*names, evaluate.PLOT_SPECTRA]:
        data = store.read_bytes(layout.eval_file(name))
        assert data.startswith(PNG_SIGNATURE), name
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert width >= 400 and height >= 200, name
        assert len(data) > 10_000, name  # a blank canvas of that size compresses to a few kB


def test_report_references_only_files_that_exist(evaluated: tuple[Config, LocalStore]) -> None:
    config, store = evaluated
    layout = layout_for(config)
    page = store.read_text(layout.eval_file(evaluate.REPORT))
    eval_dir = Path(store.url(layout.eval_dir))
    references = page_references(page)
    assert len([r for r in references if r.endswith(".wav")]) >= 2 * 4  # 2 riffs x (dry, wet, c4, c12), twice
    for reference in references:
        assert (eval_dir / reference).is_file(), reference
    assert "battery" in page and "ohwell" in page and "run_id: test-run" in page
    assert "training recording" in page  # the manifest's checks


def page_references(page: str) -> list[str]:
    """Every relative src/href of a page (anchors and data: URIs left out), URL-decoded."""
    return [unquote(ref) for ref in re.findall(r'(?:src|href)="([^"#:]+)"', page)]


def test_on_s3_the_eval_prefix_alone_makes_a_working_page(s3_bucket: str, tmp_path: Path) -> None:
    config = make_run(tmp_path, contexts=(4,), store_url=f"s3://{s3_bucket}/team/sd1")
    store = open_store(config.store)
    evaluate.run_eval(config, store)
    eval_dir = layout_for(config).eval_dir
    download = tmp_path / "download"
    for key in store.list(eval_dir):  # what `aws s3 cp --recursive s3://.../eval/ .` would fetch
        target = download / key[len(eval_dir) + 1 :]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(store.read_bytes(key))
    page = (download / evaluate.REPORT).read_text()
    references = page_references(page)
    assert len([r for r in references if r.endswith(".png")]) == 5
    for reference in references:
        assert (download / reference).is_file(), reference
    assert f"s3://{s3_bucket}/team/sd1/runs/test-run" in page


def test_missing_context_is_reported_and_the_rest_evaluated(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = make_run(tmp_path, contexts=(4, 8, 12), trained=(4, 12))
    store = LocalStore(config.store)
    store.delete(layout_for(config).history(12))
    save_model(store, config, 12, tmp_path)  # model but no history: not finished
    store.write_json(layout_for(config).history(8), fake_history(8))  # history but no model
    with caplog.at_level(logging.WARNING):
        results = evaluate.run_eval(config, store)
    assert [s["context"] for s in results["summary"]] == [4]
    assert len(results["missing"]) == 2
    assert "c8: no" in results["missing"][0] and "model.keras" in results["missing"][0]
    assert "c12: no" in results["missing"][1] and "history.json" in results["missing"][1]
    assert "skipping c8" in caplog.text and "skipping c12" in caplog.text
    page = store.read_text(layout_for(config).eval_file(evaluate.REPORT))
    assert "Not evaluated" in page and "c8: no" in page


def test_no_trained_model_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = make_run(tmp_path, trained=())
    assert cli.main(["eval", "--config", config_file(config, tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: no trained model to evaluate") and "c4: no" in error and "c12: no" in error
    assert "\n" not in error
    assert not LocalStore(config.store).list(layout_for(config).eval_dir)


def test_corrupt_model_file_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = make_run(tmp_path, contexts=(4,))
    store = LocalStore(config.store)
    store.write_bytes(layout_for(config).model(4), b"garbage, not a zip")
    assert cli.main(["eval", "--config", config_file(config, tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert "models/c4/model.keras" in error and "not a readable Keras model" in error and "\n" not in error


def test_model_for_another_context_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = make_run(tmp_path, contexts=(4,))
    save_model(LocalStore(config.store), config, 4, tmp_path, model_context=6)
    assert cli.main(["eval", "--config", config_file(config, tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert "models/c4/model.keras" in error and "(None, 4, 1)" in error


def test_history_without_required_fields_names_the_file(tmp_path: Path) -> None:
    config = make_run(tmp_path, contexts=(4,))
    store = LocalStore(config.store)
    history = fake_history(4)
    del history["best_epoch"]
    store.write_json(layout_for(config).history(4), history)
    with pytest.raises(evaluate.EvalError, match=r"c4/history\.json: history lacks field\(s\) best_epoch"):
        evaluate.run_eval(config, store)


def test_summarize_means_and_realtime_factor() -> None:
    riffs = [
        evaluate.TestRiff("a", np.zeros(100, np.float32), np.zeros(100, np.float32), 100),
        evaluate.TestRiff("b", np.zeros(300, np.float32), np.zeros(300, np.float32), 100),
    ]
    history = fake_history(4)
    rows = []
    for riff, esr, seconds in ((riffs[0], 0.1, 0.5), (riffs[1], 0.3, 1.5)):
        row = {"context": 4, "riff": riff.name, "esr": esr, "esr_pre": esr, "mse": 1.0, "mae": 2.0, "stft": 3.0}
        row.update(
            {
                k: history[v]
                for k, v in zip(
                    evaluate.TRAIN_COLUMNS,
                    ("epochs_run", "best_epoch", "total_seconds", "seconds_per_epoch"),
                    strict=True,
                )
            }
        )
        row.update(infer_seconds=seconds, realtime_factor=riff.seconds / seconds)
        rows.append(row)
    (summary,) = evaluate.summarize(rows, riffs)
    assert summary["esr"] == pytest.approx(0.2)
    assert summary["infer_seconds"] == pytest.approx(2.0)
    assert summary["realtime_factor"] == pytest.approx(4.0 / 2.0)  # 4 s of audio in 2 s
    assert summary["riffs"] == 2
