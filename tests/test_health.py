"""Training health, the pure rules: the divergence guard and whether a unit learned."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sd1job.health import (
    EXPLOSION_LEVEL,
    SPIKE_FACTOR,
    SPIKE_WINDOW,
    DivergenceGuard,
    outcome,
    trivial_esr,
)


def feed(guard: DivergenceGuard, losses: list[float], epoch: int = 1) -> list:
    """Every update's verdict (steps counted from 1)."""
    return [guard.observe(epoch, step, loss) for step, loss in enumerate(losses, start=1)]


def test_a_healthy_noisy_decline_never_trips_the_guard() -> None:
    # Per-batch ESR on the demo data varies about 7x within an epoch (quiet batches score high) while the
    # trend falls; the window median must ride that out.
    rng = np.random.default_rng(3)
    guard = DivergenceGuard()
    for epoch in range(1, 9):
        trend = 0.8 * 0.6**epoch
        losses = (trend * np.exp(rng.normal(0.0, 0.7, 120))).tolist()
        assert all(verdict is None for verdict in feed(guard, losses, epoch))
        assert guard.end_epoch(epoch) is None
    assert guard.lowest < 0.02


def test_a_spike_far_above_the_lowest_median_trips_and_names_its_numbers() -> None:
    guard = DivergenceGuard()
    feed(guard, [0.05] * 64)
    verdicts = feed(guard, [0.05 * (SPIKE_FACTOR + 1)] * SPIKE_WINDOW, epoch=2)
    tripped = next(v for v in verdicts if v is not None)
    assert tripped.rule == "loss_spike" and tripped.epoch == 2
    # The median of the window crosses only once more than half of it is high.
    assert tripped.step == SPIKE_WINDOW // 2 + 1
    assert tripped.reference == pytest.approx(0.05) and tripped.loss == pytest.approx(0.05 * (SPIKE_FACTOR + 1))
    assert "spiked at epoch 2" in tripped.describe()


def test_one_odd_batch_is_not_a_divergence_but_a_non_finite_one_is() -> None:
    guard = DivergenceGuard()
    feed(guard, [0.05] * 40)
    assert feed(guard, [50.0])[0] is None  # one quiet batch with a huge ESR: the median ignores it
    verdict = guard.observe(1, 42, math.nan)
    assert verdict is not None and verdict.rule == "non_finite"
    assert guard.observe(1, 43, math.inf).rule == "non_finite"


def test_a_loss_that_explodes_from_the_start_is_caught_when_there_is_no_lowest_yet() -> None:
    guard = DivergenceGuard()
    verdicts = feed(guard, [EXPLOSION_LEVEL * 100] * SPIKE_WINDOW)
    assert verdicts[-1] is not None and verdicts[-1].rule == "loss_explosion"
    # An epoch shorter than the window is judged as a whole when it ends.
    short = DivergenceGuard()
    assert all(v is None for v in feed(short, [EXPLOSION_LEVEL * 2] * 10))
    assert short.end_epoch(1).rule == "loss_explosion"


def test_tiny_losses_rising_fourfold_stay_under_the_floor() -> None:
    guard = DivergenceGuard()
    feed(guard, [0.001] * 64)
    assert all(v is None for v in feed(guard, [0.006] * 64, epoch=2))


def test_guard_state_round_trips_through_json_and_a_restart_empties_the_window() -> None:
    guard = DivergenceGuard()
    feed(guard, [0.3, 0.2] * 20)
    restored = DivergenceGuard.from_json(guard.to_json())
    assert restored.lowest == guard.lowest and list(restored.window) == list(guard.window)
    # The restored guard judges the next updates exactly as the original does.
    losses = [0.2] * 10 + [1.5] * 30
    assert [v and v.rule for v in feed(restored, losses, 2)] == [v and v.rule for v in feed(guard, losses, 2)]
    guard.restart()
    assert not guard.window and DivergenceGuard.from_json(None).lowest == math.inf


def test_trivial_esr_is_the_dry_signal_at_its_best_gain_or_silence() -> None:
    rng = np.random.default_rng(0)
    dry = rng.normal(size=4000)
    assert trivial_esr(dry, 0.3 * dry) == pytest.approx(0.0, abs=1e-12)  # a volume knob is trivial
    assert trivial_esr(dry, rng.normal(size=4000)) == pytest.approx(1.0, abs=0.01)  # unrelated: silence wins
    wet = np.tanh(3 * dry)
    gain = np.dot(dry, wet) / np.dot(dry, dry)
    assert trivial_esr(dry, wet) == pytest.approx(np.sum((wet - gain * dry) ** 2) / np.sum(wet**2))
    assert trivial_esr(np.zeros(10), wet[:10]) == 1.0


@pytest.mark.parametrize(
    ("stop_reason", "best", "reference", "expected"),
    [
        ("early_stopping", 0.03, 0.71, "learned"),
        ("max_epochs", 0.82, 0.71, "failed_to_learn"),  # the unit of the issue: worse than a wire
        ("max_epochs", 0.6, 0.71, "failed_to_learn"),  # below the wire, but not clearly
        ("max_epochs", 0.5, 0.71, "learned"),
        ("diverged", 0.03, 0.71, "diverged"),
        ("early_stopping", None, 0.71, "failed_to_learn"),
        ("early_stopping", 0.5, None, "learned"),  # no reference recorded: silence is the trivial model
        ("early_stopping", 0.9, None, "failed_to_learn"),
    ],
)
def test_outcome_rule(stop_reason: str, best: float | None, reference: float | None, expected: str) -> None:
    assert outcome(stop_reason, best, reference) == expected
