"""The bad-input catalogue: every case is refused at the door with one line, exit 2, nothing written.

One table (``CASES``); the README's reliability section counts it. Each case starts from a good
store and config, breaks one thing, runs a command through the real CLI, and checks the exit
status, that stderr is exactly one line naming what is wrong, and that the run wrote nothing.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from sd1job import cli
from sd1job.config import Config
from sd1job.store import LocalStore
from tests.helpers import small_config, write_toy_recordings

DRY = "recordings/train/Dry/d_train.wav"
WET = "recordings/train/Wet/w_train.wav"
RIFF_WET = "recordings/test/Wet/w_ohwell.wav"


def wav(signal: np.ndarray, rate: int = 8000, subtype: str = "PCM_24") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, signal, rate, subtype=subtype, format="WAV")
    return buffer.getvalue()


def tone(seconds: float = 3.0, rate: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def put(key: str, data: bytes) -> Callable[[LocalStore], None]:
    return lambda store: store.write_bytes(key, data)


def delete(key: str) -> Callable[[LocalStore], None]:
    return lambda store: store.delete(key)


def truncate(key: str) -> Callable[[LocalStore], None]:
    def apply(store: LocalStore) -> None:
        data = store.read_bytes(key)
        store.write_bytes(key, data[: len(data) // 2])

    return apply


def nan_samples() -> bytes:
    signal = tone()
    signal[100] = np.nan
    return wav(signal, subtype="FLOAT")


HISTORY = {
    "epochs_run": 1,
    "best_epoch": 1,
    "total_seconds": 1.0,
    "seconds_per_epoch": 1.0,
    "stop_reason": "max_epochs",
    "epochs": [{"epoch": 1, "loss": 0.5, "val_loss": 0.5}],
}


def trained_model(context_in_file: int | None) -> Callable[[LocalStore], None]:
    """Put a finished c8 model in place: built for ``context_in_file`` samples, or garbage bytes if None."""

    def apply(store: LocalStore) -> None:
        import json
        import tempfile

        from sd1job.data_stage import run_data
        from tests.helpers import small_config as config_for

        run_data(config_for(str(store.root)), store)
        if context_in_file is None:
            store.write_bytes("runs/test-run/models/c8/model.keras", b"PK\x03\x04 not really a keras archive")
        else:
            from sd1job.model import build_model

            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "model.keras"
                build_model(context_in_file, 8, 0.001).save(path)
                store.write_bytes("runs/test-run/models/c8/model.keras", path.read_bytes())
        store.write_text("runs/test-run/models/c8/history.json", json.dumps(HISTORY))

    return apply


@dataclass
class Case:
    """One bad input: how to break the store and/or config, which command, what the message says."""

    name: str
    expect: str
    store_change: Callable[[LocalStore], None] | None = None
    config_change: dict | None = None
    command: tuple[str, ...] = ("data",)


CASES = [
    # recordings
    Case("missing recording", "d_train.wav: recording not found", delete(DRY)),
    Case("zero-byte file", "w_train.wav: file is empty", put(WET, b"")),
    Case("truncated WAV", "truncated WAV file", truncate(DRY)),
    Case("text file named .wav", "not a readable audio file", put(DRY, b"this is not audio, just text\n" * 20)),
    Case("wrong sample rate", "sample rate is 44100 Hz but the config says 8000 Hz", put(WET, wav(tone(), 44100))),
    Case("stereo", "has 2 channels; recordings must be mono", put(DRY, wav(np.stack([tone(), tone()], axis=1)))),
    Case("8-bit PCM", "sample format PCM_U8 is not supported", put(DRY, wav(tone(), subtype="PCM_U8"))),
    Case("dry and wet lengths differ", "must be the same length", put(WET, wav(tone(2.5)))),
    Case("NaN samples", "NaN or Inf samples", put(DRY, nan_samples())),
    Case("silent recording", "is silent", put(WET, wav(np.zeros(24_000, np.float32)))),
    Case("riff recording broken", "w_ohwell.wav: file is empty", put(RIFF_WET, b"")),
    Case(
        "recording shorter than the largest context",
        "context 16 is longer than the recording",
        lambda store: (store.write_bytes(DRY, wav(tone(0.001))), store.write_bytes(WET, wav(tone(0.001)))),
    ),
    # config
    Case("unknown key", "dataset.pair: unknown key", config_change={"dataset": {"pair": 10}}),
    Case("wrong type", "train.epochs", config_change={"train": {"epochs": "lots"}}),
    Case("zero context", "dataset.contexts", config_change={"dataset": {"contexts": [0, 8]}}),
    Case("negative context", "dataset.contexts", config_change={"dataset": {"contexts": [-8]}}),
    Case(
        "context longer than the recording",
        "context 50000 is longer than the recording",
        config_change={"dataset": {"contexts": [50_000]}},
    ),
    Case("more pairs than windows", "only 23993 are available", config_change={"dataset": {"pairs": 30_000}}),
    Case("val_fraction too large", "dataset.val_fraction", config_change={"dataset": {"val_fraction": 1.5}}),
    Case("val_fraction zero", "dataset.val_fraction", config_change={"dataset": {"val_fraction": 0}}),
    Case("unknown store scheme", "unknown store scheme 'gs'", config_change={"store": "gs://bucket/x"}),
    Case(
        "store key with ..",
        "has an empty, '.' or '..' segment",
        config_change={"recordings": {"train": {"dry": "../outside/d.wav", "wet": WET}}},
    ),
    # models
    Case(
        "corrupted model file at eval",
        "c8/model.keras: not a readable Keras model file (not a .keras zip archive)",
        trained_model(None),
        command=("eval",),
    ),
    Case(
        "model built for another context",
        "c8/model.keras: model input shape is (None, 16, 1), expected (None, 8, 1)",
        trained_model(16),
        command=("eval",),
    ),
    Case(
        "train before data",
        "dataset not found; run `python -m sd1job data`",
        command=("train", "--context", "8"),
    ),
]


def _merge(base: dict, change: dict) -> dict:
    merged = dict(base)
    for key, value in change.items():
        merged[key] = _merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return merged


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_in_one_line(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "store"
    good: Config = small_config(str(root))
    store = LocalStore(root)
    write_toy_recordings(store, good)
    if case.store_change:
        case.store_change(store)
    data = yaml.safe_load(good.to_yaml())
    if case.config_change:
        data = _merge(data, case.config_change)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(data))
    before = sorted(p for p in root.rglob("*"))

    status = cli.main([case.command[0], "--config", str(config_file), *case.command[1:]])

    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert case.expect in err, err
    assert sorted(p for p in root.rglob("*")) == before, "the failed command wrote something"


def test_catalogue_size_matches_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"{len(CASES)} bad inputs" in readme
