"""Benchmark streaming inference of the stateful model: sd1job's numba loop against Keras model.predict.

All on ONE core (``os.sched_setaffinity``) with one TensorFlow thread, in one process, from seeded
random LSTM(64) -> Dense weights (the speed does not depend on their values):

- ``stateful numba``: ``StreamingPredictor`` on 10 s of audio at 44.1 kHz, batch 1;
- ``stateful numba gru``: the same for a GRU(64) unit (``model.cell: gru``), whose real-time factor at
  48 kHz is reported beside the LSTM's (``gru``);
- ``stateful keras``: the baseline, ``model.predict`` of the same ``build_stateful_model`` model on
  ``(1, T, 1)`` from zero state (1 s of audio: a recurrence Keras runs step by step);
- ``windowed n=44`` / ``n=440``: the seed's windowed model through its fast path
  (``SlidingWindowPredictor``, XLA, block 4096), n LSTM steps per output sample.

Reports samples per second, the real-time factor at 44.1 kHz, matrix-product FLOPs per output
sample (``sd1job.model.flops_per_sample``) and the rate they make, and the largest difference
between the numba and Keras outputs (must be <= 1e-5, for the GRU too). Target: at least 10x real time for the
numba path. Writes bench/results/infer_stateful.json.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

# One core and one TensorFlow thread, fixed before TensorFlow or numba start their pools.
CORE = max(os.sched_getaffinity(0))
os.sched_setaffinity(0, {CORE})
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["TF_NUM_INTRAOP_THREADS"] = "1"
os.environ["TF_NUM_INTEROP_THREADS"] = "1"

import numpy as np  # noqa: E402  (after the pinning: threads started later inherit the one core)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import print_table, save_results  # noqa: E402

UNITS = 64
RATE = 44100
STREAM_SAMPLES = 10 * RATE
KERAS_SAMPLES = RATE
WINDOWED = {44: 65_536, 440: 8_192}  # context -> output samples
BLOCK = 4096
REPEATS = 3
TOLERANCE = 1e-5
TARGET_REALTIME = 10.0
GRU_RATE = 48000  # the GRU against the LSTM at the rate players run at most often


def best_time(function: Callable[[], np.ndarray], repeats: int = REPEATS) -> tuple[np.ndarray, float]:
    """The result and the best wall time of ``repeats`` runs (the machine is shared: the best is least disturbed)."""
    best, result = float("inf"), np.empty(0)
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return result, best


def row(path: str, samples: int, seconds: float, flops: float, warm_up: float) -> dict:
    """One table row: rate, real-time factor and FLOP rate of a path that made ``samples`` outputs in ``seconds``."""
    rate = samples / seconds
    return {
        "path": path,
        "samples": samples,
        "samples_per_s": rate,
        "realtime_x": rate / RATE,
        "flops_per_sample": flops,
        "gflops": rate * flops / 1e9,
        "warm_up_s": warm_up,
    }


def main() -> dict:
    import keras
    import tensorflow as tf

    from sd1job.infer import stateful, windowed
    from sd1job.infer.weights import weights_from_model
    from sd1job.model import build_model, build_stateful_model, flops_per_sample

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    dry = (0.4 * np.random.default_rng(25).standard_normal(STREAM_SAMPLES)).astype(np.float32)
    keras.utils.set_random_seed(25)
    model = build_stateful_model(UNITS)
    fast = stateful.StreamingPredictor(weights_from_model(model, None, "bench"))
    start = time.perf_counter()
    fast.warm_up()
    warm_up_seconds = time.perf_counter() - start
    start = time.perf_counter()
    stateful.keras_predict_stateful(model, dry[:256])  # Keras traces its predict function once
    keras_warm_up_seconds = time.perf_counter() - start

    streamed, numba_seconds = best_time(lambda: fast.predict(dry))
    reference, keras_seconds = best_time(lambda: stateful.keras_predict_stateful(model, dry[:KERAS_SAMPLES]), 2)
    difference = float(np.max(np.abs(streamed[:KERAS_SAMPLES] - reference)))
    step_flops = flops_per_sample("stateful", None, UNITS)
    rows = [
        row("stateful numba", STREAM_SAMPLES, numba_seconds, step_flops, warm_up_seconds),
        row("stateful keras", KERAS_SAMPLES, keras_seconds, step_flops, keras_warm_up_seconds),
    ]
    for context, samples in WINDOWED.items():
        keras.utils.set_random_seed(25)
        weights = weights_from_model(build_model(context, UNITS), context, "bench")
        sliding = windowed.SlidingWindowPredictor(weights, context, BLOCK)
        start = time.perf_counter()
        sliding.warm_up()
        compile_seconds = time.perf_counter() - start
        _, seconds = best_time(lambda p=sliding, n=samples: p.predict(dry[:n]), 2)
        flops = flops_per_sample("windowed", context, UNITS)
        rows.append(row(f"windowed n={context}", samples, seconds, flops, compile_seconds))

    gru = gru_row(dry)
    rows.insert(1, gru.pop("row"))
    numba_row, keras_row = rows[0], rows[2]
    results = {
        "units": UNITS,
        "sample_rate": RATE,
        "core": CORE,
        "tf_threads": {
            "intra": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter": tf.config.threading.get_inter_op_parallelism_threads(),
        },
        "rows": rows,
        "speedup_vs_keras": numba_row["samples_per_s"] / keras_row["samples_per_s"],
        "numba_realtime_x": numba_row["realtime_x"],
        "meets_target": numba_row["realtime_x"] >= TARGET_REALTIME,
        "max_abs_diff_vs_keras": difference,
        "outputs_match": difference <= TOLERANCE and gru["max_abs_diff_vs_keras"] <= TOLERANCE,
        "gru": gru
        | {
            "lstm_realtime_x_48k": numba_row["samples_per_s"] / GRU_RATE,
            "gru_over_lstm_speed": gru["realtime_x_48k"] * GRU_RATE / numba_row["samples_per_s"],
        },
    }
    print(f"stateful LSTM({UNITS}) streaming at batch 1, one core (cpu {CORE}), one TensorFlow thread")
    print_table(rows)
    print(summary(results))
    print(
        f"GRU({UNITS}) numba: {results['gru']['realtime_x_48k']:.1f}x real time at {GRU_RATE} Hz against the "
        f"LSTM's {results['gru']['lstm_realtime_x_48k']:.1f}x ({results['gru']['gru_over_lstm_speed']:.2f}x its "
        f"speed); largest difference from Keras {results['gru']['max_abs_diff_vs_keras']:.2e}"
    )
    save_results("infer_stateful", results)
    if not results["outputs_match"]:
        raise SystemExit(1)
    return results


def gru_row(dry: np.ndarray) -> dict:
    """The GRU unit's numba stream: its table row, its real-time factor at 48 kHz and its difference from Keras."""
    import keras

    from sd1job.infer import stateful
    from sd1job.infer.weights import weights_from_model
    from sd1job.model import build_stateful_model, flops_per_sample

    keras.utils.set_random_seed(25)
    model = build_stateful_model(UNITS, "gru")
    fast = stateful.StreamingPredictor(weights_from_model(model, None, "bench"))
    start = time.perf_counter()
    fast.warm_up()
    warm_up_seconds = time.perf_counter() - start
    streamed, seconds = best_time(lambda: fast.predict(dry))
    reference = stateful.keras_predict_stateful(model, dry[:KERAS_SAMPLES])
    flops = flops_per_sample("stateful", None, UNITS, cell="gru")
    return {
        "row": row("stateful numba gru", len(dry), seconds, flops, warm_up_seconds),
        "realtime_x_48k": len(dry) / seconds / GRU_RATE,
        "max_abs_diff_vs_keras": float(np.max(np.abs(streamed[:KERAS_SAMPLES] - reference))),
    }


def summary(results: dict) -> str:
    """The one-line verdict: real-time factor against the target, speed-up, output agreement."""
    verdict = "met" if results["meets_target"] else "NOT met"
    agreement = "ok" if results["outputs_match"] else "FAIL"
    return (
        f"numba: {results['numba_realtime_x']:.1f}x real time at {RATE} Hz (target >= {TARGET_REALTIME:g}x: "
        f"{verdict}), {results['speedup_vs_keras']:.0f}x Keras model.predict; largest difference "
        f"{results['max_abs_diff_vs_keras']:.2e} ({agreement}, tolerance {TOLERANCE:g})"
    )


if __name__ == "__main__":
    main()
