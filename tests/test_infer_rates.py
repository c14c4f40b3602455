"""The stateful model at other sample rates: delay-line taps, exactness at integer ratios, the method plan."""

from __future__ import annotations

import numpy as np
import pytest

from sd1job.infer.delayline import DelayLinePredictor, delay_taps, lagrange_weights
from sd1job.infer.rates import RatePlan, iter_outputs, plan, predictor_for, process
from sd1job.infer.stateful import StreamingPredictor
from sd1job.infer.weights import LstmWeights


def random_weights(units: int, seed: int = 0) -> LstmWeights:
    """Every weight drawn (not Keras' zero biases), so a mistake in any of them shows."""
    rng = np.random.default_rng(seed)
    draw = lambda *shape: (0.4 * rng.standard_normal(shape)).astype(np.float32)  # noqa: E731
    return LstmWeights(draw(4 * units), draw(units, 4 * units), draw(4 * units), draw(units), float(draw(1)[0]))


def signal(length: int, seed: int = 0) -> np.ndarray:
    return (0.5 * np.random.default_rng(seed).standard_normal(length)).astype(np.float32)


@pytest.mark.parametrize(
    ("run_rate", "delays", "position"),
    [(48000, [1, 2, 3, 4], 48000 / 44100 - 1), (96000, [1, 2, 3, 4], 96000 / 44100 - 1), (132300, [3], None)],
)
def test_delay_taps_read_around_the_rate_ratio(run_rate: int, delays: list[int], position: float | None) -> None:
    taps, weights = delay_taps(run_rate, 44100)
    assert taps.tolist() == delays
    assert weights.dtype == np.float32 and float(np.sum(weights)) == pytest.approx(1.0, abs=1e-6)
    if position is not None:
        np.testing.assert_allclose(weights, lagrange_weights(position), atol=1e-7)
    # the interpolated delay is M itself: weights reproduce a straight line exactly
    assert float(np.dot(weights, taps)) == pytest.approx(run_rate / 44100, abs=1e-5)


def test_centred_taps_above_twice_the_rate() -> None:
    taps, weights = delay_taps(100000, 44100)  # M = 2.27: taps 1..4, position 1.27 (centred)
    assert taps.tolist() == [1, 2, 3, 4]
    taps, weights = delay_taps(150000, 44100)  # M = 3.40: taps 2..5
    assert taps.tolist() == [2, 3, 4, 5]
    assert float(np.dot(weights, taps)) == pytest.approx(150000 / 44100, abs=1e-5)


def test_lagrange_weights_interpolate_a_cubic_exactly() -> None:
    weights = lagrange_weights(1.3)
    points = np.arange(4.0)
    assert float(np.dot(weights, points**3 - 2 * points)) == pytest.approx(1.3**3 - 2.6)


def test_delay_line_refuses_a_lower_rate() -> None:
    with pytest.raises(ValueError, match="at or above the training rate"):
        delay_taps(22050, 44100)


def test_at_the_training_rate_the_delay_line_is_the_ordinary_model() -> None:
    weights = random_weights(12, seed=1)
    dry = signal(3000)
    np.testing.assert_allclose(
        DelayLinePredictor(weights, 44100, 44100).predict(dry),
        StreamingPredictor(weights).predict(dry),
        atol=1e-6,
        rtol=0,
    )


def test_twice_the_rate_on_a_held_signal_repeats_the_trained_output_exactly() -> None:
    """M = 2 on x held for two samples: the even and the odd steps are each the model at the training rate."""
    weights = random_weights(16, seed=2)
    dry = signal(1500, seed=3)
    base = StreamingPredictor(weights).predict(dry)
    doubled = DelayLinePredictor(weights, 44100, 88200).predict(np.repeat(dry, 2))
    assert float(np.std(base)) > 0.02  # a signal, not a constant
    np.testing.assert_allclose(doubled[0::2], base, atol=1e-6, rtol=0)
    np.testing.assert_allclose(doubled[1::2], base, atol=1e-6, rtol=0)


