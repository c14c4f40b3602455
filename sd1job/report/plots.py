"""The report's figures and each unit's loss curve, as PNG bytes (matplotlib's Agg canvas; no pyplot state).

Each function takes plain numbers and arrays and returns the bytes of one PNG, so the caller
decides where they go in the store.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sd1job.scores import average_spectrum

# NAM's verdicts on ESR, drawn as faint guides: < 0.01 great, < 0.035 not bad, < 0.1 might sound OK.
ESR_GUIDES = ((0.01, "great"), (0.035, "not bad"), (0.1, "might sound OK"))
ZOOM_MS = 5.0
KIND_COLOURS = {"windowed": "tab:blue", "stateful": "tab:green"}


@dataclass(frozen=True)
class ArmPoints:
    """One arm of the ESR plot: each seed's riff-mean ESR, the arm's mean and its interval (None: no interval)."""

    seed_means: list[float]
    mean: float | None
    low: float | None
    high: float | None
    failed_means: list[float] = field(default_factory=list)
    outlier_means: list[float] = field(default_factory=list)


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _esr_guides(axes: Any) -> None:
    for level, verdict in ESR_GUIDES:
        axes.axhline(level, color="grey", linestyle=":", linewidth=0.8, alpha=0.6)
        axes.annotate(verdict, (1.0, level), xycoords=("axes fraction", "data"), fontsize=7, color="grey", ha="right")


def esr_vs_context(
    windowed: Mapping[int, ArmPoints],
    stateful: ArmPoints | None,
    fit: tuple[Sequence[float], Sequence[float]] | None,
    reference: float | None,
) -> bytes:
    """Test ESR against context size: each seed a point, the mean a line with its 95 % interval as a band.

    ``fit`` is the saturating curve on a grid (x, y); ``stateful`` (no context) is drawn as a
    horizontal line with its band across the plot; ``reference`` (the dry signal scored against
    the wet) as a dashed line; NAM's verdict thresholds as faint guides. Log scale.
    """
    figure = _figure(8.0, 5.0)
    axes = figure.add_subplot()
    contexts = sorted(windowed)
    _mark_failures_and_outliers(axes, {c: windowed[c] for c in contexts}, stateful)
    contexts = [c for c in contexts if windowed[c].mean is not None]
    if contexts:
        for context in contexts:
            seeds = windowed[context].seed_means
            axes.plot([context] * len(seeds), seeds, "o", color="tab:blue", alpha=0.45, markersize=4)
        axes.plot(
            contexts,
            [windowed[c].mean for c in contexts],
            "s-",
            color="black",
            linewidth=2,
            label="geometric mean over seeds",
        )
        banded = [c for c in contexts if windowed[c].low is not None and windowed[c].high is not None]
        if banded:
            axes.fill_between(
                banded,
                [windowed[c].low for c in banded],
                [windowed[c].high for c in banded],
                color="tab:blue",
                alpha=0.15,
                label="95 % interval",
            )
        axes.set_xticks(contexts)
    if fit is not None:
        axes.plot(fit[0], fit[1], "--", color="tab:purple", linewidth=1.2, label="fit a + b exp(-n / tau)")
    if stateful is not None and stateful.mean is not None:
        axes.axhline(stateful.mean, color=KIND_COLOURS["stateful"], linewidth=2, label="stateful model")
        if stateful.low is not None and stateful.high is not None:
            axes.axhspan(stateful.low, stateful.high, color=KIND_COLOURS["stateful"], alpha=0.12)
    if reference is not None and reference > 0:
        axes.axhline(reference, color="red", linestyle="--", linewidth=1, label=f"dry vs wet {reference:.3g}")
    _esr_guides(axes)
    axes.set_yscale("log")
    axes.set_xlabel("context (samples)")
    axes.set_ylabel("test ESR (mean over riffs)")
    axes.set_title("Test ESR against context size (points: seeds)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    return _png(figure)


def _mark_failures_and_outliers(axes: Any, windowed: Mapping[int, ArmPoints], stateful: ArmPoints | None) -> None:
    """Failed models as red crosses (left out of every line, band and fit), outliers ringed in orange."""
    failed = [(c, v) for c, arm in windowed.items() for v in arm.failed_means]
    odd = [(c, v) for c, arm in windowed.items() for v in arm.outlier_means]
    if stateful is not None:
        right = max(windowed, default=0) + 22
        failed += [(right, v) for v in stateful.failed_means]
        odd += [(right, v) for v in stateful.outlier_means]
    if failed:
        x, y = zip(*failed, strict=True)
        axes.plot(x, y, "x", color="tab:red", markersize=8, mew=2, label="failed to train (left out)")
    if odd:
        x, y = zip(*odd, strict=True)
        axes.plot(x, y, "o", mfc="none", mec="tab:orange", markersize=10, mew=1.5, label="outlier (kept; see verdict)")


def linear_fit(x: Sequence[float], y: Sequence[float]) -> tuple[float, float] | None:
    """Least-squares slope and intercept of y against x (None with fewer than two distinct x)."""
    if len(set(x)) < 2:
        return None
    slope, intercept = np.polyfit(np.asarray(x, dtype=float), np.asarray(y, dtype=float), 1)
    return float(slope), float(intercept)


def epoch_time_vs_context(seconds_per_epoch: Mapping[int, Sequence[float]]) -> bytes:
    """Training seconds per epoch against context size: each unit a point, the mean per context, a fitted line."""
    contexts = sorted(seconds_per_epoch)
    figure = _figure(8.0, 4.5)
    axes = figure.add_subplot()
    xs = [c for c in contexts for _ in seconds_per_epoch[c]]
    ys = [s for c in contexts for s in seconds_per_epoch[c]]
    axes.plot(xs, ys, "o", alpha=0.5, label="units")
    axes.plot(contexts, [float(np.mean(seconds_per_epoch[c])) for c in contexts], "s", color="black", label="mean")
    fit = linear_fit(xs, ys)
    if fit is not None:
        slope, intercept = fit
        span = np.linspace(min(contexts), max(contexts), 50)
        axes.plot(
            span, slope * span + intercept, "-", label=f"fit: {slope * 100:.3g} s per 100 samples + {intercept:.3g} s"
        )
    axes.set_xticks(contexts)
    axes.set_xlabel("context (samples)")
    axes.set_ylabel("seconds per epoch")
    axes.set_title("Training time per epoch against context size")
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    axes.legend()
    return _png(figure)


def _loss_axes(axes: Any, history: Mapping[str, Any], *, small: bool = False, label: str = "") -> None:
    """Training and validation ESR per epoch of one history, the kept epoch dotted; log scale when positive."""
    entries = history.get("epochs", [])
    epochs = [entry["epoch"] for entry in entries]
    for metric, name in (("loss", "training ESR"), ("val_loss", "validation ESR")):
        values = [entry.get(metric) for entry in entries]
        if values and all(v is not None for v in values):
            style = "-" if metric == "loss" else "--"
            axes.plot(epochs, values, style, marker=None if small else ".", linewidth=1, label=f"{label}{name}")
    best = history.get("best_epoch")
    if best:
        axes.axvline(best, color="grey", linestyle=":", linewidth=1, label=None if small else f"best epoch {best}")
    for index, recovery in enumerate(history.get("recoveries", [])):
        # The abandoned epoch was retried from the end of the one before: mark the boundary.
        axes.axvline(
            recovery["epoch"] - 0.5,
            color="tab:red",
            linewidth=1,
            alpha=0.7,
            label=None if small or index else "divergence: rolled back, learning rate halved",
        )
    losses = [entry.get(f) for entry in entries for f in ("loss", "val_loss")]
    if losses and all(v is not None and v > 0 for v in losses):
        axes.set_yscale("log")
    axes.grid(True, which="both", alpha=0.3)


def loss_curve(history: Mapping[str, Any], title: str) -> bytes:
    """One unit's training and validation ESR per epoch (from its history.json)."""
    figure = _figure(6.4, 4.0)
    axes = figure.add_subplot()
    _loss_axes(axes, history)
    axes.set_xlabel("epoch")
    axes.set_ylabel("ESR (loss)")
    axes.set_title(title)
    axes.legend()
    return _png(figure)


