"""A player's own capture (one DI/output pair, any rate, some latency) and the export of a stateful unit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from sd1job import cli
from sd1job.audio import decode_wav, encode_wav
from sd1job.export import decode_nam
from sd1job.layout import RESULTS_JSON, CaptureLayout, RunLayout
from sd1job.store import LocalStore
from sd1job.units import Unit
from tests.helpers import toy_dry, toy_pedal
from tests.test_evaluate import make_run

TINY_PROFILE = {
    "dataset": {"context_ms": [0.5, 1.0], "pairs": 1200},
    "train": {"epochs": 2, "patience": 2, "lstm_units": 8, "learning_rate": 0.01},
    "eval": {"batch_size": 1024},
}


def profile(tmp_path: Path, **sections: dict) -> Path:
    mapping = {"store": str(tmp_path / "store"), **TINY_PROFILE, **sections}
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(mapping))
    return path


def late_pair(tmp_path: Path, rate: int, seconds: float, latency: int) -> tuple[Path, Path]:
    """A DI and a pedal output recorded ``latency`` samples late (the wet file that much longer)."""
    dry = toy_dry(seconds, rate, seed=3)
    wet = np.concatenate([np.zeros(latency, np.float32), toy_pedal(dry)])
    paths = (tmp_path / "DI.wav", tmp_path / "Pedal Out.wav")
    paths[0].write_bytes(encode_wav(dry, rate))
    paths[1].write_bytes(encode_wav(wet, rate))
    return paths


@pytest.mark.slow
def test_capture_aligns_splits_and_sweeps_at_the_files_rate(tmp_path: Path) -> None:
    dry_path, wet_path = late_pair(tmp_path, 48000, 4.0, latency=29)
    arguments = ["--dry", str(dry_path), "--wet", str(wet_path)]
    models = {"kind": ["windowed", "wavenet"], "wavenet": {"presets": "nano", "segment_samples": 2048}}
    assert cli.main(["capture", "-q", "--config", str(profile(tmp_path, model=models)), *arguments]) == 0
    store = LocalStore(tmp_path / "store")
    layout = RunLayout("capture-Pedal-Out")
    manifest = store.read_json(layout.manifest)
    assert manifest["sample_rate"] == 48000
    train = decode_wav(store.read_bytes("captures/capture-Pedal-Out/train/Dry/d_train.wav"), "train")
    holdout = decode_wav(store.read_bytes("captures/capture-Pedal-Out/test/Dry/d_holdout.wav"), "holdout")
    assert train.sample_rate == holdout.sample_rate == 48000
    assert len(holdout.samples) == pytest.approx(0.15 * (len(train.samples) + len(holdout.samples)), abs=1)
    # the stored pair is aligned: the wet file is the toy pedal of the dry one, sample for sample
    wet = decode_wav(store.read_bytes("captures/capture-Pedal-Out/train/Wet/w_train.wav"), "wet").samples
    np.testing.assert_allclose(wet, toy_pedal(train.samples), atol=1e-4)
    results = json.loads(store.read_text(layout.eval_file(RESULTS_JSON)))
    assert results["sample_rate"] == 48000
    assert {(r["context"], r["context_ms"]) for r in results["rows"]} == {(24, 0.5), (48, 1.0), (None, None)}
    assert {r["riff"] for r in results["rows"]} == {"holdout"}
    wavenet = Unit("wavenet", None, 25, "nano")
    assert decode_nam(store.read_bytes(layout.export(wavenet)), "nano")["architecture"] == "WaveNet"  # for the plugin
    assert not store.exists(layout.export(Unit("windowed", 24, 25)))


@pytest.mark.slow
def test_capture_of_a_real_pedal(realdata: Path, tmp_path: Path) -> None:
    folder = realdata / "egfx-tubescreamer"
    arguments = ["--dry", str(folder / "Dry" / "d_noteA.wav"), "--wet", str(folder / "Wet" / "w_noteA.wav")]
    assert cli.main(["capture", "-q", "--config", str(profile(tmp_path)), *arguments, "--name", "ts"]) == 0
    store = LocalStore(tmp_path / "store")
    found = store.read_json(CaptureLayout("ts").info)
    assert found["sample_rate"] == 48000 and 24 <= found["latency_samples"] <= 34  # EGFxSet: 27 to 31
    assert abs(store.read_json(RunLayout("ts").manifest)["train"]["latency_samples"]) <= 3  # stored aligned
    results = json.loads(store.read_text(RunLayout("ts").eval_file(RESULTS_JSON)))
    assert {r["context"] for r in results["rows"]} == {24, 48} and all(r["esr"] > 0 for r in results["rows"])


def test_capture_refuses_bad_pairs_and_options_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dry_path, wet_path = late_pair(tmp_path, 48000, 4.0, latency=0)
    other_rate = tmp_path / "wet44.wav"
    other_rate.write_bytes(encode_wav(toy_pedal(toy_dry(4.0, 44100, seed=3)), 44100))
    short = tmp_path / "short.wav"
    short.write_bytes(encode_wav(toy_dry(0.8, 48000, seed=3), 48000))
    config = str(profile(tmp_path))
    cases = [
        (["--dry", str(dry_path), "--wet", str(other_rate)], "sample rate is 44100 Hz but"),
        (["--dry", str(tmp_path / "nope.wav"), "--wet", str(wet_path)], "nope.wav: file not found"),
        (["--dry", str(short), "--wet", str(short)], "too short to hold out"),
        (["--dry", str(dry_path), "--wet", str(wet_path), "--test-fraction", "0.7"], "--test-fraction 0.7"),
    ]
    for arguments, message in cases:
        assert cli.main(["capture", "--config", config, *arguments]) == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith("error: ") and message in error and "\n" not in error, error
    assert not (tmp_path / "store").exists()


def test_export_writes_a_nam_file_and_refuses_a_windowed_unit(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = make_run(tmp_path, contexts=(4,), model__kind=["windowed", "stateful"])
    path = tmp_path / "config.yaml"
    path.write_text(config.to_yaml())
    output = tmp_path / "plugin" / "my.nam"
    assert cli.main(["export", "-q", "--config", str(path), "--unit", "stateful-s25", "--output", str(output)]) == 0
    store = LocalStore(config.store)
    data = store.read_bytes(RunLayout(config.run_id).export(Unit("stateful", None, 25)))
    assert output.read_bytes() == data
    document = decode_nam(data, "my.nam")
    assert document["architecture"] == "LSTM" and document["sample_rate"] == 8000.0
    assert document["config"] == {"input_size": 1, "hidden_size": 8, "num_layers": 1}
    assert document["metadata"]["sd1job_training"]["unit"] == "stateful-s25"
    assert cli.main(["export", "--config", str(path), "--unit", "c4-s25"]) == 2
    error = capsys.readouterr().err.strip()
    assert "a windowed model cannot be exported to .nam" in error and "\n" not in error
    store.delete(RunLayout(config.run_id).history(Unit("stateful", None, 25)))
    assert cli.main(["export", "--config", str(path), "--unit", "stateful-s25"]) == 2
    assert "stateful-s25: not trained" in capsys.readouterr().err
