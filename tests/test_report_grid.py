"""A grid's report: a column per axis, the context analysis within each arm, and the factorial answer."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from sd1job import cli
from sd1job.layout import RESULTS_CSV, RESULTS_JSON, SUMMARY_CSV, RunLayout
from sd1job.store import LocalStore
from tests.test_evaluate import config_file, make_run

AXIS = "train.learning_rate"


def test_a_grid_report_has_axis_columns_per_arm_statistics_and_a_factorial_answer(tmp_path: Path) -> None:
    config = make_run(tmp_path, train__repeats=2, sweep={"grid": {AXIS: [0.01, 0.001]}})
    assert [u.name for u in config.units()][:2] == ["lr0.01-c4-s25", "lr0.01-c4-s26"]
    path = config_file(config, tmp_path)
    assert cli.main(["eval", "-q", "--config", path]) == 0
    assert cli.main(["report", "-q", "--config", path]) == 0
    store = LocalStore(config.store)
    layout = RunLayout(config.run_id)
    rows = list(csv.DictReader(io.StringIO(store.read_text(layout.eval_file(RESULTS_CSV)))))
    assert list(rows[0])[:2] == ["unit", AXIS] and {r[AXIS] for r in rows} == {"0.01", "0.001"}
    summary = list(csv.DictReader(io.StringIO(store.read_text(layout.eval_file(SUMMARY_CSV)))))
    assert [r["arm"] for r in summary] == ["lr0.01-c4", "lr0.01-c12", "lr0.001-c4", "lr0.001-c12"]
    assert all(r["esr_low"] and r["esr_high"] for r in summary)  # each arm's interval, from its own analysis
    statistics = json.loads(store.read_text(layout.eval_file(RESULTS_JSON)))["statistics"]
    assert set(statistics["combinations"]) == {"lr0.01", "lr0.001"}
    terms = {t["term"] for t in statistics["factorial"]["terms"]}
    assert AXIS in terms and "context" in terms
    assert any(s.startswith(f"At {AXIS} 0.01: ") for s in statistics["verdict"])
    assert statistics["verdict"][0] == statistics["factorial"]["verdict"][0]
    for name in ("factorial_effects", "factorial_means"):
        assert store.read_bytes(layout.eval_file(f"{name}.png")).startswith(b"\x89PNG")
