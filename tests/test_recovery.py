"""A training run that diverges is caught while it happens, rolled back at a lower learning rate, and, when it
still fails, reported as a failure by name: never folded into the seed noise of its arm."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sd1job import cli
from sd1job.layout import RESULTS_JSON, SUMMARY_CSV, RunLayout
from sd1job.store import LocalStore
from sd1job.units import Unit
from tests.test_evaluate import config_file, make_run
from tests.test_train import UNIT, load_weights, make_config, prepare

ABSURD_LEARNING_RATE = 50.0


def train_with(root: Path, drive: float = 3.0, **train: Any) -> dict[str, Any]:
    from sd1job.stages.train import train_unit

    config, store = prepare(make_config(root, **train), drive)
    return train_unit(config, store, UNIT) | {"_store": store, "_config": config}


@pytest.fixture(scope="module")
def diverged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A planted divergence: a learning rate no model survives, halved three times and still absurd."""
    return train_with(tmp_path_factory.mktemp("absurd") / "store", learning_rate=ABSURD_LEARNING_RATE, epochs=4)


def test_a_planted_divergence_is_caught_rolled_back_three_times_then_stopped_as_diverged(
    diverged: dict[str, Any],
) -> None:
    assert diverged["stop_reason"] == "diverged" and diverged["outcome"] == "diverged"
    assert diverged["failed_to_learn"] is True
    recoveries = diverged["recoveries"]
    assert len(recoveries) == 3  # train.max_recoveries, its default
    assert [r["learning_rate"] for r in recoveries] == pytest.approx([ABSURD_LEARNING_RATE * 0.5**k for k in (1, 2, 3)])
    for record in recoveries:
        assert record["rule"] in {"non_finite", "loss_explosion", "loss_spike"}
        assert record["epoch"] >= 1 and record["step"] >= 1  # caught inside the epoch, not at its end
    # The model it leaves behind is finite (the last good state), so eval can still score and show it.
    weights = load_weights(diverged["_store"], diverged["_config"])
    assert all(np.all(np.isfinite(w)) for w in weights)


def test_the_same_config_on_the_same_machine_gives_the_same_recoveries(
    diverged: dict[str, Any], tmp_path: Path
) -> None:
    again = train_with(tmp_path / "store", learning_rate=ABSURD_LEARNING_RATE, epochs=4)

    def where(history: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [(r["epoch"], r["step"], r["rule"], r["learning_rate"]) for r in history["recoveries"]]

    assert where(again) == where(diverged)


def test_a_learning_rate_a_little_too_high_recovers_and_learns(tmp_path: Path) -> None:
    # A harder clipper than the default pair's: a wire with a gain knob scores 0.17 on it, not 0.02.
    history = train_with(tmp_path / "store", drive=10.0, learning_rate=1.0, epochs=5, patience=5)
    assert history["recoveries"], "lr 1.0 should trip the guard on this pair"
    assert history["outcome"] == "learned" and history["stop_reason"] != "diverged"
    assert history["learning_rate_scale"] == pytest.approx(0.5 ** len(history["recoveries"]))
    assert history["best_val_loss"] < 0.8 * history["reference_val_esr"]
    assert all(math.isfinite(e["loss"]) for e in history["epochs"])


def test_a_diverged_unit_among_three_seeds_is_named_first_and_left_out_of_its_arm(
    diverged: dict[str, Any], tmp_path: Path
) -> None:
    """Three seeds of c4 and c12: c4-s27 is the really diverged model above; the report says so at the top."""
    failed = Unit("windowed", 4, 27)
    config = make_run(tmp_path, train__repeats=3, trained=None)
    store = LocalStore(config.store)
    layout = RunLayout(config.run_id)
    history = {k: v for k, v in diverged.items() if not k.startswith("_")}
    history.update(unit=failed.name, context=4, seed=27)
    store.write_json(layout.history(failed), history)
    path = config_file(config, tmp_path)
    assert cli.main(["eval", "-q", "--config", path]) == 0
    assert store.read_json(layout.scores(failed))["training"]["outcome"] == "diverged"
    assert cli.main(["report", "-q", "--config", path]) == 0
    results = json.loads(store.read_text(layout.eval_file(RESULTS_JSON)))
    statistics = results["statistics"]
    first = statistics["verdict"][0]
    assert first.startswith("1 of 6 models failed to train and was left out of every interval, test and fit")
    assert "c4-s27 diverged" in first
    assert statistics["verdict"][1] == "So c4 on 2 of 3 seeds."
    c4 = next(a for a in statistics["arms"] if a["arm"] == "c4")
    assert c4["seeds"] == [25, 26] and c4["failed"] == ["c4-s27"] and c4["interval"]["n"] == 2
    assert not any(o["unit"] == "c4-s27" for o in statistics["outliers"])
    rows = [r for r in results["rows"] if r["unit"] == "c4-s27"]
    assert rows and {r["outcome"] for r in rows} == {"diverged"}
    summary = store.read_text(layout.eval_file(SUMMARY_CSV)).splitlines()
    header = summary[0].split(",")
    c4_row = dict(zip(header, next(line for line in summary if line.startswith("c4,")).split(","), strict=True))
    assert (c4_row["units"], c4_row["units_learned"], c4_row["failed"]) == ("3", "2", "c4-s27")
    page = store.read_text(layout.eval_file("report.html"))
    assert page.index("c4-s27 diverged") < page.index('id="results"')
    assert '<li class="alert">1 of 6 models failed' in page
