"""Benchmark WaveNet inference: sd1job's numpy block streaming against Keras model.predict of the same model.

All on ONE core (``os.sched_setaffinity``), one TensorFlow thread and one BLAS thread, in one
process, from seeded random weights (the speed does not depend on their values), 48 kHz:

- ``<preset> numpy``: ``WavenetPredictor`` (blocks of ``sd1job.infer.wavenet.DEFAULT_BLOCK`` and the
  other block sizes listed) on 10 s of audio;
- ``<preset> keras``: the baseline, ``predict_signal``: ``model.predict`` of the same
  ``build_wavenet`` model on the whole (zero-padded) signal in chunks of 65,536 outputs.

Reports samples per second, the real-time factor at 48 kHz, FLOPs per output sample
(``sd1job.model.flops_per_sample``), the speed-up over Keras, and the largest difference between the
two outputs (must be <= 1e-5). Target: at least 10x real time for ``standard``. Writes
bench/results/infer_wavenet.json. ``--avx2`` runs every library on its AVX2 code path (results in
infer_wavenet-avx2.json), as a machine without AVX-512 would.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

# One core, one TensorFlow thread, one BLAS thread, fixed before any library starts its pools.
CORE = max(os.sched_getaffinity(0))
os.sched_setaffinity(0, {CORE})
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["TF_NUM_INTRAOP_THREADS"] = "1"
os.environ["TF_NUM_INTEROP_THREADS"] = "1"
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"
# --avx2: numpy, OpenBLAS and oneDNN on their AVX2 code paths, as on a machine without AVX-512, so an
# AVX-512 machine can check that the target holds with margin on the machines it does not have.
AVX2_ONLY = {
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
    "OPENBLAS_CORETYPE": "Haswell",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}
ISA = "avx2" if "--avx2" in sys.argv[1:] else "native"
if ISA == "avx2":
    os.environ.update(AVX2_ONLY)

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import print_table, save_results  # noqa: E402

RATE = 48_000
SECONDS = 10
PRESETS = ("standard", "lite", "feather")
BLOCKS = (256, 1024, 4096)
REPEATS = 3
TOLERANCE = 1e-5
TARGET_REALTIME = 10.0


def best_time(function: Callable[[], np.ndarray], repeats: int = REPEATS) -> tuple[np.ndarray, float]:
    """The result and the best wall time of ``repeats`` runs (the machine is shared: the best is least disturbed)."""
    best, result = float("inf"), np.empty(0)
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return result, best


def row(path: str, samples: int, seconds: float, flops: float) -> dict:
    """One table row: rate, real-time factor and FLOP rate of a path that made ``samples`` outputs in ``seconds``."""
    rate = samples / seconds
    return {
        "path": path,
        "samples": samples,
        "samples_per_s": rate,
        "realtime_x": rate / RATE,
        "flops_per_sample": flops,
        "gflops": rate * flops / 1e9,
    }


def main() -> dict:
    import keras
    import tensorflow as tf

    from sd1job.infer.wavenet import DEFAULT_BLOCK, WavenetPredictor, wavenet_weights_from_model
    from sd1job.model import flops_per_sample
    from sd1job.wavenet_model import build_wavenet, predict_signal
    from sd1job.wavenet_presets import preset_spec

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    samples = SECONDS * RATE
    dry = (0.4 * np.random.default_rng(25).standard_normal(samples)).astype(np.float32)
    rows, presets = [], {}
    for preset in PRESETS:
        keras.utils.set_random_seed(25)
        spec = preset_spec(preset)
        model = build_wavenet(spec)
        weights = wavenet_weights_from_model(model, spec)
        flops = flops_per_sample("wavenet", None, None, preset=preset)
        predict_signal(model, dry[:8192], spec.receptive_field)  # Keras traces its predict function once
        reference, keras_seconds = best_time(lambda m=model, r=spec.receptive_field: predict_signal(m, dry, r), 2)
        keras_row = row(f"{preset} keras", samples, keras_seconds, flops)
        keras_row["max_abs_diff_vs_keras"] = 0.0  # the reference itself
        fastest = None
        for block in BLOCKS:
            predictor = WavenetPredictor(weights, block)
            output, seconds = best_time(lambda p=predictor: p.predict(dry))
            numpy_row = row(f"{preset} numpy block {block}", samples, seconds, flops)
            numpy_row["max_abs_diff_vs_keras"] = float(np.max(np.abs(output - reference)))
            rows.append(numpy_row)
            if block == DEFAULT_BLOCK:
                fastest = numpy_row
        rows.append(keras_row)
        assert fastest is not None
        presets[preset] = {
            "default_block": DEFAULT_BLOCK,
            "realtime_x": fastest["realtime_x"],
            "speedup_vs_keras": fastest["samples_per_s"] / keras_row["samples_per_s"],
            "max_abs_diff_vs_keras": max(r["max_abs_diff_vs_keras"] for r in rows if r["path"].startswith(preset)),
        }
    results = {
        "isa": ISA,
        "load_average": os.getloadavg(),  # the machine is shared: other sessions' load slows every row
        "sample_rate": RATE,
        "core": CORE,
        "rows": rows,
        "presets": presets,
        "meets_target": presets["standard"]["realtime_x"] >= TARGET_REALTIME,
        "outputs_match": all(p["max_abs_diff_vs_keras"] <= TOLERANCE for p in presets.values()),
    }
    code_path = " (AVX2 code paths forced)" if ISA == "avx2" else ""
    print(f"WaveNet inference at batch 1, one core (cpu {CORE}), one TensorFlow and BLAS thread, {RATE} Hz{code_path}")
    print("load average (1, 5, 15 min): " + ", ".join(f"{v:.1f}" for v in results["load_average"]))
    print_table(rows)
    for preset, entry in presets.items():
        print(
            f"{preset}: numpy (block {entry['default_block']}) {entry['realtime_x']:.1f}x real time, "
            f"{entry['speedup_vs_keras']:.1f}x Keras model.predict, largest difference "
            f"{entry['max_abs_diff_vs_keras']:.2e}"
        )
    verdict = "met" if results["meets_target"] else "NOT met"
    margin = presets["standard"]["realtime_x"] / TARGET_REALTIME
    print(f"target >= {TARGET_REALTIME:g}x real time for standard: {verdict} ({margin:.2f}x the target)")
    save_results("infer_wavenet" if ISA == "native" else f"infer_wavenet-{ISA}", results)
    if not results["outputs_match"]:
        raise SystemExit(1)
    return results


if __name__ == "__main__":
    main()
