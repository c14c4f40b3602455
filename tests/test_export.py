""".nam export: the file NAM's loaders read reproduces sd1job's streaming output; broken files are caught.

``NamCoreLstm`` below is an independent numpy implementation of NAM's C++ LSTM
(NeuralAmpModelerCore ``NAM/lstm.cpp``: ``LSTMCell``'s constructor reads, per layer, the
row-major (4H x (I + H)) matrix, the bias, the initial hidden then cell state; the head weight
and bias follow; ``process_`` computes ``ifgo = W [x; h] + b``, ``c = sig(f) c + sig(i) tanh(g)``,
``h = sig(o) tanh(c)``; ``DSP::prewarm`` runs zeros in whole buffers until at least
``PrewarmSamples() = 0.5 * sample_rate`` samples are done). It reads only the JSON document.
"""

from __future__ import annotations

import copy
import json
import math
from datetime import datetime
from typing import Any

import numpy as np
import pytest

from sd1job.errors import UserError
from sd1job.export import (
    ExportError,
    NamFileError,
    NamMetadata,
    build_nam,
    check_nam,
    decode_nam,
    encode_nam,
    lstm_weight_count,
    nam_weights,
    require_exportable,
)
from sd1job.infer.stateful import LstmState, StreamingPredictor
from sd1job.infer.weights import LstmWeights
from sd1job.scores import esr

UNITS = 16
RATE = 44100
TRAINING = {"unit": "stateful-s25", "epochs": 8, "val_esr": 0.0123, "contexts": None}


class NamCoreLstm:
    """NAM core's LSTM as its loader builds it from a ``.nam`` document (float32, one sample at a time)."""

    def __init__(self, document: dict[str, Any]) -> None:
        config = document["config"]
        hidden, layers = config["hidden_size"], config["num_layers"]
        weights = np.asarray(document["weights"], dtype=np.float32)  # nlohmann json -> std::vector<float>
        self.sample_rate = float(document.get("sample_rate", -1.0))
        self.hidden = hidden
        self.layers: list[dict[str, np.ndarray]] = []
        at = 0

        def take(count: int) -> np.ndarray:
            nonlocal at
            part = weights[at : at + count].copy()
            assert len(part) == count, "the file ran out of weights"
            at += count
            return part

        for index in range(layers):
            width = (config["input_size"] if index == 0 else hidden) + hidden
            matrix = take(4 * hidden * width).reshape(4 * hidden, width)  # row-major, as PyTorch stores it
            self.layers.append({"w": matrix, "b": take(4 * hidden), "h": take(hidden), "c": take(hidden)})
        self.head_weight = take(hidden)
        self.head_bias = take(1)[0]
        assert at == len(weights), "weights left over after the head"

    @staticmethod
    def _sigmoid(x: np.ndarray) -> np.ndarray:
        return (np.float32(1.0) / (np.float32(1.0) + np.exp(-x))).astype(np.float32)

    def _sample(self, x: np.float32) -> np.float32:
        size = self.hidden
        feature = np.array([x], np.float32)
        for layer in self.layers:
            ifgo = layer["w"] @ np.concatenate([feature, layer["h"]]) + layer["b"]
            input_gate, forget_gate = self._sigmoid(ifgo[:size]), self._sigmoid(ifgo[size : 2 * size])
            cell = forget_gate * layer["c"] + input_gate * np.tanh(ifgo[2 * size : 3 * size])
            layer["c"] = cell
            layer["h"] = self._sigmoid(ifgo[3 * size :]) * np.tanh(cell)
            feature = layer["h"]
        return np.float32(self.head_weight @ feature + self.head_bias)

    def process(self, dry: np.ndarray) -> np.ndarray:
        """``DSP::process``: the output for each input sample, the state carried on."""
        return np.array([self._sample(x) for x in np.asarray(dry, np.float32)], np.float32)

    def prewarm(self, buffer_size: int = 4096) -> int:
        """``DSP::prewarm``: zeros in whole buffers until ``PrewarmSamples()`` are done; returns how many ran."""
        wanted = int(0.5 * self.sample_rate) if self.sample_rate > 0 else 1
        done = 0
        while done < wanted:
            self.process(np.zeros(buffer_size, np.float32))
            done += buffer_size
        return done