def test_a_constant_input_settles_where_the_trained_model_settles() -> None:
    """The taps sum to one, so a fixed point of the model is a fixed point at any rate."""
    weights = random_weights(8, seed=4)
    weights = LstmWeights(weights.kernel, 0.3 * weights.recurrent, weights.bias, weights.dense_kernel, 0.1)
    dry = np.full(4000, 0.3, np.float32)
    settled = StreamingPredictor(weights).predict(dry)[-1]
    for run_rate in (48000, 96000):
        out = DelayLinePredictor(weights, 44100, run_rate).predict(dry)
        assert out[-1] == pytest.approx(settled, abs=1e-5)


def test_chunked_delay_line_equals_one_call() -> None:
    fast = DelayLinePredictor(random_weights(64, seed=5), 44100, 96000)
    dry = signal(4000, seed=6)
    whole = fast.predict(dry)
    pieces, state, start = [], None, 0
    for size in (1, 0, 999, 7, 1500, 1493):
        chunk, state = fast.stream(dry[start : start + size], state)
        pieces.append(chunk)
        start += size
    np.testing.assert_array_equal(np.concatenate(pieces), whole)
    assert not np.array_equal(whole, StreamingPredictor(fast.weights).predict(dry))


@pytest.mark.parametrize(
    ("kind", "method", "run_rate", "used", "noted"),
    [
        ("stateful", "delay", 96000, "delay", False),
        ("stateful", "delay", 22050, "resample", True),
        ("stateful", "resample", 48000, "resample", False),
        ("stateful", "naive", 22050, "naive", False),
        ("windowed", "delay", 48000, "resample", True),
        ("windowed", "naive", 48000, "naive", False),
        ("windowed", "resample", 44100, "resample", False),
    ],
)
def test_plan_picks_a_method_that_can_run(kind: str, method: str, run_rate: int, used: str, noted: bool) -> None:
    chosen = plan(kind, method, 44100, run_rate)
    assert chosen.method == used
    assert (chosen.note is not None) == noted
    assert chosen.model_rate == (44100 if used == "resample" else run_rate)


def test_plan_refuses_an_unknown_method() -> None:
    with pytest.raises(ValueError, match="unknown method"):
        plan("stateful", "cubic", 44100, 48000)


def test_process_resamples_round_trip_and_keeps_the_length() -> None:
    weights = random_weights(8, seed=7)
    base = StreamingPredictor(weights)
    dry = signal(4801, seed=8)
    seen: list[float] = []
    chosen = plan("stateful", "resample", 44100, 48000)
    out = process(predictor_for(chosen, base), dry, chosen, progress=seen.append, chunk=1000)
    assert out.shape == dry.shape and out.dtype == np.float32
    assert seen[-1] == 1.0 and len(seen) == 5 and seen == sorted(seen)  # 4411 model samples in chunks of 1000
    assert float(np.std(out)) > 0.01


def test_process_at_the_training_rate_is_the_plain_prediction() -> None:
    base = StreamingPredictor(random_weights(8, seed=9))
    dry = signal(3000, seed=10)
    for method in ("delay", "resample", "naive"):
        chosen = plan("stateful", method, 44100, 44100)
        out = process(predictor_for(chosen, base), dry, chosen, chunk=700)
        np.testing.assert_array_equal(out, base.predict(dry))


def test_iter_outputs_of_a_delay_line_join_to_the_whole() -> None:
    fast = predictor_for(RatePlan("delay", 44100, 48000), StreamingPredictor(random_weights(8, seed=11)))
    assert isinstance(fast, DelayLinePredictor)
    dry = signal(2500, seed=12)
    np.testing.assert_array_equal(np.concatenate(list(iter_outputs(fast, dry, chunk=600))), fast.predict(dry))
