"""The listening test's part of the report: read the answers from the store, analyse them.

Glue only (``analysis`` is pure): the answers under ``listening/answers/``, the units that were
listened to from ``listening/design.json``, and each objective metric of those units (riff mean
from the results rows) for the rank correlations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sd1job.config import Config
from sd1job.layout import RunLayout
from sd1job.listen import analysis, answers
from sd1job.store import MissingObjectError, Store

# The objective metrics correlated with what listeners heard (loudness difference as its size).
CORRELATED = ("esr", "esr_pre", "stft", "esr_aw", "mel", "loudness_diff")


def listening_keys(store: Store, layout: RunLayout) -> list[str]:
    """The stored objects the listening section depends on (for the report's up-to-date check)."""
    return [key for key in store.list(layout.listening_file("answers")) if key.endswith(".jsonl")]


def arm_metrics(rows: Sequence[dict[str, Any]], units: dict[str, str]) -> dict[str, dict[str, float | None]]:
    """Metric -> arm -> the riff mean of the arm's listened-to unit (None where the metric is missing)."""
    out: dict[str, dict[str, float | None]] = {name: {} for name in CORRELATED}
    for arm, unit in units.items():
        mine = [row for row in rows if row["unit"] == unit]
        for name in CORRELATED:
            values = [row.get(name) for row in mine]
            if mine and all(v is not None for v in values):
                mean = float(np.mean([abs(v) if name == "loudness_diff" else v for v in values]))
                out[name][arm] = mean
            else:
                out[name][arm] = None
    return out


def listening_section(store: Store, config: Config, rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The analysed listening test of the run, or None when nobody has answered yet."""
    layout = RunLayout(config.run_id)
    records = answers.read_answers(store, layout)
    if not records:
        return None
    try:
        units = store.read_json(layout.listening_file(answers.DESIGN)).get("units", {})
    except MissingObjectError:
        units = {}
    settings = config.listen
    section = analysis.analyse_listening(
        records, arm_metrics(rows, units), config.eval.alpha, settings.similarity_proportion, settings.similarity_power
    )
    if section is not None:
        section["units"] = units
    return section
