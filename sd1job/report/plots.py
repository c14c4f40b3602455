"""The eval stage's figures, as PNG bytes (matplotlib's Agg canvas; no pyplot, no global state).

Each function takes plain numbers and arrays (what the eval stage computed) and returns the
bytes of one PNG, so the stage decides where they go in the store.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sd1job.scores import average_spectrum

# NAM's verdicts on ESR, drawn as faint guides: < 0.01 great, < 0.035 not bad, < 0.1 might sound OK.
ESR_GUIDES = ((0.01, "great"), (0.035, "not bad"), (0.1, "might sound OK"))
ZOOM_MS = 5.0


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


def esr_vs_context(
    per_riff: Mapping[str, Mapping[int, float]], mean: Mapping[int, float], reference: float | None
) -> bytes:
    """ESR against context size: one line per riff, the mean over riffs in bold, log scale.

    ``reference`` (the mean ESR of the dry signal against the wet, what "no model" scores) is
    drawn as a dashed line; NAM's verdict thresholds as faint guides.
    """
    figure = _figure(8.0, 5.0)
    axes = figure.add_subplot()
    for riff, values in per_riff.items():
        contexts = sorted(values)
        axes.plot(contexts, [values[c] for c in contexts], marker="o", linewidth=1, alpha=0.8, label=riff)
    contexts = sorted(mean)
    axes.plot(contexts, [mean[c] for c in contexts], marker="s", color="black", linewidth=2.5, label="mean")
    if reference is not None and reference > 0:
        axes.axhline(reference, color="red", linestyle="--", linewidth=1, label=f"dry vs wet (mean) {reference:.3g}")
    for level, verdict in ESR_GUIDES:
        axes.axhline(level, color="grey", linestyle=":", linewidth=0.8, alpha=0.6)
        axes.annotate(verdict, (1.0, level), xycoords=("axes fraction", "data"), fontsize=7, color="grey", ha="right")
    axes.set_yscale("log")
    axes.set_xticks(contexts)
    axes.set_xlabel("context (samples)")
    axes.set_ylabel("test ESR")
    axes.set_title("Test ESR against context size")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    return _png(figure)


def linear_fit(x: Sequence[float], y: Sequence[float]) -> tuple[float, float] | None:
    """Least-squares slope and intercept of y against x (None with fewer than two distinct x)."""
    if len(set(x)) < 2:
        return None
    slope, intercept = np.polyfit(np.asarray(x, dtype=float), np.asarray(y, dtype=float), 1)
    return float(slope), float(intercept)


def epoch_time_vs_context(seconds_per_epoch: Mapping[int, float]) -> bytes:
    """Training seconds per epoch against context size, with a least-squares line."""
    contexts = sorted(seconds_per_epoch)
    times = [seconds_per_epoch[c] for c in contexts]
    figure = _figure(8.0, 4.5)
    axes = figure.add_subplot()
    axes.plot(contexts, times, "o", label="measured")
    fit = linear_fit(contexts, times)
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


def loss_grid(histories: Mapping[int, Mapping[str, Any]]) -> bytes:
    """Training and validation loss per epoch of every model, one panel per context."""
    contexts = sorted(histories)
    columns = min(5, len(contexts))
    rows = math.ceil(len(contexts) / columns)
    figure = _figure(3.2 * columns, 2.6 * rows)
    for index, context in enumerate(contexts):
        history = histories[context]
        axes = figure.add_subplot(rows, columns, index + 1)
        entries = history.get("epochs", [])
        epochs = [entry["epoch"] for entry in entries]
        for field, label in (("loss", "train"), ("val_loss", "val")):
            values = [entry.get(field) for entry in entries]
            if values and all(v is not None for v in values):
                axes.plot(epochs, values, linewidth=1, label=label)
        best = history.get("best_epoch")
        if best:
            axes.axvline(best, color="grey", linestyle=":", linewidth=1)
        losses = [entry.get(f) for entry in entries for f in ("loss", "val_loss")]
        if losses and all(v is not None and v > 0 for v in losses):
            axes.set_yscale("log")
        axes.set_title(f"c{context}: {history.get('epochs_run', len(entries))} epochs, best {best}", fontsize=9)
        axes.tick_params(labelsize=7)
        axes.grid(True, which="both", alpha=0.3)
        if index == 0:
            axes.legend(fontsize=7)
    figure.suptitle("Training / validation ESR per epoch (dotted: best epoch)")
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
    predictions: Mapping[int, np.ndarray],
    sample_rate: int,
    zoom_ms: float = ZOOM_MS,
) -> bytes:
    """Input, true output and predicted output, one panel per context, zoomed to ``zoom_ms``.

    The stretch shown is where the predictions' squared error is largest (the same stretch in
    every panel, so the contexts compare directly).
    """
    width = max(2, round(zoom_ms * sample_rate / 1000))
    start = loudest_difference([wet - p for p in predictions.values()], width)
    stop = min(len(wet), start + width)
    time_ms = np.arange(start, stop) * 1000.0 / sample_rate
    figure = _figure(9.0, 3.0 * len(predictions))
    for index, (context, prediction) in enumerate(sorted(predictions.items())):
        axes = figure.add_subplot(len(predictions), 1, index + 1)
        axes.plot(time_ms, dry[start:stop], color="grey", linewidth=1, label="input (dry)")
        axes.plot(time_ms, wet[start:stop], color="black", linewidth=1.5, label="true output (wet)")
        axes.plot(time_ms, prediction[start:stop], color="tab:orange", linewidth=1.2, label=f"predicted (c{context})")
        axes.set_title(f"{riff}, context {context}: {time_ms[0]:.1f} to {time_ms[-1]:.1f} ms", fontsize=10)
        axes.set_xlabel("time (ms)")
        axes.set_ylabel("amplitude")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8, loc="upper right")
    return _png(figure)


def spectrum_comparison(riff: str, wet: np.ndarray, predictions: Mapping[int, np.ndarray], sample_rate: int) -> bytes:
    """Average power spectra of the true output and each prediction, and their differences in dB."""
    figure = _figure(9.0, 6.5)
    top = figure.add_subplot(2, 1, 1)
    bottom = figure.add_subplot(2, 1, 2, sharex=top)
    freqs, true_db = average_spectrum(wet, sample_rate)
    top.plot(freqs[1:], true_db[1:], color="black", linewidth=1.5, label="true output (wet)")
    for context, prediction in sorted(predictions.items()):
        _, predicted_db = average_spectrum(prediction, sample_rate)
        top.plot(freqs[1:], predicted_db[1:], linewidth=1, label=f"predicted (c{context})")
        bottom.plot(freqs[1:], predicted_db[1:] - true_db[1:], linewidth=1, label=f"c{context} - true")
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
