"""Running a trained unit on audio at any sample rate: which method, then the processing itself.

Three methods for a unit trained at ``F`` run on audio at ``R``:

- ``delay``: the stateful model's recurrence reads the state ``R / F`` samples back
  (``sd1job.infer.delayline``); only for ``R >= F``; below the training rate it falls back to
  ``resample``, and says so;
- ``resample``: the audio is converted to ``F`` (``sd1job.resample``), processed there, and the
  output converted back to ``R`` at the input's length;
- ``naive``: the model runs at ``R`` as if ``R`` were ``F`` (its time constants scale by
  ``R / F``: for comparison only).

A windowed unit's context is a number of samples at ``F``, so it always resamples (``naive``
allowed for comparison). At ``R == F`` every method is the model as trained. ``process`` runs
any predictor chunk by chunk, with a progress callback, on a signal at ``R``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from sd1job.resample import resample, resample_to_length

METHODS = ("delay", "resample", "naive")
DEFAULT_METHOD = "delay"
CHUNK_SAMPLES = 1 << 16


@dataclass(frozen=True)
class RatePlan:
    """How a unit runs at ``run_rate``: the method used, the rate the model itself runs at, and why (if changed)."""

    method: str
    training_rate: int
    run_rate: int
    note: str | None = None

    @property
    def model_rate(self) -> int:
        """The rate the model's own loop runs at: the training rate when resampling, else the run rate."""
        return self.training_rate if self.method == "resample" else self.run_rate

    @property
    def delay_factor(self) -> float:
        """``M = run rate / training rate``: how many samples back the delay-line recurrence reads."""
        return self.run_rate / self.training_rate


def plan(kind: str, method: str, training_rate: int, run_rate: int) -> RatePlan:
    """The method a unit of ``kind`` uses for ``method`` asked at ``run_rate``; ValueError for an unknown method."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    if run_rate == training_rate or method == "naive":
        return RatePlan(method, training_rate, run_rate)
    if kind != "stateful" and method == "delay":
        note = f"a windowed unit's context is in samples at {training_rate} Hz: resampling instead of a delay line"
        return RatePlan("resample", training_rate, run_rate, note)
    if method == "delay" and run_rate < training_rate:
        note = (
            f"{run_rate} Hz is below the training rate {training_rate} Hz, where a delay line cannot run "
            "(it would read future states): resampling instead"
        )
        return RatePlan("resample", training_rate, run_rate, note)
    return RatePlan(method, training_rate, run_rate)


def predictor_for(plan_: RatePlan, base: Any) -> Any:
    """The predictor that runs at ``plan_.model_rate``: ``base`` (the unit's own fast predictor) or its delay line."""
    if plan_.method == "delay" and plan_.run_rate != plan_.training_rate:
        from sd1job.infer.delayline import DelayLinePredictor

        return DelayLinePredictor(base.weights, plan_.training_rate, plan_.run_rate)
    return base


def iter_outputs(predictor: Any, signal: np.ndarray, chunk: int = CHUNK_SAMPLES) -> Iterator[np.ndarray]:
    """The predictor's output for ``signal`` in consecutive pieces (together exactly its whole-signal output).

    A stateful predictor (``stream``) is streamed in chunks of ``chunk`` samples carrying its
    state; a windowed one yields its own blocks (``iter_blocks``).
    """
    if hasattr(predictor, "iter_blocks"):
        yield from predictor.iter_blocks(signal)
        return
    state = None
    for start in range(0, len(signal), chunk):
        piece, state = predictor.stream(signal[start : start + chunk], state)
        yield piece


def process(
    predictor: Any,
    dry: np.ndarray,
    plan_: RatePlan,
    progress: Callable[[float], None] | None = None,
    chunk: int = CHUNK_SAMPLES,
) -> np.ndarray:
    """``dry`` (at the run rate) through ``predictor`` (running at ``plan_.model_rate``): float32, same length.

    ``progress`` is called with the fraction of the model's work done after every chunk.
    """
    signal = np.asarray(dry, dtype=np.float32).ravel()
    converted = plan_.model_rate != plan_.run_rate
    model_input = resample(signal, plan_.run_rate, plan_.model_rate) if converted else signal
    out = np.empty(len(model_input), np.float32)
    done = 0
    for piece in iter_outputs(predictor, model_input, chunk):
        out[done : done + len(piece)] = piece
        done += len(piece)
        if progress is not None:
            progress(done / max(len(model_input), 1))
    if converted:
        return resample_to_length(out, plan_.model_rate, plan_.run_rate, len(signal))
    return out
