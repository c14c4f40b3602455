"""Benchmark the train stage's throughput against the seed's way, measured in the same run.

Baseline (the seed's way): ``model.fit`` on materialised (windows x n x 1) numpy arrays, Keras'
defaults (no XLA on a CPU-only machine, TensorFlow's default thread pools). Ours: the train
stage's default configuration, through its own code (``configure_runtime``, ``window_dataset``,
``compiled_model``): XLA plus 1/1 threads on CPU, windows gathered on the fly. Two ablations at
n=440 show where the gain comes from. Each measurement runs in a fresh process, because thread
settings are fixed once TensorFlow's runtime starts.

Reported per row: training windows/s (the best measured epoch, after one warm-up epoch that pays
for tracing and XLA compilation; the comparison cases run in alternating rounds and keep their
best, since the machine is shared), achieved GFLOP/s of the gate matrix products
(n x 2 x (1+units) x 4 units per window, x3 for training) and the fraction of numpy's float32
matmul rate measured in this run, windows per CPU-second (what the run costs on a shared machine);
plus microseconds per window per time step across n, which
must not grow with n (time per epoch at most linear in n). Target: ours >= 2x baseline at n=440.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench.common import matmul_gflops, print_table, save_results
from sd1job.model import flops_per_sample

UNITS = 64
BATCH = 64
MEASURED_EPOCHS = 2
ROUNDS = 2  # the comparison cases run this many times, alternating, best kept (the machine is shared)
RATE = 44100
SECONDS_OF_AUDIO = 30
# (variant, context): the comparison, the ablations, and the scaling series.
COMPARISON = [("baseline", 44), ("ours", 44), ("baseline", 440), ("ours", 440)]
EXTRA = [
    ("xla_default_threads", 440),
    ("no_xla_1_1_threads", 440),
    ("ours", 110),
    ("ours", 220),
]
VARIANTS = {
    # name: (jit_compile, train.threads, input pipeline)
    "baseline": (None, None, "numpy"),
    "ours": (True, 0, "gather"),
    "xla_default_threads": (True, None, "gather"),
    "no_xla_1_1_threads": (False, 0, "gather"),
}


def windows_for(context: int) -> int:
    """Training windows per epoch: about 4e5 / n (one to five seconds an epoch), whole batches, at least 40."""
    return max(40 * BATCH, BATCH * round(400_000 / context / BATCH))


def step_matmul_gflops(repeats: int = 2000) -> float:
    """numpy float32 rate at the shape of one batch-64 LSTM step's gate product: (64 x 65) @ (65 x 256)."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((BATCH, 1 + UNITS), dtype=np.float32)
    b = rng.standard_normal((1 + UNITS, 4 * UNITS), dtype=np.float32)
    a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2.0 * BATCH * (1 + UNITS) * 4 * UNITS * repeats / (time.perf_counter() - started) / 1e9


def child(variant: str, context: int) -> dict[str, Any]:
    """Measure one (variant, context) in this process; return its numbers."""
    import numpy as np

    jit, threads, pipeline = VARIANTS[variant]
    from sd1job import training  # imports TensorFlow (no op created yet)

    runtime = {}
    if threads is not None:
        runtime = training.configure_runtime(threads, bool(jit))
    import keras

    from sd1job.dataset import gather_windows
    from sd1job.model import build_model

    rng = np.random.default_rng(0)
    dry = (0.3 * np.sin(np.cumsum(rng.uniform(0.01, 0.1, SECONDS_OF_AUDIO * RATE)))).astype(np.float32)
    wet = np.tanh(3 * dry).astype(np.float32)
    count = windows_for(context)
    positions = rng.choice(np.arange(context - 1, len(dry)), size=count, replace=False).astype(np.int64)
    keras.utils.set_random_seed(25)
    epoch_seconds: list[float] = []
    cpu_seconds: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.started, self.cpu = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            epoch_seconds.append(time.perf_counter() - self.started)
            cpu_seconds.append(time.process_time() - self.cpu)

    epochs = 1 + MEASURED_EPOCHS
    if pipeline == "numpy":
        model = build_model(context, UNITS, 0.001)  # Keras' defaults: no XLA on CPU
        x = gather_windows(dry, positions, context)[..., None]
        y = wet[positions][:, None]
        model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=True, callbacks=[Timer()], verbose=0)
    else:
        model = build_model(context, UNITS, 0.001)
        model.jit_compile = bool(jit)
        data = training.window_dataset(dry, wet, positions, context, BATCH, shuffle_seed=25, epochs=(0, epochs))
        steps = math.ceil(count / BATCH)
        model.fit(data, epochs=epochs, steps_per_epoch=steps, shuffle=False, callbacks=[Timer()], verbose=0)
    import tensorflow as tf

    best = 1 + min(range(len(epoch_seconds) - 1), key=lambda i: epoch_seconds[1 + i])
    seconds = epoch_seconds[best]
    return {
        "variant": variant,
        "context": context,
        "windows": count,
        "warmup_seconds": epoch_seconds[0],
        "epoch_seconds": seconds,
        "windows_per_second": count / seconds,
        "cpu_seconds_per_wall_second": cpu_seconds[best] / seconds,
        "windows_per_cpu_second": count / cpu_seconds[best],
        "jit_compile": bool(model.jit_compile),
        "intra_op_threads": runtime.get("intra_op_threads", tf.config.threading.get_intra_op_parallelism_threads()),
        "inter_op_threads": runtime.get("inter_op_threads", tf.config.threading.get_inter_op_parallelism_threads()),
    }


