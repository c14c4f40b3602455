"""Training health: catching a divergence while it happens, and deciding whether a unit learned.

Pure (no TensorFlow): the fitters feed every update's training loss to a ``DivergenceGuard``; the
train stage rolls back and retries at a lower learning rate when it trips (``RECOVERY_LR_FACTOR``,
at most ``train.max_recoveries`` times); ``outcome`` is the one rule that train, eval and report use
to tell a unit that learned from one that failed.

Divergence rules, checked after every update on the median loss of the last ``SPIKE_WINDOW``
updates, and again when an epoch ends on the median of all its updates (so an epoch that was bad
from its first update is never accepted as a state to roll back to):

- ``non_finite``: the update's loss is NaN or infinite (the weights are then unusable).
- ``loss_explosion``: the median exceeds ``EXPLOSION_LEVEL`` (10): ten times worse than a model that
  outputs silence (ESR 1), where a freshly initialised model starts (its median is about 1). This
  catches a learning rate so high that the loss blows up from the first updates, before there is a
  "lowest" to compare with.
- ``loss_spike``: the median exceeds ``SPIKE_FACTOR`` times the lowest window median seen so far in
  the unit's training (carried across epochs and resumes), and exceeds ``SPIKE_FLOOR``. A median
  over a window ignores single odd batches (a batch of quiet windows has a large ESR on its own);
  the lowest median is a robust "best so far". The factor and floor come from measured runs: on the
  demo data the medians of healthy units rose at most about 1.6x above their running lowest (the
  learning rate decays epoch by epoch, the window's median wobbles), while the unit that diverged
  (local profile, AMD EPYC) went from a lowest median of about 0.3 to above 2 within one epoch.
  ``SPIKE_FLOOR`` keeps a tiny model that rises from 0.001 to 0.005 (still a good model) from
  counting as a divergence.

Whether a unit learned: the trivial models a pedal capture must beat are silence (ESR 1) and the dry
signal passed through at its best gain (ESR ``1 - rho^2``, rho the uncentred correlation of dry and
wet at the validation targets), whichever is lower: ``trivial_esr``. A unit whose best validation
ESR is not clearly below that reference, by at least a fifth (``LEARNED_FRACTION`` 0.8), has learned
no more than a wire with a volume knob: ``failed_to_learn``. The margin separates a training run
stuck at the trivial level (the diverged unit above: validation ESR 0.82 against a reference of 0.71
on the demo data) from a model that learned, however modestly; it does not judge whether a model is
good enough (the report's ESR and the listening test do). A unit whose training diverged beyond its
recoveries is ``diverged``. Both are failures: the report names them and leaves them out of every
interval, test and fit, never folding them into seed noise.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

SPIKE_WINDOW = 32
SPIKE_FACTOR = 4.0
SPIKE_FLOOR = 0.05
EXPLOSION_LEVEL = 10.0
RECOVERY_LR_FACTOR = 0.5
LEARNED_FRACTION = 0.8

Outcome = Literal["learned", "failed_to_learn", "diverged"]
OUTCOMES: tuple[Outcome, ...] = ("learned", "failed_to_learn", "diverged")
STOP_DIVERGED = "diverged"


@dataclass(frozen=True)
class Divergence:
    """What tripped the guard: the rule, where (epoch from 1, update within the epoch from 1), and the numbers."""

    rule: Literal["non_finite", "loss_explosion", "loss_spike"]
    epoch: int
    step: int
    loss: float | None
    reference: float | None
    updates: int = 0  # how many updates ``loss`` is the median of

    def describe(self) -> str:
        """One phrase for logs and the report."""
        if self.rule == "non_finite":
            return f"non-finite training loss at epoch {self.epoch}, update {self.step}"
        if self.rule == "loss_explosion":
            return (
                f"training loss exploded at epoch {self.epoch}, update {self.step}: median {self.loss:.3g} over the "
                f"last {self.updates} updates (rule: above {EXPLOSION_LEVEL:g}, ten times silence)"
            )
        return (
            f"training loss spiked at epoch {self.epoch}, update {self.step}: median {self.loss:.3g} over the last "
            f"{self.updates} updates against a lowest median of {self.reference:.3g} (rule: above {SPIKE_FACTOR:g}x)"
        )


@dataclass
class DivergenceGuard:
    """Watches every update's training loss; ``observe`` and ``end_epoch`` return a ``Divergence`` when a rule fires.

    The window runs on across epochs; a rollback empties it (``restart``). A checkpoint carries the
    window and ``lowest`` (the lowest window median so far), so a resumed run watches exactly what an
    uninterrupted one would.
    """

    lowest: float = math.inf
    window: deque[float] = field(default_factory=lambda: deque(maxlen=SPIKE_WINDOW))
    epoch_losses: list[float] = field(default_factory=list)

    def restart(self) -> None:
        """Forget the window (after a rollback: the losses it held belong to abandoned updates)."""
        self.window.clear()
        self.epoch_losses.clear()

    def observe(self, epoch: int, step: int, loss: float) -> Divergence | None:
        """Account one update's loss (``step`` counted from 1 within the epoch); the divergence it reveals, if any."""
        if step == 1:
            self.epoch_losses.clear()
        if not math.isfinite(loss):
            return Divergence("non_finite", epoch, step, None, None)
        self.window.append(loss)
        self.epoch_losses.append(loss)
        if len(self.window) < SPIKE_WINDOW:
            return None
        median = float(np.median(self.window))
        divergence = self._judge(median, epoch, step, len(self.window))
        if divergence is None:
            self.lowest = min(self.lowest, median)
        return divergence

    def end_epoch(self, epoch: int) -> Divergence | None:
        """Judge the epoch as a whole (the median of its updates) before it is accepted."""
        if not self.epoch_losses:
            return None
        updates = len(self.epoch_losses)
        return self._judge(float(np.median(self.epoch_losses)), epoch, updates, updates)

    def _judge(self, median: float, epoch: int, step: int, updates: int) -> Divergence | None:
        if median > EXPLOSION_LEVEL:
            return Divergence("loss_explosion", epoch, step, median, None, updates)
        if median > SPIKE_FACTOR * self.lowest and median > SPIKE_FLOOR:
            return Divergence("loss_spike", epoch, step, median, self.lowest, updates)
        return None

    def to_json(self) -> dict[str, Any]:
        """State for the checkpoint, taken at the end of an epoch (JSON has no inf)."""
        return {"lowest": self.lowest if math.isfinite(self.lowest) else None, "window": list(self.window)}

    @classmethod
    def from_json(cls, state: dict[str, Any] | None) -> DivergenceGuard:
        """Restore from ``to_json`` output (None: a fresh guard)."""
        state = state or {}
        lowest = state.get("lowest")
        guard = cls(math.inf if lowest is None else float(lowest))
        guard.window.extend(float(loss) for loss in state.get("window", []))
        return guard


