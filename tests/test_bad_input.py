"""The bad-input catalogue: every case is refused at the door with one line, exit 2, nothing written.

One table (``CASES``); the README's reliability section counts it. Each case starts from a good
store and config, breaks one thing and runs a command twice: in this process (``cli.main``) and
in a real ``python -m sd1job`` process, where logging and TensorFlow's own start-up output reach
standard error as they would on a user's terminal. Both times the exit status is 2, the whole of
standard error is exactly one line naming what is wrong, and the store is byte for byte as it was.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from sd1job import cli
from sd1job.config import Config
from sd1job.layout import RunLayout
from sd1job.store import LocalStore
from sd1job.units import Unit
from tests.helpers import run_job, small_config, user_env, write_toy_recordings

DRY = "recordings/train/Dry/d_train.wav"
WET = "recordings/train/Wet/w_train.wav"
RIFF_WET = "recordings/test/Wet/w_ohwell.wav"
RATE = 8000
UNIT = Unit("windowed", 8, 25)  # the first unit of small_config
LAYOUT = RunLayout("test-run")


def wav(signal: np.ndarray, rate: int = RATE, subtype: str = "PCM_24") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, signal, rate, subtype=subtype, format="WAV")
    return buffer.getvalue()


def tone(seconds: float = 3.0, rate: int = RATE) -> np.ndarray:
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


def clipped_pair_and_broken_riff(store: LocalStore) -> None:
    """A training pair the data stage would warn about (clipping, DC offset), and a broken riff after it."""
    loud = np.clip(4.0 * tone() + 0.1, -1.0, 1.0)
    store.write_bytes(DRY, wav(loud))
    store.write_bytes(WET, wav(loud))
    store.write_bytes(RIFF_WET, b"")


HISTORY = {
    "epochs_run": 1,
    "best_epoch": 1,
    "best_val_loss": 0.5,
    "total_seconds": 1.0,
    "seconds_per_epoch": 1.0,
    "stop_reason": "max_epochs",
    "epochs": [{"epoch": 1, "loss": 0.5, "val_loss": 0.5, "seconds": 1.0}],
}


def trained_model(context_in_file: int | None) -> Callable[[LocalStore], None]:
    """Put a trained c8-s25 in place: a model built for ``context_in_file`` samples, or garbage bytes if None."""

    def apply(store: LocalStore) -> None:
        import tempfile

        from sd1job.stages.data import build_datasets

        build_datasets(small_config(str(store.root)), store)
        if context_in_file is None:
            store.write_bytes(LAYOUT.model(UNIT), b"PK\x03\x04 not really a keras archive")
        else:
            from sd1job.model import build_model

            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "model.keras"
                build_model(context_in_file, 8, 0.001).save(path)
                store.write_bytes(LAYOUT.model(UNIT), path.read_bytes())
        store.write_text(LAYOUT.history(UNIT), json.dumps(HISTORY))

    return apply


@dataclass
class Case:
    """One bad input: how to break the store and/or config, which command, what the message says."""

    name: str
    expect: str
    store_change: Callable[[LocalStore], None] | None = None
    config_change: dict | None = None
    command: tuple[str, ...] = ("data",)


STATEFUL = {"kind": "stateful", "stateful": {"segment_seconds": 10.0}}

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
    # The training pair's warnings (clipping, DC offset) must not be printed before the riff's error.
    Case("warned-about pair, then a broken riff", "w_ohwell.wav: file is empty", clipped_pair_and_broken_riff),
    Case(
        "recording shorter than the largest context",
        "context 16 is longer than the recording",
        lambda store: (store.write_bytes(DRY, wav(tone(0.001))), store.write_bytes(WET, wav(tone(0.001)))),
    ),
    Case(
        "stateful segment longer than the recording",
        "model.stateful.segment_seconds: one segment (80000 samples) is longer than the training stretch",
        config_change={"model": STATEFUL},
    ),
    # config
    Case("unknown key", "dataset.pair: unknown key (did you mean pairs?)", config_change={"dataset": {"pair": 10}}),
    Case("misspelt section", "datset: unknown key (did you mean dataset?)", config_change={"datset": {"pairs": 10}}),
    Case("wrong type", "train.epochs", config_change={"train": {"epochs": "lots"}}),
    Case("zero context", "dataset.contexts", config_change={"dataset": {"contexts": [0, 8]}}),
    Case("negative context", "dataset.contexts", config_change={"dataset": {"contexts": [-8]}}),
    Case(
        "context_ms disagrees with contexts",
        "dataset.contexts [8, 16] and dataset.context_ms [3.0] (= [24] samples at 8000 Hz) disagree",
        config_change={"dataset": {"context_ms": [3.0]}},
    ),
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
    # units
    Case(
        "unit not in the config",
        "--unit c24-s25: not a unit of this config (its units: c8-s25, c16-s25)",
        command=("train", "--unit", "c24-s25"),
    ),
    Case("malformed unit name", "--unit 'c8': not a unit name", command=("train", "--unit", "c8")),
    # stages out of order, models
    Case(
        "train before data",
        "dataset not found; run `python -m sd1job data`",
        command=("train", "--unit", "c8-s25"),
    ),
    Case(
        "eval of an untrained unit",
        "c8-s25: not trained (no ",
        command=("eval", "--unit", "c8-s25"),
    ),
    Case("report with nothing scored", "no scored unit in ", command=("report",)),
    Case(
        "corrupted model file at eval",
        "c8/s25/model.keras: not a readable Keras model file (not a .keras zip archive)",
        trained_model(None),
        command=("eval",),
    ),
    Case(
        "model built for another context",
        "c8/s25/model.keras: model input shape is (None, 16, 1), expected (None, 8, 1)",
        trained_model(16),
        command=("eval",),
    ),
]


def _merge(base: dict, change: dict) -> dict:
    merged = dict(base)
    for key, value in change.items():
        merged[key] = _merge(base.get(key, {}), value) if isinstance(value, dict) else value
    return merged


def prepare(case: Case, workdir: Path) -> list[str]:
    """A good store and config under ``workdir`` with the case's fault; return the command's arguments."""
    root = workdir / "store"
    good: Config = small_config(str(root))
    store = LocalStore(root)
    write_toy_recordings(store, good)
    if case.store_change:
        case.store_change(store)
    data = yaml.safe_load(good.to_yaml())
    if case.config_change:
        data = _merge(data, case.config_change)
    config_file = workdir / "config.yaml"
    config_file.write_text(yaml.safe_dump(data))
    return [case.command[0], "--config", str(config_file), *case.command[1:]]


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for a folder)."""
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes() for p in sorted(root.rglob("*"))}