def loss_grid(histories: Mapping[str, Sequence[Mapping[str, Any]]]) -> bytes:
    """Training (solid) and validation (dashed) loss of every unit, one panel per arm, its seeds overlaid."""
    arms = list(histories)
    columns = min(5, len(arms))
    rows = math.ceil(len(arms) / columns)
    figure = _figure(3.2 * columns, 2.6 * rows)
    for index, arm in enumerate(arms):
        axes = figure.add_subplot(rows, columns, index + 1)
        for history in histories[arm]:
            _loss_axes(axes, history, small=True)
        runs = ", ".join(f"{h.get('epochs_run', len(h.get('epochs', [])))}" for h in histories[arm])
        failed = [str(h.get("seed", "?")) for h in histories[arm] if h.get("outcome", "learned") != "learned"]
        title = f"{arm}: epochs {runs}" + (f"\nFAILED: seed {', '.join(failed)}" if failed else "")
        axes.set_title(title, fontsize=9, color="tab:red" if failed else "black")
        axes.tick_params(labelsize=7)
    figure.suptitle("Training (solid) / validation (dashed) ESR per epoch, every seed (dotted: kept epoch)")
    return _png(figure)


def loudest_difference(errors: Sequence[np.ndarray], width: int) -> int:
    """Start of the ``width``-sample stretch where the summed squared errors are largest."""
    energy = np.sum([np.square(np.asarray(e, dtype=np.float64)) for e in errors], axis=0)
    if len(energy) <= width:
        return 0
    cumulative = np.concatenate([[0.0], np.cumsum(energy)])
    return int(np.argmax(cumulative[width:] - cumulative[:-width]))