def recovery_record(divergence: Divergence, learning_rate_scale: float) -> dict[str, Any]:
    """One entry of history.json's ``recoveries``: where, which rule, the numbers, the new learning-rate scale."""
    return {
        "epoch": divergence.epoch,
        "step": divergence.step,
        "rule": divergence.rule,
        "loss": divergence.loss,
        "reference": divergence.reference,
        "learning_rate_scale": learning_rate_scale,
    }


def trivial_esr(dry: np.ndarray, wet: np.ndarray) -> float:
    """The ESR of the better trivial model: silence (1) or ``dry`` at its best gain (``1 - rho^2``)."""
    d = np.asarray(dry, dtype=np.float64).ravel()
    w = np.asarray(wet, dtype=np.float64).ravel()
    energy_d, energy_w = float(np.dot(d, d)), float(np.dot(w, w))
    if energy_d == 0.0 or energy_w == 0.0:
        return 1.0
    return float(min(1.0, max(0.0, 1.0 - np.dot(d, w) ** 2 / (energy_d * energy_w))))


def outcome(stop_reason: str | None, best_val_esr: float | None, reference_esr: float | None) -> Outcome:
    """Whether a unit learned: ``diverged`` (stopped by the guard), ``failed_to_learn`` (best validation ESR not
    below ``LEARNED_FRACTION`` of the trivial reference, or no finite validation ESR at all), else ``learned``.

    ``reference_esr`` None (a unit trained before the reference was recorded) compares against silence (1)."""
    if stop_reason == STOP_DIVERGED:
        return "diverged"
    if best_val_esr is None or not math.isfinite(best_val_esr):
        return "failed_to_learn"
    reference = 1.0 if reference_esr is None else reference_esr
    return "learned" if best_val_esr < LEARNED_FRACTION * reference else "failed_to_learn"


def failure_text(unit: str, outcome_: Outcome, details: dict[str, Any]) -> str:
    """What happened to a failed unit, in words (``details``: best_val_esr, reference_esr, recoveries, epochs_run)."""
    recoveries = details.get("recoveries") or []
    tries = f" after {len(recoveries)} recover{'y' if len(recoveries) == 1 else 'ies'}" if recoveries else ""
    if outcome_ == "diverged":
        last = recoveries[-1] if recoveries else {}
        where = f" at epoch {last['epoch']}" if last.get("epoch") else ""
        return f"{unit} diverged{where}{tries} (training stopped: its loss kept blowing up)"
    best, reference = details.get("best_val_esr"), details.get("reference_esr")
    numbers = ""
    if best is not None and reference is not None:
        numbers = f": best validation ESR {best:.3g}, the trivial model's {reference:.3g}"
    return f"{unit} failed to learn{numbers}{tries}"