def random_weights(units: int, seed: int = 0) -> LstmWeights:
    rng = np.random.default_rng(seed)

    def draw(*shape: int, scale: float = 0.4) -> np.ndarray:
        return (scale * rng.standard_normal(shape)).astype(np.float32)

    return LstmWeights(draw(4 * units), draw(units, 4 * units), draw(4 * units), draw(units), float(draw(1)[0]))


def riff(length: int, seed: int = 1) -> np.ndarray:
    t = np.arange(length) / RATE
    rng = np.random.default_rng(seed)
    return (0.6 * np.sin(2 * np.pi * 110 * t) * np.exp(-3 * t) + 0.05 * rng.standard_normal(length)).astype(np.float32)


def metadata(**overrides: Any) -> NamMetadata:
    fields: dict[str, Any] = {"name": "SD-1 stateful", "date": datetime(2026, 11, 2, 9, 30, 5), "training": TRAINING}
    return NamMetadata(**(fields | overrides))


@pytest.fixture(scope="module")
def weights() -> LstmWeights:
    return random_weights(UNITS)


@pytest.fixture(scope="module")
def document(weights: LstmWeights) -> dict[str, Any]:
    return build_nam(weights, RATE, metadata(gear_make="Boss", gear_model="SD-1", tone_type="overdrive"))


def test_exported_file_reproduces_the_streaming_predictor(weights: LstmWeights, document: dict[str, Any]) -> None:
    read_back = json.loads(encode_nam(document))  # what a player parses
    dry = riff(3000)
    nam = NamCoreLstm(read_back).process(dry)  # NAM's Python loader too starts from the file's state, no prewarm
    ours = StreamingPredictor(weights).predict(dry)
    assert float(np.std(ours)) > 0.02  # an output that moves with the input
    assert esr(ours, nam) <= 1e-4
    np.testing.assert_allclose(nam, ours, atol=1e-5, rtol=0)


def test_a_plugin_after_its_prewarm_equals_streaming_after_that_many_zeros(weights: LstmWeights) -> None:
    document = build_nam(weights, 16000, metadata())
    plugin = NamCoreLstm(document)
    warmed = plugin.prewarm(buffer_size=4096)
    assert warmed == 8192  # 0.5 s at 16 kHz = 8000 samples, rounded up to whole buffers
    dry = riff(400)
    fast = StreamingPredictor(weights)
    _, state = fast.stream(np.zeros(warmed, np.float32))
    after_zeros, _ = fast.stream(dry, state)
    played = plugin.process(dry)
    assert esr(after_zeros, played) <= 1e-4
    # and the prewarm matters: from zeros the start differs
    assert float(np.max(np.abs(fast.predict(dry)[:10] - played[:10]))) > 1e-3


def test_a_given_initial_state_is_where_nam_starts(weights: LstmWeights) -> None:
    rng = np.random.default_rng(8)
    start = LstmState(rng.uniform(-0.5, 0.5, UNITS).astype(np.float32), rng.uniform(-1, 1, UNITS).astype(np.float32))
    document = build_nam(weights, RATE, metadata(), initial_state=start)
    dry = riff(500, seed=3)
    ours, _ = StreamingPredictor(weights).stream(dry, start)
    assert esr(ours, NamCoreLstm(document).process(dry)) <= 1e-4


