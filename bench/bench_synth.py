"""Benchmark the demo-data generator: the virtual SD-1 (fast vs reference solver) and the whole set.

Prints a small table and writes bench/results/synth.json. Targets: the pedal at 8x oversampling
at least 50x real time on one core (1 s of 44.1 kHz audio in <= 20 ms); the whole demo set
(3 min of training audio plus six 8 s riffs, written as WAV) in under 15 s. The baseline, the
reference (Newton) solver, is measured in the same run on a shorter excerpt of the same audio.

Usage: .venv/bin/python bench/bench_synth.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from sd1job.config import config_from_mapping
from sd1job.store import LocalStore
from sd1job.synth import capture, pedal

RATE = 44100
RESULTS = Path(__file__).resolve().parent / "results" / "synth.json"


def best_of(repeats: int, action) -> float:  # type: ignore[no-untyped-def]
    """Fastest wall time of ``repeats`` runs (the least disturbed by other processes)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter audio (a smoke run, not the figures)")
    args = parser.parse_args()
    pedal_seconds, reference_seconds, demo_seconds = (2.0, 0.1, 20.0) if args.quick else (10.0, 0.5, 180.0)

    guitar = capture.varied_playing(pedal_seconds, RATE, np.random.default_rng(1))
    fast = pedal.VirtualSD1(sample_rate=RATE)
    reference = pedal.VirtualSD1(sample_rate=RATE, solver="reference")
    fast.process(guitar[: RATE // 10])  # compile (or load) the numba kernel and build the table
    fast_time = best_of(3, lambda: fast.process(guitar)) / pedal_seconds
    excerpt = guitar[: int(reference_seconds * RATE)]
    reference_time = best_of(1, lambda: reference.process(excerpt)) / reference_seconds
    agreement = float(
        np.sum((fast.process(excerpt) - reference.process(excerpt)) ** 2) / np.sum(reference.process(excerpt) ** 2)
    )

    config = config_from_mapping({})
    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        capture.write_demo_recordings(LocalStore(directory), config, seconds=demo_seconds, riff_seconds=8.0)
        demo_time = time.perf_counter() - started
        started = time.perf_counter()
        capture.write_demo_recordings(LocalStore(directory), config, seconds=8.0, riff_seconds=1.0, force=True)
        small_time = time.perf_counter() - started

    results = {
        "sample_rate": RATE,
        "oversample": pedal.OVERSAMPLE,
        "pedal_fast_ms_per_audio_second": round(fast_time * 1e3, 2),
        "pedal_fast_x_realtime": round(1.0 / fast_time, 1),
        "pedal_reference_ms_per_audio_second": round(reference_time * 1e3, 1),
        "fast_vs_reference_speedup": round(reference_time / fast_time, 1),
        "fast_vs_reference_esr": agreement,
        "demo_set_seconds": round(demo_time, 2),
        "demo_set_training_seconds": demo_seconds,
        "small_set_seconds": round(small_time, 2),
        "quick": args.quick,
    }
    rows = [
        ("pedal, fast solver (8x)", f"{fast_time * 1e3:.1f} ms per audio second", f"{1 / fast_time:.0f}x real time"),
        ("pedal, reference solver (8x)", f"{reference_time * 1e3:.0f} ms per audio second", "baseline"),
        ("fast vs reference", f"{reference_time / fast_time:.0f}x faster", f"ESR {agreement:.1e}"),
        (f"demo set ({demo_seconds:.0f} s + 6 x 8 s)", f"{demo_time:.1f} s", "target < 15 s"),
        ("small set (8 s + 6 x 1 s)", f"{small_time:.2f} s", "for tests"),
    ]
    for row in rows:
        print(f"{row[0]:<34} {row[1]:>28}   {row[2]}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