def run_case(variant: str, context: int) -> dict[str, Any]:
    """Run one case in a fresh interpreter; its last stdout line is the JSON result."""
    return run_concurrently(variant, context, 1)[0]


def run_concurrently(variant: str, context: int, processes: int) -> list[dict[str, Any]]:
    """Run ``processes`` copies of one case at the same time (as `sweep --jobs N` does); their results."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--child", variant, str(context)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        for _ in range(processes)
    ]
    outputs = [child.communicate()[0] for child in children]
    if any(child.returncode for child in children):
        raise RuntimeError(f"a benchmark child for {variant} n={context} failed")
    return [json.loads(output.strip().splitlines()[-1]) for output in outputs]


def main() -> int:
    started = time.perf_counter()
    matmul = matmul_gflops(2048, repeats=10)
    step_matmul = step_matmul_gflops()
    results: dict[tuple[str, int], dict[str, Any]] = {}
    for variant, context in COMPARISON * ROUNDS + EXTRA:
        result = run_case(variant, context)
        previous = results.get((variant, context))
        result["runs"] = 1 + (previous["runs"] if previous else 0)
        if previous is None or result["windows_per_second"] > previous["windows_per_second"]:
            results[(variant, context)] = result
        else:
            previous["runs"] = result["runs"]
        print(f"  {variant:>20} n={context:<4} {result['windows_per_second']:9.0f} windows/s", flush=True)
    for (_, context), result in results.items():
        result["gflops"] = (
            result["windows_per_second"] * flops_per_sample("windowed", context, UNITS, training=True) / 1e9
        )
        result["fraction_of_matmul"] = result["gflops"] / matmul
        result["us_per_window_step"] = 1e6 / result["windows_per_second"] / context

    def rate(variant: str, context: int) -> float:
        return results[(variant, context)]["windows_per_second"]

    speedup = {str(n): rate("ours", n) / rate("baseline", n) for n in (44, 440)}
    # What the local sweep gets from the spare core: one single-threaded trainer per core.
    cores = os.cpu_count() or 1
    together = run_concurrently("ours", 440, cores)
    sweep_rate = sum(r["windows_per_second"] for r in together)
    sweep_ratio = sweep_rate / rate("baseline", 440)
    efficiency = {
        str(n): results[("ours", n)]["windows_per_cpu_second"] / results[("baseline", n)]["windows_per_cpu_second"]
        for n in (44, 440)
    }
    ours = sorted((r for r in results.values() if r["variant"] == "ours"), key=lambda r: r["context"])
    # Time per epoch grows at most linearly in n iff time per window per step does not grow with n.
    growth = ours[-1]["us_per_window_step"] / ours[0]["us_per_window_step"]
    print_table(
        [
            {
                "variant": r["variant"],
                "n": r["context"],
                "windows/s": round(r["windows_per_second"]),
                "GFLOP/s": r["gflops"],
                "% of matmul": 100 * r["fraction_of_matmul"],
                "us/window/step": r["us_per_window_step"],
                "windows/CPU-s": round(r["windows_per_cpu_second"]),
                "cores busy": r["cpu_seconds_per_wall_second"],
                "XLA": r["jit_compile"],
                "threads": f"{r['intra_op_threads']}/{r['inter_op_threads']}",
                "warm-up s": r["warmup_seconds"],
                "runs": r["runs"],
            }
            for r in results.values()
        ]
    )
    print(f"numpy float32 matmul: {matmul:.0f} GFLOP/s at 2048^2, {step_matmul:.0f} at one LSTM step (64x65 @ 65x256)")
    print(f"speed-up ours / baseline: n=44 {speedup['44']:.2f}x, n=440 {speedup['440']:.2f}x (target >= 2x at 440)")
    print(f"windows per CPU-second ours / baseline: n=44 {efficiency['44']:.2f}x, n=440 {efficiency['440']:.2f}x")
    print(
        f"{cores} single-threaded trainers at once, n=440: {sweep_rate:.0f} windows/s together, "
        f"{sweep_ratio:.2f}x one baseline trainer"
    )
    print(f"time per window per step, n={ours[-1]['context']} vs n={ours[0]['context']}: {growth:.2f}x (<= ~1: linear)")
    path = save_results(
        "train",
        {
            "numpy_matmul_gflops": matmul,
            "numpy_step_matmul_gflops": step_matmul,
            "cases": list(results.values()),
            "speedup_vs_baseline": speedup,
            "cpu_efficiency_vs_baseline": efficiency,
            "per_step_time_growth_440_vs_44": growth,
            "concurrent_trainers_440": {
                "processes": cores,
                "windows_per_second": sweep_rate,
                "vs_baseline": sweep_ratio,
            },
            "target_met_440": speedup["440"] >= 2.0,
            "seconds": time.perf_counter() - started,
        },
    )
    print(f"wrote {path} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], int(sys.argv[3]))))
        raise SystemExit(0)
    raise SystemExit(main())