def check_refused(case: Case, status: int, stderr: str, before: dict, after: dict) -> None:
    """Exit 2, the whole of stderr one line naming what is wrong, the store unchanged."""
    assert status == 2, stderr
    assert stderr.count("\n") == 1 and stderr.endswith("\n") and stderr.startswith("error: "), stderr
    assert case.expect in stderr, stderr
    assert after == before, "the failed command changed the store"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_in_one_line(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = prepare(case, tmp_path)
    before = snapshot(tmp_path / "store")
    status = cli.main(args)
    check_refused(case, status, capsys.readouterr().err, before, snapshot(tmp_path / "store"))


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str, dict, dict]]:
    """Every case run as `python -m sd1job ...` (two at a time): name -> (status, stderr, before, after)."""
    prepared = {}
    for case in CASES:
        workdir = tmp_path_factory.mktemp("bad")
        args = prepare(case, workdir)
        prepared[case.name] = (workdir / "store", args, snapshot(workdir / "store"))
    env = user_env({})

    def run(name: str) -> tuple[int, str, dict, dict]:
        root, args, before = prepared[name]
        result = run_job(args, env, timeout=120)
        return result.returncode, result.stderr, before, snapshot(root)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(prepared, pool.map(run, prepared), strict=True))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_in_one_line_by_a_real_process(
    case: Case, real_runs: dict[str, tuple[int, str, dict, dict]]
) -> None:
    check_refused(case, *real_runs[case.name])


def test_catalogue_size_matches_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"{len(CASES)} bad inputs" in readme
