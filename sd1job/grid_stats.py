"""The statistics of a grid: the factorial answer over every axis, and the context analysis within each arm.

Pure (no I/O). ``stats.analyse`` answers one context sweep; a grid is many of them, one per
combination of the grid's values (its tag). This module runs ``stats.analyse`` within each
combination, ``factorial.analyse_factorial`` across all of them (one value per unit: its
riff-mean test ESR; units that failed to learn are left out and named), and composes one verdict:
the failures first, then the factorial sentences, then each combination's context sentences.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sd1job import stats

CONTEXT_FACTOR = "context"
KIND_FACTOR = "model.kind"


def factorial_table(rows: Sequence[Mapping[str, Any]], units: Mapping[str, Mapping[str, Any]], axes: Sequence[str]):  # type: ignore[no-untyped-def]
    """One row per unit: its name, riff-mean test ESR, whether it learned, and its value of every factor.

    The factors are the grid's axes, the context (``"stateful"`` or the preset for models without one)
    when there is more than one, and the model kind when there is more than one.
    """
    import pandas as pd

    by_unit: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = by_unit.setdefault(
            row["unit"],
            {
                "unit": row["unit"],
                "esr": [],
                "learned": units[row["unit"]].get("outcome", "learned") == "learned",
                CONTEXT_FACTOR: row["context"] if row["context"] is not None else (row.get("preset") or row["kind"]),
                KIND_FACTOR: row["kind"],
                **{axis: row[axis] for axis in axes},
            },
        )
        entry["esr"].append(float(row["esr"]))
    table = pd.DataFrame([{**entry, "test_esr": float(np.mean(entry.pop("esr")))} for entry in by_unit.values()])
    return table


def factors_of(table: Any, axes: Sequence[str]) -> list[str]:
    """The grid's axes, plus context and model kind where they take more than one value."""
    extra = [name for name in (CONTEXT_FACTOR, KIND_FACTOR) if table[name].astype(str).nunique() > 1]
    return [*axes, *extra]


def analyse_grid(
    rows: Sequence[Mapping[str, Any]],
    units: Mapping[str, Mapping[str, Any]],
    axes: Sequence[str],
    alpha: float = 0.05,
    sample_rate: int | None = None,
) -> dict[str, Any]:
    """The statistics of a grid, JSON-ready, with its verdict.

    ``rows``: one per (unit, riff) with ``unit``, ``tag``, ``kind``, ``context``, ``seed``, ``esr`` and a
    value per axis (keyed by the axis's dotted path). ``units``: unit name -> the inputs of
    ``stats.analyse`` (val_esr, still_improving, stop_reason, outcome, failure).
    """
    from sd1job.factorial import analyse_factorial

    tags = list(dict.fromkeys(row["tag"] for row in rows))
    combinations: dict[str, Any] = {}
    arms: list[dict[str, Any]] = []
    context_sentences: list[str] = []
    for tag in tags:
        mine = [row for row in rows if row["tag"] == tag]
        local = {row["unit"].removeprefix(f"{tag}-"): units[row["unit"]] for row in mine}
        analysis = stats.analyse(mine, local, alpha=alpha, sample_rate=sample_rate)
        combinations[tag] = analysis
        for entry in analysis["arms"]:
            arms.append({**entry, "arm": f"{tag}-{entry['arm']}", "combination": tag})
        where = ", ".join(f"{axis} {mine[0][axis]}" for axis in axes)
        context_sentences += [
            f"At {where}: {sentence}" for sentence in analysis["verdict"] if sentence not in analysis["alerts"]
        ]
    failed = stats.failed_units(units)
    table = factorial_table(rows, units, axes)
    factorial = analyse_factorial(table, factors_of(table, axes), alpha=alpha)
    alerts = []
    if failed:
        names = "; ".join(info.get("failure") or f"{name}: {info['outcome']}" for name, info in failed.items())
        were = "was" if len(failed) == 1 else "were"
        alerts.append(
            f"{len(failed)} of {len(units)} models failed to train and {were} left out of every interval, test, fit "
            f"and the factorial analysis (a failed training is not seed noise): {names}."
        )
    for tag, analysis in combinations.items():
        alerts += [
            f"{tag}: {sentence}" for sentence in analysis["alerts"] if not sentence.startswith(tuple("0123456789"))
        ]
    return {
        "alpha": alpha,
        "grid": list(axes),
        "method": "Factorial: "
        + "; ".join(factorial.methods.values() if isinstance(factorial.methods, dict) else factorial.methods)
        + f". Within each combination of the grid's values: {stats.INTERVAL_METHOD}; {stats.TEST_METHOD}.",
        "arms": arms,
        "combinations": combinations,
        "factorial": factorial.to_dict(),
        "failed": [{"unit": name, "outcome": info["outcome"]} for name, info in failed.items()],
        "outliers": [
            {**o, "unit": f"{tag}-{o['unit']}", "arm": f"{tag}-{o['arm']}"}
            for tag, analysis in combinations.items()
            for o in analysis["outliers"]
        ],
        "fit": {},
        "alerts": alerts,
        "verdict": [*alerts, *factorial.verdict, *context_sentences],
        "units": len(units),
        "_factorial_result": factorial,  # the live result for the figures; the report removes it
    }
