"""Streaming inference of the stateful model: equal to Keras, aligned, causal, and chunkable."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from sd1job.infer import stateful
from sd1job.infer.stateful import LstmState, StreamingPredictor, keras_predict_stateful
from sd1job.infer.weights import weights_from_model
from sd1job.model import build_stateful_model


@pytest.fixture(scope="module")
def models() -> dict[int, keras.Model]:
    keras.utils.set_random_seed(11)
    built = {units: build_stateful_model(units) for units in (8, 12, 64)}
    # Keras initialises biases to zero (forget gate one) and the head bias to zero: draw every
    # weight instead, so a mistake in any of them (gate order, bias, head bias) shows.
    rng = np.random.default_rng(5)
    for model in built.values():
        model.set_weights([(0.4 * rng.standard_normal(w.shape)).astype(np.float32) for w in model.get_weights()])
    return built


def signal(length: int, seed: int = 0) -> np.ndarray:
    return (0.5 * np.random.default_rng(seed).standard_normal(length)).astype(np.float32)


def predictor(model: keras.Model) -> StreamingPredictor:
    return StreamingPredictor(weights_from_model(model, None, "m"))


@pytest.mark.parametrize(("units", "length"), [(8, 1), (8, 2000), (12, 37), (64, 1), (64, 3000)])
def test_streaming_equals_keras_model_predict(models: dict[int, keras.Model], units: int, length: int) -> None:
    model = models[units]
    dry = signal(length, seed=units)
    out = predictor(model).predict(dry)
    reference = keras_predict_stateful(model, dry)
    assert out.dtype == np.float32 and out.shape == reference.shape == (length,)
    assert length == 1 or float(np.std(reference)) > 0.05  # a signal, not a constant any bias would match
    np.testing.assert_allclose(out, reference, atol=1e-5, rtol=0)


def test_start_state_and_end_state_match_keras(models: dict[int, keras.Model]) -> None:
    model = models[12]
    rng = np.random.default_rng(3)
    start = LstmState(rng.uniform(-0.9, 0.9, 12).astype(np.float32), rng.uniform(-2, 2, 12).astype(np.float32))
    dry = signal(200, seed=9)
    out, end = predictor(model).stream(dry, start)
    wet, h, c = model.predict([dry[None, :, None], start.h[None], start.c[None]], verbose=0)
    np.testing.assert_allclose(out, wet[0, :, 0], atol=1e-5, rtol=0)
    np.testing.assert_allclose(end.h, h[0], atol=1e-5, rtol=0)
    np.testing.assert_allclose(end.c, c[0], atol=1e-5, rtol=0)
    # h and c are not interchangeable: swapping them changes the output
    swapped, _ = predictor(model).stream(dry, LstmState(start.c, start.h))
    assert np.max(np.abs(swapped - out)) > 1e-3


def test_chunked_streaming_equals_one_call(models: dict[int, keras.Model]) -> None:
    fast = predictor(models[64])
    dry = signal(5000, seed=2)
    whole, whole_end = fast.stream(dry)
    pieces, state, start = [], None, 0
    for size in (1, 0, 999, 7, 2500, 1493):
        chunk, state = fast.stream(dry[start : start + size], state)
        assert len(chunk) == size
        pieces.append(chunk)
        start += size
    assert start == len(dry)
    np.testing.assert_array_equal(np.concatenate(pieces), whole)
    np.testing.assert_array_equal(state.h, whole_end.h)
    np.testing.assert_array_equal(state.c, whole_end.c)


def test_stream_does_not_modify_the_given_state(models: dict[int, keras.Model]) -> None:
    fast = predictor(models[8])
    start = LstmState(np.full(8, 0.25, np.float32), np.full(8, -0.5, np.float32))
    _, end = fast.stream(signal(50), start)
    np.testing.assert_array_equal(start.h, np.full(8, 0.25, np.float32))
    np.testing.assert_array_equal(start.c, np.full(8, -0.5, np.float32))
    assert not np.array_equal(end.h, start.h)


def test_output_t_is_the_head_after_consuming_sample_t_and_depends_on_the_past_only(
    models: dict[int, keras.Model],
) -> None:
    fast = predictor(models[8])
    weights = fast.weights
    dry = signal(300, seed=4)
    base = fast.predict(dry)
    # alignment: output t is Dense(h_t), h_t the state after dry[0..t]
    for t in (0, 1, 150):
        _, state = fast.stream(dry[: t + 1])
        assert base[t] == pytest.approx(float(state.h @ weights.dense_kernel + weights.dense_bias), abs=1e-6)
    t = 120
    future = dry.copy()
    future[t + 1] += 0.5
    np.testing.assert_array_equal(fast.predict(future)[: t + 1], base[: t + 1])
    present = dry.copy()
    present[t] += 0.5
    changed = fast.predict(present)
    np.testing.assert_array_equal(changed[:t], base[:t])
    assert abs(changed[t] - base[t]) > 1e-6


def test_state_of_the_wrong_size_is_refused(models: dict[int, keras.Model]) -> None:
    with pytest.raises(ValueError, match=r"state h has shape \(7,\), expected \(8,\)"):
        predictor(models[8]).stream(signal(10), LstmState(np.zeros(7, np.float32), np.zeros(8, np.float32)))


def test_tanh_approximation_is_float32_accurate_and_saturates() -> None:
    x = np.linspace(-20.0, 20.0, 400_001, dtype=np.float32)
    approx = stateful.tanh_approx(x)
    assert approx.dtype == np.float32
    assert float(np.max(np.abs(approx.astype(np.float64) - np.tanh(x.astype(np.float64))))) < 1e-6
    np.testing.assert_array_equal(approx, -stateful.tanh_approx(-x))  # odd
    assert float(np.max(np.abs(approx))) <= 1.0
    assert stateful.tanh_approx(np.array([0.0, 9.0, -30.0], np.float32)).tolist() == pytest.approx([0.0, 1.0, -1.0])
