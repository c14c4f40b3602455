"""Benchmark sliding-window inference: sd1job.infer's fast path against Keras model.predict.

Both predict every zero-padded window of the same signal with the same LSTM(64) -> Dense model
(seeded random weights; the speed does not depend on their values), in the same process. Reports
windows per second, the speed-up, the largest output difference (must be <= 1e-5) and the fast
path's matrix-product rate as a fraction of numpy's float32 matmul GFLOP/s measured here.
Target: at least 2x model.predict at n = 440.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import matmul_gflops, print_table, save_results

UNITS = 64
PREDICT_BATCH = 4096  # the eval stage's default block (config.eval.batch_size), also model.predict's batch
CASES = {44: 65_536, 440: 8_192}  # context -> windows predicted
BLOCKS = (1024, 4096)
REPEATS = 3
TOLERANCE = 1e-5


def timed(function: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    """The result and the wall time of one run."""
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def main() -> dict:
    import keras

    from sd1job.infer import windowed
    from sd1job.infer.weights import weights_from_model
    from sd1job.model import build_model

    gflops_start = matmul_gflops()
    rows = []
    for context, windows in CASES.items():
        keras.utils.set_random_seed(25)
        model = build_model(context, UNITS)
        dry = (0.4 * np.random.default_rng(context).standard_normal(windows)).astype(np.float32)
        model.predict(windowed.padded_windows(dry[:256], context)[..., None], batch_size=PREDICT_BATCH, verbose=0)
        weights = weights_from_model(model, context, "bench")
        flops_per_window = context * 2 * (UNITS + 1) * 4 * UNITS  # the LSTM step's matrix products
        predictors, compile_seconds = {}, {}
        for block in BLOCKS:
            predictors[block] = windowed.SlidingWindowPredictor(weights, context, block)
            _, compile_seconds[block] = timed(predictors[block].warm_up)
        # interleaved repeats, best of each: the machine is shared, so its load drifts
        keras_seconds, fast_seconds, outputs = float("inf"), dict.fromkeys(BLOCKS, float("inf")), {}
        for _ in range(REPEATS):
            reference, seconds = timed(lambda m=model, d=dry, c=context: windowed.keras_predict(m, d, c, PREDICT_BATCH))
            keras_seconds = min(keras_seconds, seconds)
            for block, predictor in predictors.items():
                outputs[block], seconds = timed(lambda p=predictor, d=dry: p.predict(d))
                fast_seconds[block] = min(fast_seconds[block], seconds)
        for block in BLOCKS:
            rate = windows / fast_seconds[block]
            rows.append(
                {
                    "context": context,
                    "block": block,
                    "windows": windows,
                    "predict_w_per_s": windows / keras_seconds,
                    "fast_w_per_s": rate,
                    "speedup": keras_seconds / fast_seconds[block],
                    "max_abs_diff": float(np.max(np.abs(outputs[block] - reference))),
                    "fast_gflops": rate * flops_per_window / 1e9,
                    "compile_s": compile_seconds[block],
                }
            )
    gflops = max(gflops_start, matmul_gflops())  # best of before and after: the machine is shared
    for row in rows:
        row["fraction_of_matmul"] = row["fast_gflops"] / gflops
    print(f"sliding-window inference, LSTM({UNITS}), model.predict batch {PREDICT_BATCH}")
    print(f"numpy float32 matmul (1024^3): {gflops:.0f} GFLOP/s")
    print_table(rows)
    worst = max(row["max_abs_diff"] for row in rows)
    default = [row for row in rows if row["block"] == PREDICT_BATCH]
    results = {
        "matmul_gflops": gflops,
        "rows": rows,
        "max_abs_diff": worst,
        "outputs_match": worst <= TOLERANCE,
        "speedup_n440_default_block": next(r["speedup"] for r in default if r["context"] == 440),
        "speedup_n44_default_block": next(r["speedup"] for r in default if r["context"] == 44),
        "tf_threads": {
            "intra": os.environ.get("TF_NUM_INTRAOP_THREADS"),
            "inter": os.environ.get("TF_NUM_INTEROP_THREADS"),
        },
    }
    print(
        f"default block {PREDICT_BATCH}: {results['speedup_n44_default_block']:.2f}x model.predict at n=44, "
        f"{results['speedup_n440_default_block']:.2f}x at n=440 (target >= 2x); "
        f"largest difference {worst:.2e} ({'ok' if results['outputs_match'] else 'FAIL'}, tolerance {TOLERANCE:g})"
    )
    save_results("infer", results)
    if not results["outputs_match"]:
        raise SystemExit(1)
    return results


if __name__ == "__main__":
    main()
