"""A scored run without training: the toy pedal's riffs, and per unit an output that is the pedal plus noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sd1job.audio import decode_wav, encode_wav
from sd1job.config import Config
from sd1job.layout import RunLayout, riff_wet_key
from sd1job.store import LocalStore
from tests.helpers import small_config, write_toy_recordings

RIFF_SECONDS = 1.0
# Noise level of each arm's outputs relative to the pedal's RMS: c8 is clearly audible, c16 barely.
NOISE = {"c8": 0.3, "c16": 0.001}


def scored_run(root: Path, **overrides: object) -> Config:
    """Two arms x two seeds, each unit 'scored' (outputs and a scores.json with ESR rows)."""
    config = small_config(str(root / "store"), train__repeats=2, **overrides)
    store = LocalStore(config.store)
    write_toy_recordings(store, config, seconds=1.0, riff_seconds=RIFF_SECONDS)
    layout = RunLayout(config.run_id)
    rate = config.recordings.sample_rate
    for unit in config.units():
        rng = np.random.default_rng(unit.seed * 100 + (unit.context or 0))
        rows = []
        for riff in config.recordings.riffs:
            wet = decode_wav(store.read_bytes(riff_wet_key(config.recordings.test_dir, riff)), "wet").samples
            level = NOISE[unit.arm] * (1 + 0.1 * (unit.seed % 2)) * float(np.sqrt(np.mean(wet**2)))
            output = np.clip(wet + level * rng.standard_normal(wet.size), -1, 1).astype(np.float32)
            store.write_bytes(layout.unit_output(unit, riff), encode_wav(output, rate))
            rows.append({"riff": riff, "esr": float(np.sum((output - wet) ** 2) / np.sum(wet**2))})
        store.write_json(layout.scores(unit), {"unit": unit.name, "rows": rows})
    return config
