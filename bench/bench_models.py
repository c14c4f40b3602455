"""The stateful model against the windowed one at n=44 and n=440: test ESR, training time, real-time factor.

Same run, same demo data (the built-in synthetic guitar through the virtual SD-1, 1-second riffs),
same budget of training time per unit (``SD1JOB_BENCH_BUDGET`` seconds, default 240; the unit
stops after the epoch that uses it, or earlier by early stopping), one sweep with ``--jobs 2``:
``python bench/bench_models.py``. Writes ``bench/results/models.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import print_table, save_results  # noqa: E402

BUDGET = float(os.environ.get("SD1JOB_BENCH_BUDGET", "240"))


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="sd1job-bench-models-") as tmp:
        config = {
            "store": str(Path(tmp) / "store"),
            "run_id": "models",
            "dataset": {"contexts": [44, 440], "pairs": 12000},
            "model": {"kind": ["windowed", "stateful"]},
            "train": {
                "learning_rate": 0.006,
                "lr_decay": 0.9,
                "clipnorm": 1.0,
                "epochs": 1000,
                "patience": 5,
                "max_train_seconds": BUDGET,
            },
        }
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        python = [sys.executable, "-m", "sd1job"]
        subprocess.run([*python, "synth", "-q", "--config", str(path), "--riff-seconds", "1"], cwd=REPO, check=True)
        subprocess.run([*python, "sweep", "-q", "--config", str(path), "--jobs", "2"], cwd=REPO, check=True)
        results = json.loads((Path(tmp) / "store" / "runs" / "models" / "eval" / "results.json").read_text())
    rows = [
        {
            "arm": entry["arm"],
            "test_esr": entry["esr"],
            "esr_pre": entry["esr_pre"],
            "stft": entry["stft"],
            "epochs": entry["epochs_run"],
            "seconds_per_epoch": entry["seconds_per_epoch"],
            "train_seconds": next(r["train_seconds"] for r in results["rows"] if r["unit"].startswith(entry["arm"])),
            "realtime_factor": entry["realtime_factor"],
            "flops_per_sample": entry["flops_per_sample"],
        }
        for entry in results["summary"]
    ]
    print(f"training budget {BUDGET:g} s per unit; eval on 6 one-second riffs, two units at a time")
    print_table(rows)
    save_results("models", {"budget_seconds": BUDGET, "rows": rows, "verdict": results["statistics"]["verdict"]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