def test_weight_order_is_nams_concatenated_matrix_bias_state_then_head(weights: LstmWeights) -> None:
    flat = nam_weights(weights)
    h = UNITS
    assert flat.size == lstm_weight_count(1, h, 1) == 4 * h * (1 + h) + 6 * h + h + 1
    matrix = flat[: 4 * h * (1 + h)].reshape(4 * h, 1 + h)
    np.testing.assert_array_equal(matrix[:, 0], weights.kernel)  # W_ih column: Keras' kernel, same gate order
    np.testing.assert_array_equal(matrix[:, 1:], weights.recurrent.T)  # W_hh = Keras' recurrent kernel transposed
    at = 4 * h * (1 + h)
    np.testing.assert_array_equal(flat[at : at + 4 * h], weights.bias)
    np.testing.assert_array_equal(flat[at + 4 * h : at + 6 * h], np.zeros(2 * h, np.float32))  # h0 then c0
    np.testing.assert_array_equal(flat[at + 6 * h : at + 7 * h], weights.dense_kernel)
    assert flat[-1] == np.float32(weights.dense_bias)


def test_document_fields_follow_nams_format(document: dict[str, Any]) -> None:
    assert document["version"] == "0.5.4"
    assert document["architecture"] == "LSTM"
    assert document["config"] == {"input_size": 1, "hidden_size": UNITS, "num_layers": 1}
    assert document["sample_rate"] == 44100.0
    assert document["metadata"] == {
        "date": {"year": 2026, "month": 11, "day": 2, "hour": 9, "minute": 30, "second": 5},
        "name": "SD-1 stateful",
        "modeled_by": "sd1job",
        "gear_type": "pedal",
        "gear_make": "Boss",
        "gear_model": "SD-1",
        "tone_type": "overdrive",
        "sd1job_training": TRAINING,
    }
    assert "gear_make" not in build_nam(random_weights(4), RATE, metadata())["metadata"]


def test_round_trip_through_json_is_exact(weights: LstmWeights, document: dict[str, Any]) -> None:
    data = encode_nam(document)
    assert isinstance(data, bytes)
    decoded = decode_nam(data, "model.nam")
    assert decoded == document
    np.testing.assert_array_equal(np.asarray(decoded["weights"], np.float32), nam_weights(weights))


