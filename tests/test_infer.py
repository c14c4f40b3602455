"""Fast sliding-window inference: equal to model.predict, aligned, causal, streamed, and checked on load."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from sd1job.infer import windowed
from sd1job.infer.weights import ModelFileError, load_weights, weights_from_model
from sd1job.model import build_model

UNITS = 8


def saved_model_bytes(model: keras.Model, tmp_path: Path) -> bytes:
    path = tmp_path / "model.keras"
    model.save(path)
    return path.read_bytes()


@pytest.fixture(scope="module")
def models() -> dict[int, keras.Model]:
    keras.utils.set_random_seed(7)
    return {n: build_model(n, UNITS, 0.001) for n in (1, 5, 12)}


def signal(length: int, seed: int = 0) -> np.ndarray:
    return (0.5 * np.random.default_rng(seed).standard_normal(length)).astype(np.float32)


@pytest.mark.parametrize(("context", "block", "length"), [(1, 64, 300), (5, 37, 300), (12, 64, 300), (12, 16, 7)])
def test_fast_path_equals_model_predict_window_by_window(
    models: dict[int, keras.Model], context: int, block: int, length: int
) -> None:
    model = models[context]
    dry = signal(length)
    fast = windowed.SlidingWindowPredictor(weights_from_model(model, context, "m"), context, block).predict(dry)
    reference = windowed.keras_predict(model, dry, context, batch_size=128)
    assert fast.shape == reference.shape == (length,)
    np.testing.assert_allclose(fast, reference, atol=1e-5, rtol=0)
    # window by window, explicitly: output t is the model on dry[t-n+1 .. t] with zeros before the start
    padded = np.concatenate([np.zeros(context - 1, np.float32), dry])
    for t in (0, min(3, length - 1), length - 1):
        window = padded[t : t + context][None, :, None]
        assert fast[t] == pytest.approx(float(model.predict(window, verbose=0)[0, 0]), abs=1e-5)


def test_output_has_the_input_length_and_streams_in_blocks(models: dict[int, keras.Model]) -> None:
    predictor = windowed.SlidingWindowPredictor(weights_from_model(models[5], 5, "m"), 5, block=50)
    dry = signal(223)
    chunks = list(predictor.iter_blocks(dry))
    assert [len(c) for c in chunks] == [50, 50, 50, 50, 23]
    np.testing.assert_array_equal(np.concatenate(chunks), predictor.predict(dry))
    assert len(predictor.predict(dry[:1])) == 1


def test_causality_output_depends_on_the_past_window_only(models: dict[int, keras.Model]) -> None:
    context = 12
    predictor = windowed.SlidingWindowPredictor(weights_from_model(models[context], context, "m"), context, block=40)
    dry = signal(200, seed=1)
    base = predictor.predict(dry)
    t = 90
    future = dry.copy()
    future[t + 1] += 0.5
    changed_future = predictor.predict(future)
    np.testing.assert_array_equal(changed_future[: t + 1], base[: t + 1])
    assert abs(changed_future[t + 1] - base[t + 1]) > 1e-6
    present = dry.copy()
    present[t] += 0.5
    changed_present = predictor.predict(present)
    np.testing.assert_array_equal(changed_present[:t], base[:t])
    assert abs(changed_present[t] - base[t]) > 1e-6
    # a sample further back than the context no longer matters
    np.testing.assert_array_equal(changed_present[t + context :], base[t + context :])
    assert abs(changed_present[t + context - 1] - base[t + context - 1]) > 0


def test_load_weights_round_trip(models: dict[int, keras.Model], tmp_path: Path) -> None:
    data = saved_model_bytes(models[5], tmp_path)
    weights = load_weights(data, "store/c5/model.keras", 5)
    assert weights.units == UNITS
    dry = signal(100)
    np.testing.assert_allclose(
        windowed.SlidingWindowPredictor(weights, 5, 32).predict(dry),
        windowed.keras_predict(models[5], dry, 5),
        atol=1e-5,
    )


def test_wrong_context_is_a_one_line_error_naming_the_file(models: dict[int, keras.Model], tmp_path: Path) -> None:
    data = saved_model_bytes(models[12], tmp_path)
    with pytest.raises(ModelFileError) as caught:
        load_weights(data, "runs/r/models/c5/model.keras", 5)
    message = str(caught.value)
    assert "runs/r/models/c5/model.keras" in message and "(None, 5, 1)" in message and "\n" not in message


@pytest.mark.parametrize("content", [b"", b"not a keras file at all", b"PK\x03\x04 truncated zip"])
def test_unreadable_model_file_is_a_one_line_error(content: bytes) -> None:
    with pytest.raises(ModelFileError, match=r"^store/c5/model\.keras: ") as caught:
        load_weights(content, "store/c5/model.keras", 5)
    assert "\n" not in str(caught.value)


def test_zip_without_a_model_is_rejected() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(ModelFileError, match=r"model\.keras"):
        load_weights(buffer.getvalue(), "model.keras", 5)


def test_other_architecture_is_rejected(tmp_path: Path) -> None:
    inputs = keras.Input(shape=(5, 1))
    outputs = keras.layers.Dense(1)(keras.layers.Flatten()(inputs))
    data = saved_model_bytes(keras.Model(inputs, outputs), tmp_path)
    with pytest.raises(ModelFileError, match="one LSTM and one Dense"):
        load_weights(data, "model.keras", 5)


def test_stateful_model_weights_are_read_and_a_windowed_file_is_refused_as_stateful(
    models: dict[int, keras.Model], tmp_path: Path
) -> None:
    from sd1job.model import build_stateful_model

    stateful = build_stateful_model(UNITS)
    weights = weights_from_model(stateful, None, "s")
    assert weights.units == UNITS and weights.kernel.shape == (4 * UNITS,)
    with pytest.raises(ModelFileError, match="input shape"):
        load_weights(saved_model_bytes(models[5], tmp_path), "runs/r/models/c5/s25/model.keras", None)
