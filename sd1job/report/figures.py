"""Every figure of the report, drawn from the gathered scores and written under eval/.

Each figure is written as ``eval/<name>.png`` and returned as an ``html.Figure`` carrying the
numbers its caption quotes; the captions themselves are in the page's template.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sd1job.audio import CheckedPair
from sd1job.layout import RunLayout
from sd1job.report import html, plots
from sd1job.store import Store
from sd1job.units import Unit


def _arm_points(
    units: list[Unit], rows: list[dict[str, Any]], entry: dict[str, Any] | None, outliers: set[str]
) -> plots.ArmPoints:
    """One arm: its learned seeds, the mean and interval the statistics computed, failures and outliers apart."""

    def riff_mean(unit: Unit) -> float:
        return float(np.mean([r["esr"] for r in rows if r["unit"] == unit.name]))

    entry = entry or {}
    failed = set(entry.get("failed", []))
    learned = [riff_mean(u) for u in units if u.name not in failed]
    interval = entry.get("interval") or {}
    mean = interval.get("mean")
    return plots.ArmPoints(
        learned,
        float(np.exp(np.mean(np.log(learned)))) if mean is None and learned else mean,
        interval.get("low"),
        interval.get("high"),
        failed_means=[riff_mean(u) for u in units if u.name in failed],
        outlier_means=[riff_mean(u) for u in units if u.name in outliers],
    )


def draw_all(
    store: Store,
    layout: RunLayout,
    scored: dict[Unit, dict[str, Any]],
    rows: list[dict[str, Any]],
    summary: list[dict[str, Any]],
    analysis: dict[str, Any],
    reference: list[dict[str, Any]],
    riff: CheckedPair,
    predictions: dict[str, np.ndarray],
    factorial: Any = None,
) -> list[html.Figure]:
    """Draw every figure into eval/ and return them in reading order."""
    entries = {entry["arm"]: entry for entry in analysis.get("arms", [])}
    outliers = {entry["unit"] for entry in analysis.get("outliers", [])}
    by_arm: dict[str, list[Unit]] = {}
    for unit in sorted(scored, key=lambda u: (u.kind != "windowed", u.context or 0, u.seed)):
        by_arm.setdefault(unit.arm, []).append(unit)
    # A grid draws the context figure of its first combination (the factorial figures cover the rest).
    first_tag = min(unit.tag for unit in scored)
    windowed = {
        units[0].context: _arm_points(units, rows, entries.get(arm), outliers)
        for arm, units in by_arm.items()
        if units[0].kind == "windowed" and units[0].tag == first_tag
    }
    stateful_units = by_arm.get(f"{first_tag}-stateful" if first_tag else "stateful")
    stateful = _arm_points(stateful_units, rows, entries.get("stateful"), outliers) if stateful_units else None
    fit = analysis.get("fit") or {}
    curve = (fit["curve_x"], fit["curve_y"]) if fit.get("curve_x") else None
    reference_esr = float(np.mean([entry["esr_dry_vs_wet"] for entry in reference]))

    epoch_times = {
        units[0].context: [scored[u]["training"]["seconds_per_epoch"] for u in units]
        for units in by_arm.values()
        if units[0].kind == "windowed"
    }
    histories = {arm: [store.read_json(layout.history(u)) for u in units] for arm, units in by_arm.items()}
    costs = [
        plots.CostPoint(
            unit.arm,
            unit.kind,
            document["flops_per_sample"],
            document["realtime_factor"],
            float(np.mean([r["esr"] for r in document["rows"]])),
        )
        for unit, document in sorted(scored.items())
    ]
    fitted = plots.linear_fit(
        [c for c in epoch_times for _ in epoch_times[c]], [s for c in epoch_times for s in epoch_times[c]]
    )
    drawn: list[tuple[str, bytes, dict[str, Any]]] = [
        (
            "esr_vs_context",
            plots.esr_vs_context(windowed, stateful, curve, reference_esr),
            {"reference": reference_esr, "fit": bool(curve), "stateful": stateful is not None},
        ),
        ("esr_vs_compute", plots.esr_vs_compute(costs), {}),
    ]
    if epoch_times:
        drawn.append(
            (
                "epoch_time_vs_context",
                plots.epoch_time_vs_context(epoch_times),
                {"slope": fitted[0] if fitted else None, "intercept": fitted[1] if fitted else None},
            )
        )
    drawn += [
        ("loss_curves", plots.loss_grid(histories), {}),
        (
            "waveforms",
            plots.waveform_overlay(riff.name, riff.dry, riff.wet, predictions, riff.sample_rate),
            {"riff": riff.name, "models": list(predictions), "zoom_ms": plots.ZOOM_MS},
        ),
        (
            "spectra",
            plots.spectrum_comparison(riff.name, riff.wet, predictions, riff.sample_rate),
            {"riff": riff.name, "models": list(predictions)},
        ),
    ]
    if factorial is not None:
        from sd1job.report.factorial_plots import draw_factorial

        drawn += [(name, png, {}) for name, png in draw_factorial(factorial).items()]
    figures = []
    for name, png, facts in drawn:
        store.write_bytes(layout.eval_file(f"{name}.png"), png)
        figures.append(html.Figure(name, html.relative_href(f"{name}.png"), facts))
    return figures