def _broken(document: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """A deep copy with the field at ``path`` set to ``value``: ``DELETE`` removes it, ``DROP_LAST`` shortens it."""
    broken = copy.deepcopy(document)
    parent = broken
    for key in path[:-1]:
        parent = parent[key]
    if value is DELETE:
        del parent[path[-1]]
    elif value is DROP_LAST:
        parent[path[-1]].pop()
    else:
        parent[path[-1]] = value
    return broken


DELETE, DROP_LAST = object(), object()
BROKEN = [
    (("weights",), DROP_LAST, r"weights has 1200 numbers, NAM's LSTM with input_size 1, hidden_size 16, .* 1201$"),
    (("weights",), DELETE, r"missing field 'weights'"),
    (("config",), DELETE, r"missing field 'config'"),
    (("version",), DELETE, r"missing field 'version'"),
    (("architecture",), "ConvNet", r"architecture 'ConvNet' is not 'LSTM'"),
    (("architecture",), "WaveNet", r"config.layers is not a non-empty list"),  # read as a WaveNet
    (("version",), "0.4.0", r"version 0.4.0 is not one NAM's loaders read"),
    (("version",), "0.8.0", r"version 0.8.0 is not one NAM's loaders read"),
    (("version",), "0.5", r"version '0.5' is not a semantic version"),
    (("version",), 5, r"version 5 is not a semantic version"),
    (("config", "hidden_size"), 15, r"weights has 1201 numbers, .* hidden_size 15, .* reads 1066"),
    (("config", "hidden_size"), "16", r"config.hidden_size is '16', not a positive integer"),
    (("config", "num_layers"), 0, r"config.num_layers is 0, not a positive integer"),
    (("config", "num_layers"), True, r"config.num_layers is True, not a positive integer"),
    (("config", "input_size"), 2, r"config.input_size is 2; a player feeds the LSTM 1 input"),
    (("config", "in_channels"), 1, r"config has keys .*, NAM's LSTM takes exactly \['input_size', 'hidden_size'"),
    (("config",), [1, 16, 1], r"config is not a JSON object"),
    (("weights", 5), float("nan"), r"weights\[5\] is nan, not a finite number"),
    (("weights", 7), "0.1", r"weights\[7\] is '0.1', not a finite number"),
    (("weights", 9), False, r"weights\[9\] is False, not a finite number"),
    (("sample_rate",), -44100, r"sample_rate is -44100, not a positive number of Hz"),
    (("extra",), 1, r"unknown field 'extra'"),
    (("metadata",), "SD-1", r"metadata is not a JSON object"),
    (("metadata", "gear_type"), "guitar", r"metadata.gear_type is 'guitar', not one of amp, pedal"),
    (("metadata", "tone_type"), "loud", r"metadata.tone_type is 'loud', not one of clean"),
    (("metadata", "name"), 7, r"metadata.name is 7, not a string"),
    (("metadata", "date", "second"), DELETE, r"metadata.date is not an object of year, month, day"),
    (("metadata", "date", "hour"), 9.5, r"metadata.date.hour is 9.5, not an integer"),
    (("metadata", "input_level_dbu"), "hot", r"metadata.input_level_dbu is 'hot', not a finite number"),
    (("metadata", "sd1job_training"), [1], r"metadata.sd1job_training is not a JSON object"),
]


@pytest.mark.parametrize(("path", "value", "message"), BROKEN, ids=[" ".join(map(str, b[0])) for b in BROKEN])
def test_checker_catches_broken_documents(
    document: dict[str, Any], path: tuple[str | int, ...], value: Any, message: str
) -> None:
    check_nam(document, "model.nam")  # the intact document passes
    with pytest.raises(NamFileError, match=message) as caught:
        check_nam(_broken(document, path, value), "model.nam")
    assert isinstance(caught.value, UserError)
    assert str(caught.value).startswith("model.nam: ") and "\n" not in str(caught.value)


def test_checker_refuses_what_is_not_a_document() -> None:
    with pytest.raises(NamFileError, match=r"^model.nam: not a JSON object$"):
        check_nam([1, 2], "model.nam")
    with pytest.raises(NamFileError, match=r"^model.nam: not a JSON file"):
        decode_nam(b"{not json", "model.nam")


def test_encode_refuses_a_broken_document(document: dict[str, Any]) -> None:
    with pytest.raises(NamFileError, match=r"weights has"):
        encode_nam(_broken(document, ("weights",), DROP_LAST))


def test_a_windowed_model_is_refused_with_a_one_line_reason() -> None:
    require_exportable("stateful")
    with pytest.raises(ExportError) as caught:
        require_exportable("windowed")
    message = str(caught.value)
    assert isinstance(caught.value, UserError) and "\n" not in message
    assert message.startswith("a windowed model cannot be exported to .nam") and "no NAM player" in message
    with pytest.raises(ExportError, match=r"model kind 'gru' is not one of windowed, stateful"):
        require_exportable("gru")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"training": {"when": datetime(2026, 1, 1)}}, r"metadata training information is not plain JSON"),
        ({"training": {"esr": math.nan}}, r"metadata training information is not plain JSON"),
        ({"tone_type": "loud"}, r"metadata tone_type 'loud' is not one of NAM's clean"),
    ],
)
def test_metadata_that_nam_cannot_carry_is_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ExportError, match=message):
        metadata(**overrides)


@pytest.mark.parametrize("rate", [0, -1.0, math.nan, math.inf])
def test_a_sample_rate_that_is_not_positive_is_refused(weights: LstmWeights, rate: float) -> None:
    with pytest.raises(ExportError, match=r"sample rate .* is not a positive number of Hz"):
        build_nam(weights, rate, metadata())