def waveform_overlay(
    riff: str,
    dry: np.ndarray,
    wet: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    sample_rate: int,
    zoom_ms: float = ZOOM_MS,
) -> bytes:
    """Input, true output and predicted output, one panel per model, zoomed to ``zoom_ms``.

    The stretch shown is where the predictions' squared error is largest (the same stretch in
    every panel, so the models compare directly).
    """
    width = max(2, round(zoom_ms * sample_rate / 1000))
    start = loudest_difference([wet - p for p in predictions.values()], width)
    stop = min(len(wet), start + width)
    time_ms = np.arange(start, stop) * 1000.0 / sample_rate
    figure = _figure(9.0, 3.0 * len(predictions))
    for index, (label, prediction) in enumerate(predictions.items()):
        axes = figure.add_subplot(len(predictions), 1, index + 1)
        axes.plot(time_ms, dry[start:stop], color="grey", linewidth=1, label="input (dry)")
        axes.plot(time_ms, wet[start:stop], color="black", linewidth=1.5, label="true output (wet)")
        axes.plot(time_ms, prediction[start:stop], color="tab:orange", linewidth=1.2, label=f"predicted ({label})")
        axes.set_title(f"{riff}, {label}: {time_ms[0]:.1f} to {time_ms[-1]:.1f} ms", fontsize=10)
        axes.set_xlabel("time (ms)")
        axes.set_ylabel("amplitude")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8, loc="upper right")
    return _png(figure)


def spectrum_comparison(riff: str, wet: np.ndarray, predictions: Mapping[str, np.ndarray], sample_rate: int) -> bytes:
    """Average power spectra of the true output and each prediction, and their differences in dB."""
    figure = _figure(9.0, 6.5)
    top = figure.add_subplot(2, 1, 1)
    bottom = figure.add_subplot(2, 1, 2, sharex=top)
    freqs, true_db = average_spectrum(wet, sample_rate)
    top.plot(freqs[1:], true_db[1:], color="black", linewidth=1.5, label="true output (wet)")
    for label, prediction in predictions.items():
        _, predicted_db = average_spectrum(prediction, sample_rate)
        top.plot(freqs[1:], predicted_db[1:], linewidth=1, label=f"predicted ({label})")
        bottom.plot(freqs[1:], predicted_db[1:] - true_db[1:], linewidth=1, label=f"{label} - true")
    top.set_xscale("log")
    top.set_ylabel("power (dB)")
    top.set_title(f"{riff}: average spectrum")
    top.grid(True, which="both", alpha=0.3)
    top.legend(fontsize=8)
    bottom.axhline(0.0, color="black", linewidth=0.8)
    bottom.set_xlabel("frequency (Hz)")
    bottom.set_ylabel("difference (dB)")
    bottom.grid(True, which="both", alpha=0.3)
    bottom.legend(fontsize=8)
    return _png(figure)


@dataclass(frozen=True)
class CostPoint:
    """One unit on the cost plot: its arm, kind, compute per output sample, measured speed and test ESR."""

    arm: str
    kind: str
    flops_per_sample: float
    realtime_factor: float | None
    esr: float


def esr_vs_compute(points: Sequence[CostPoint]) -> bytes:
    """Test ESR against compute per output sample (left) and against the measured real-time factor (right).

    Every unit is a point; a dotted line on the right marks real time (factor 1).
    """
    figure = _figure(11.0, 4.6)
    left = figure.add_subplot(1, 2, 1)
    right = figure.add_subplot(1, 2, 2, sharey=left)
    for kind in dict.fromkeys(p.kind for p in points):
        mine = [p for p in points if p.kind == kind]
        colour = KIND_COLOURS.get(kind, "tab:grey")
        left.plot([p.flops_per_sample for p in mine], [p.esr for p in mine], "o", color=colour, alpha=0.6, label=kind)
        timed = [p for p in mine if p.realtime_factor]
        right.plot([p.realtime_factor for p in timed], [p.esr for p in timed], "o", color=colour, alpha=0.6, label=kind)
    for arm in dict.fromkeys(p.arm for p in points):
        first = next(p for p in points if p.arm == arm)
        left.annotate(arm, (first.flops_per_sample, first.esr), fontsize=7, xytext=(3, 3), textcoords="offset points")
    right.axvline(1.0, color="red", linestyle=":", linewidth=1, label="real time")
    for axes in (left, right):
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.grid(True, which="both", alpha=0.3)
        _esr_guides(axes)
    left.set_xlabel("FLOPs per output sample (matrix products)")
    left.set_ylabel("test ESR (mean over riffs)")
    right.set_xlabel("measured real-time factor (audio s per compute s)")
    left.set_title("What each model costs")
    right.set_title("How fast it runs here")
    right.legend(fontsize=8)
    return _png(figure)
