"""The training/validation loss curve of one trained context, as PNG bytes (matplotlib, Agg, no pyplot state)."""

from __future__ import annotations

import io
from typing import Any


def plot_loss_curve(history: dict[str, Any], title: str) -> bytes:
    """Plot training and validation ESR per epoch (log scale) from a train-stage ``history.json`` dict.

    ``history["epochs"]`` is the list of per-epoch entries (``epoch``, ``loss``, ``val_loss``);
    ``history.get("best_epoch")``, when present, is marked. Returns PNG bytes.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    entries = history.get("epochs", [])
    epochs = [entry["epoch"] for entry in entries]
    figure = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot(epochs, [entry["loss"] for entry in entries], marker=".", label="training ESR")
    axes.plot(epochs, [entry["val_loss"] for entry in entries], marker=".", label="validation ESR")
    best = history.get("best_epoch")
    if best:
        best_loss = history.get("best_val_loss")
        label = f"best epoch {best}" + (f" (val ESR {best_loss:.4g})" if best_loss is not None else "")
        axes.axvline(best, color="grey", linestyle=":", label=label)
    if entries and all(entry["loss"] > 0 and entry["val_loss"] > 0 for entry in entries):
        axes.set_yscale("log")
    axes.set_xlabel("epoch")
    axes.set_ylabel("ESR (loss)")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
