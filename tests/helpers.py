"""Small synthetic recordings for tests that need dry/wet audio but not the demo synthesiser."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sd1job.audio import encode_wav
from sd1job.config import Config, config_from_mapping
from sd1job.layout import riff_dry_key, riff_wet_key
from sd1job.store import Store


def toy_pedal(dry: np.ndarray) -> np.ndarray:
    """A soft asymmetric clipper with a little memory: something an LSTM can learn quickly."""
    smoothed = np.convolve(dry, [0.6, 0.3, 0.1])[: len(dry)]
    return (0.5 * np.tanh(4.0 * smoothed + 0.2) - 0.5 * np.tanh(0.2)).astype(np.float32)


def toy_dry(seconds: float, rate: int, seed: int) -> np.ndarray:
    """Decaying plucked-like tones plus a little noise, peak well under full scale."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    signal = np.zeros_like(t)
    note_length = 0.25
    for start in np.arange(0, seconds, note_length):
        freq = rng.choice([82.4, 110.0, 146.8, 196.0, 246.9, 329.6]) * rng.choice([1, 2])
        mask = t >= start
        local = t[mask] - start
        signal[mask] += rng.uniform(0.05, 0.4) * np.exp(-local * 6) * np.sin(2 * np.pi * freq * local)
    signal += 0.001 * rng.standard_normal(len(t))
    return (0.9 * signal / max(1.0, np.max(np.abs(signal)))).astype(np.float32)


def write_pair(store: Store, dry_key: str, wet_key: str, dry: np.ndarray, wet: np.ndarray, rate: int) -> None:
    """Write a dry/wet pair as 24-bit WAV."""
    store.write_bytes(dry_key, encode_wav(dry, rate))
    store.write_bytes(wet_key, encode_wav(wet, rate))


def write_toy_recordings(store: Store, config: Config, seconds: float = 3.0, riff_seconds: float = 0.5) -> None:
    """A training pair and every configured riff, made by the toy pedal."""
    rate = config.recordings.sample_rate
    dry = toy_dry(seconds, rate, seed=1)
    write_pair(store, config.recordings.train.dry, config.recordings.train.wet, dry, toy_pedal(dry), rate)
    for index, riff in enumerate(config.recordings.riffs):
        riff_dry = toy_dry(riff_seconds, rate, seed=100 + index)
        write_pair(
            store,
            riff_dry_key(config.recordings.test_dir, riff),
            riff_wet_key(config.recordings.test_dir, riff),
            riff_dry,
            toy_pedal(riff_dry),
            rate,
        )


# The stateful model's loss and decay before issue 23's measured defaults: plain ESR (no STFT per
# update: the tests that train stay quick) and train.lr_decay.
PLAIN_LOSS = {"lr_decay": None, "pre_emphasis_weight": 0.0, "mrstft_weight": 0.0}
# The stateful model's settings for a few seconds at 8 kHz (its defaults, NAM's 4,096-sample burn-in,
# need a longer recording): the literature's segmentation, plain ESR.
TINY_STATEFUL = {"segment_seconds": 0.5, "warmup_samples": 1000, "tbptt_samples": 2048, "batch_size": 50, **PLAIN_LOSS}


def small_config(store: str, **overrides: object) -> Config:
    """A config for quick tests: two contexts, few pairs, two riffs."""
    data: dict = {
        "store": store,
        "run_id": "test-run",
        "recordings": {"riffs": ["battery", "ohwell"], "sample_rate": 8000},
        "dataset": {"contexts": [8, 16], "pairs": 2000},
        "train": {"epochs": 3, "patience": 2, "batch_size": 64, "lstm_units": 8},
        "model": {"stateful": TINY_STATEFUL},
    }
    for dotted, value in overrides.items():
        section, _, field = dotted.partition("__")
        if field:
            data.setdefault(section, {})[field] = value
        else:
            data[section] = value
    return config_from_mapping(data)


REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block (for in-process code that reads AWS_* settings)."""
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def job_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment for a `python -m sd1job` subprocess: no stray SD1JOB_/AWS_ settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SD1JOB_", "AWS_"))}
    env.update(extra)
    env["PYTHONPATH"] = str(REPO)
    return env


def run_job(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `python -m sd1job ARGS` to completion with ``env``; output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "sd1job", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def user_env(extra: dict[str, str]) -> dict[str, str]:
    """``job_env`` as a user's terminal has it: without the TF_CPP_MIN_LOG_LEVEL the test session sets.

    For runs whose standard error is checked line by line: TensorFlow's own start-up lines must
    be kept off it by sd1job, not by the test's environment.
    """
    env = job_env(extra)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return env


def start_job(args: list[str], env: dict[str, str], **popen: Any) -> subprocess.Popen:
    """Start `python -m sd1job ARGS` with ``env`` and return the process (for tests that kill it)."""
    return subprocess.Popen([sys.executable, "-m", "sd1job", *args], cwd=REPO, env=env, **popen)


# A line sd1job writes to standard error: a log record (cli._setup_logging's format) or the one-line error.
_OWN_STDERR_LINE = re.compile(r"^(\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) sd1job[.\w]*: |error: )")


def foreign_stderr_lines(stderr: str) -> list[str]:
    """The lines of a run's standard error that sd1job did not write (TensorFlow's start-up notices, say)."""
    return [line for line in stderr.splitlines() if not _OWN_STDERR_LINE.match(line)]


def prepare_run(config: Config, config_file: Path, env: dict[str, str], seconds: float = 2.0) -> Path:
    """Write toy recordings and the data stage's datasets for ``config`` (store settings from ``env``)."""
    from sd1job.stages.data import build_datasets
    from sd1job.store import open_store

    with environment(env):
        store = open_store(config.store)
        write_toy_recordings(store, config, seconds=seconds)
        build_datasets(config, store)
    config_file.write_text(config.to_yaml())
    return config_file
