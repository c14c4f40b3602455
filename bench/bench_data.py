"""Benchmark the data stage: all ten seed contexts from three minutes of audio.

Measures the data stage as built (window positions plus the audio once) against the seed's way
(materialised (pairs x n) float32 arrays per context, pickled), in the same process: wall time and
peak traced memory. Target: under 2 s, and peak memory independent of the context size.
"""

from __future__ import annotations

import pickle
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import print_table, save_results, timed_peak
from sd1job.audio import encode_wav
from sd1job.config import config_from_mapping
from sd1job.dataset import gather_windows, load_training_audio, make_split
from sd1job.layout import RunLayout
from sd1job.stages.data import build_datasets
from sd1job.store import LocalStore

SECONDS = 180
RATE = 44100


def write_recordings(store: LocalStore, config) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    dry = (0.3 * np.sin(np.cumsum(rng.uniform(0.01, 0.1, SECONDS * RATE))) * rng.uniform(0.2, 1.0)).astype(np.float32)
    dry += 0.001 * rng.standard_normal(len(dry)).astype(np.float32)
    wet = np.tanh(4 * dry).astype(np.float32) * 0.5
    store.write_bytes(config.recordings.train.dry, encode_wav(dry, RATE))
    store.write_bytes(config.recordings.train.wet, encode_wav(wet, RATE))
    short = dry[: RATE // 2]
    for riff in config.recordings.riffs:
        store.write_bytes(f"recordings/test/Dry/d_{riff}.wav", encode_wav(short, RATE))
        store.write_bytes(f"recordings/test/Wet/w_{riff}.wav", encode_wav(np.tanh(4 * short) * 0.5, RATE))


def seed_way(store: LocalStore, config, directory: Path) -> int:  # type: ignore[no-untyped-def]
    """Materialise and pickle every context's arrays, as the seed pipeline did."""
    dry, wet = load_training_audio(store, RunLayout(config.run_id))
    total = 0
    for context in config.dataset.contexts:
        split = make_split("random", len(dry), context, config.dataset.pairs, 0.25, config.dataset.seed)
        arrays = {
            "x_train": gather_windows(dry, split.train, context),
            "y_train": wet[split.train],
            "x_val": gather_windows(dry, split.val, context),
            "y_val": wet[split.val],
        }
        data = pickle.dumps(arrays, protocol=pickle.HIGHEST_PROTOCOL)
        (directory / f"c{context}.pkl").write_bytes(data)
        total += len(data)
    return total


def main() -> dict:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalStore(Path(tmp) / "store")
        config = config_from_mapping({"store": str(store.root)})
        write_recordings(store, config)
        _, seconds, peak = timed_peak(lambda: build_datasets(config, store, force=True))
        rows.append({"method": "positions (sd1job)", "contexts": 10, "seconds": seconds, "peak_MiB": peak})
        per_context = []
        for context in (44, 440):
            single = config_from_mapping({"store": str(store.root), "dataset": {"contexts": [context]}})
            _, s, p = timed_peak(lambda single=single: build_datasets(single, store, force=True))
            per_context.append({"context": context, "seconds": s, "peak_MiB": p})
        out = Path(tmp) / "pickles"
        out.mkdir()
        size, seed_seconds, seed_peak = timed_peak(lambda: seed_way(store, config, out))
        rows.append({"method": "materialised (seed)", "contexts": 10, "seconds": seed_seconds, "peak_MiB": seed_peak})
        stored = sum(p.stat().st_size for p in (store.root / "runs").rglob("*") if p.is_file())
    print(f"data stage, {SECONDS} s of 44.1 kHz audio, 100,000 pairs per context")
    print_table(rows)
    print("peak memory by context (one context per run):")
    print_table(per_context)
    results = {
        "rows": rows,
        "per_context": per_context,
        "stored_bytes_positions": stored,
        "stored_bytes_seed_pickles": size,
        "speedup_vs_seed": seed_seconds / rows[0]["seconds"],
        "memory_ratio_seed_over_positions": seed_peak / rows[0]["peak_MiB"],
    }
    print(
        f"speed-up vs seed: {results['speedup_vs_seed']:.1f}x; peak memory ratio: "
        f"{results['memory_ratio_seed_over_positions']:.1f}x; stored {stored / 2**20:.0f} MiB vs {size / 2**20:.0f} MiB"
    )
    save_results("data", results)
    return results


if __name__ == "__main__":
    main()
