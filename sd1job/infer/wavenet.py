"""Fast streaming inference of NAM's WaveNet: block processing with each layer's history carried along.

Per block of B samples every convolution is a few (B x c) @ (c x c) matrix products (numpy's BLAS,
float32): a dilated layer of kernel k and dilation d reads its input at lags 0, d, .., (k-1) d, so
it keeps the last ``(k - 1) d`` rows of its input (its history) in front of the block's rows in
one buffer and multiplies k shifted views of that buffer by the k taps of its kernel. A block's
work is then a few dozen BLAS calls and tanh over (B x c) arrays, instead of one tiny product per
sample; the history makes the output independent of where blocks start, so streaming a signal
in pieces of any size gives one call's output.

The start: NAM pads R - 1 zeros in front of a signal (its ``pad_start``), so every layer's history
at the first sample is what a silent input leaves there, not zeros (each layer's bias and tanh make
it non-zero). The predictor's start state is computed once by streaming R - 1 zeros from all-zero
histories (after R - 1 samples every history holds the silent input's values), so output t equals
NAM's and Keras' ``predict_signal``: a function of ``dry[t-R+1 .. t]`` with zeros before the start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sd1job.infer.weights import ModelFileError, load_model_bytes
from sd1job.wavenet_presets import WavenetSpec, preset_spec

DEFAULT_BLOCK = 4096  # standard: as fast as 1,024 on AVX-512, 1.12x faster on AVX2 code paths (bench_infer_wavenet)


@dataclass(frozen=True)
class LayerWeights:
    """One layer: conv taps (k, c, c) oldest lag first (Keras' kernel layout), its bias, the dry mixer (c,), the
    residual 1x1 (c, c) and its bias (None for the last layer of the last array, whose residual feeds nothing)."""

    conv: np.ndarray
    conv_bias: np.ndarray
    mixer: np.ndarray
    out: np.ndarray | None
    out_bias: np.ndarray | None
    dilation: int


@dataclass(frozen=True)
class ArrayWeights:
    """One layer array: the input re-channel (in, c), its layers, the head re-channel (c, h) and its bias (h,)."""

    rechannel: np.ndarray
    layers: tuple[LayerWeights, ...]
    head: np.ndarray
    head_bias: np.ndarray


@dataclass(frozen=True)
class WavenetWeights:
    """Every weight of a WaveNet, with the spec it follows."""

    spec: WavenetSpec
    arrays: tuple[ArrayWeights, ...]


def _layer_weights(model: object, name: str, source: str) -> list[np.ndarray]:
    try:
        return [np.asarray(w, np.float32) for w in model.get_layer(name).get_weights()]  # type: ignore[attr-defined]
    except ValueError:
        raise ModelFileError(f"{source}: no layer {name!r}: not sd1job's WaveNet of this preset") from None


def wavenet_weights_from_model(model: object, spec: WavenetSpec, source: str = "the model") -> WavenetWeights:
    """Take a ``build_wavenet(spec)`` model's weights by layer name; ModelFileError if they do not fit ``spec``."""
    arrays = []
    last = len(spec.arrays) - 1
    for a, array in enumerate(spec.arrays):
        (rechannel,) = _layer_weights(model, f"a{a}_rechannel", source)
        layers = []
        for index, dilation in enumerate(array.dilations):
            prefix = f"a{a}_l{index}"
            conv, conv_bias = _layer_weights(model, f"{prefix}_conv", source)
            (mixer,) = _layer_weights(model, f"{prefix}_mixer", source)
            out = out_bias = None
            if not (a == last and index == len(array.dilations) - 1):
                out, out_bias = _layer_weights(model, f"{prefix}_1x1", source)
                out = out[0]
            c = array.channels
            if conv.shape != (array.kernel_size, c, c) or mixer.shape != (1, 1, c):
                raise ModelFileError(f"{source}: layer {prefix} has shapes {conv.shape}, {mixer.shape}")
            layers.append(LayerWeights(conv, conv_bias, mixer[0, 0], out, out_bias, dilation))
        head_weights = _layer_weights(model, f"a{a}_head", source)
        head = head_weights[0][0]
        head_bias = head_weights[1] if array.head_bias else np.zeros(array.head_size, np.float32)
        if rechannel.shape != (1, array.input_size, array.channels) or head.shape != (array.channels, array.head_size):
            raise ModelFileError(f"{source}: array {a} re-channel or head shapes differ from the preset's")
        arrays.append(ArrayWeights(rechannel[0], tuple(layers), head, head_bias))
    return WavenetWeights(spec, tuple(arrays))


def load_wavenet_weights(data: bytes, source: str, preset: str) -> WavenetWeights:
    """The checked weights of a ``.keras`` file's bytes holding sd1job's WaveNet of ``preset``."""
    return wavenet_weights_from_model(load_model_bytes(data, source), preset_spec(preset), source)


@dataclass
class WavenetState:
    """Every layer's history: its last ``(k - 1) d`` input rows, float32, in layer order across the arrays."""

    histories: list[np.ndarray]

    def copy(self) -> WavenetState:
        """An independent copy (streaming updates a state in place)."""
        return WavenetState([h.copy() for h in self.histories])


class WavenetPredictor:
    """Stream signals through a WaveNet from its weights, block by block (module docstring)."""

    def __init__(self, weights: WavenetWeights, block: int = DEFAULT_BLOCK) -> None:
        if block <= 0:
            raise ValueError("block must be positive")
        self.weights = weights
        self.block = block
        self.receptive_field = weights.spec.receptive_field
        self._head_scale = np.float32(weights.spec.head_scale)
        silent = WavenetState(
            [
                np.zeros(((array.kernel_size - 1) * dilation, array.channels), np.float32)
                for array in weights.spec.arrays
                for dilation in array.dilations
            ]
        )
        self._start = self._run(np.zeros(self.receptive_field - 1, np.float32), silent)[1]

    def zero_state(self) -> WavenetState:
        """The state after silence (what NAM's zero padding leaves): the default start of ``stream``."""
        return self._start.copy()

    def warm_up(self) -> None:
        """Nothing to compile (numpy); kept for the predictors' common interface."""
        self.stream(np.zeros(1, np.float32))

    def stream(self, dry: np.ndarray, state: WavenetState | None = None) -> tuple[np.ndarray, WavenetState]:
        """Output for every sample of ``dry`` (float32, same length) from ``state`` (after silence if None).

        ``state`` is not modified; the end state is returned, so consecutive chunks, each from the
        state the previous call returned, give the same output as one call on the whole signal.
        """
        signal = np.ascontiguousarray(np.asarray(dry, dtype=np.float32).ravel())
        return self._run(signal, (state or self._start).copy())

    def predict(self, dry: np.ndarray) -> np.ndarray:
        """The model's output for every sample of ``dry`` from the silent start (float32, same length)."""
        return self.stream(dry)[0]

    def _run(self, signal: np.ndarray, state: WavenetState) -> tuple[np.ndarray, WavenetState]:
        out = np.empty(len(signal), np.float32)
        for start in range(0, len(signal), self.block):
            stop = min(start + self.block, len(signal))
            out[start:stop] = self._block(signal[start:stop], state.histories)
        return out, state

    def _block(self, dry: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        """One block's output; every layer's history is advanced in place (replaced in ``histories``)."""
        count = len(dry)
        column = dry[:, None]
        x = column
        head: np.ndarray | None = None
        position = 0
        for array in self.weights.arrays:
            x = x @ array.rechannel
            channels = array.rechannel.shape[1]
            accumulated = np.zeros((count, channels), np.float32) if head is None else head
            z, scratch = np.empty((count, channels), np.float32), np.empty((count, channels), np.float32)
            for layer in array.layers:
                lag = layer.dilation
                buffer = np.concatenate([histories[position], x])
                np.matmul(buffer[:count], layer.conv[0], out=z)
                for tap in range(1, layer.conv.shape[0]):
                    z += np.matmul(buffer[tap * lag : tap * lag + count], layer.conv[tap], out=scratch)
                z += layer.conv_bias
                z += np.multiply(column, layer.mixer, out=scratch)
                activation = np.tanh(z, out=z)
                histories[position] = buffer[count:].copy()  # the last (k - 1) d input rows
                position += 1
                accumulated += activation
                if layer.out is not None:
                    x = buffer[len(buffer) - count :] + layer.out_bias
                    x += np.matmul(activation, layer.out, out=scratch)
            head = accumulated @ array.head + array.head_bias
        assert head is not None
        return head[:, 0] * self._head_scale
