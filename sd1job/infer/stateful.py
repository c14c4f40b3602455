"""Streaming inference of the stateful model: one LSTM step per sample, the state carried along.

The model (LSTM(u) -> Dense(1) on every step) is run from its weights at batch 1 in one compiled
numba loop over the samples, as a capture plugin runs it: output sample ``t`` is
``Dense(h_t)``, ``h_t`` the hidden state after consuming ``dry[t]`` (the alignment training
uses). ``stream`` returns the final state, so a long signal streamed in chunks, each chunk
starting from the state the previous one returned, gives exactly the output of one call.

Per step the work is the gate pre-activations ``z = bias + x * kernel + h @ recurrent`` (4u of
them) and the elementwise update. The (u x 4u) recurrent product dominates: it is accumulated
eight rows at a time, ``z += h[j] * recurrent[j, :] + ... + h[j+7] * recurrent[j+7, :]``, each row
a contiguous 4u vector, which LLVM turns into packed FMAs with one load and store of ``z`` per
eight rows. The gates use ``sigmoid(v) = 0.5 + 0.5 tanh(v / 2)`` (the halving is exact in binary
floating point), and tanh is the odd 13/6 rational minimax approximation that Eigen, XLA and ONNX
Runtime use for float32 (clamped at +-7.9053, where float32 tanh rounds to +-1): branch-free
arithmetic that vectorises, where a libm ``tanhf`` call per gate would cost more than the matrix
product (numba has no vector math library here). For the same reason the loops are compiled with
``error_model="numpy"`` (no zero-division branch in the division) and fastmath limited to
``contract`` (FMA) and ``reassoc`` (the blocked sums and the Dense dot product); no flag that
assumes away NaN or infinity. Everything is float32.

A GRU unit (``model.cell: gru``, ``GruWeights``) runs the same way in its own loop: the 3u sums
start from the biases that sit outside the reset gate (z's and r's input and recurrent biases
added together, then the candidate's recurrent bias, which the reset gate multiplies), the
(u x 3u) product is accumulated eight rows at a time, and then per unit ``z``, ``r``, the
candidate ``tanh(b_h + x W_h + r a_h)`` and ``h = z h + (1 - z) candidate``. Its state is ``h`` alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from sd1job.infer.weights import GruWeights, RecurrentWeights


@dataclass(frozen=True)
class LstmState:
    """The LSTM's hidden and cell state, each float32 ``(u,)``."""

    h: np.ndarray
    c: np.ndarray

    @classmethod
    def zeros(cls, units: int) -> LstmState:
        """The all-zero state the stateful model starts from in training and inference."""
        return cls(np.zeros(units, np.float32), np.zeros(units, np.float32))


@dataclass(frozen=True)
class GruState:
    """The GRU's hidden state, float32 ``(u,)`` (it has no cell state)."""

    h: np.ndarray

    @classmethod
    def zeros(cls, units: int) -> GruState:
        """The all-zero state the stateful model starts from in training and inference."""
        return cls(np.zeros(units, np.float32))


@numba.njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _tanh(v):  # type: ignore[no-untyped-def]
    """tanh(v) for a float32 v by the rational minimax approximation (error near float32 rounding)."""
    limit = np.float32(7.90531110763549805)
    v = min(max(v, -limit), limit)
    v2 = v * v
    p = np.float32(-2.76076847742355e-16)
    p = p * v2 + np.float32(2.00018790482477e-13)
    p = p * v2 + np.float32(-8.60467152213735e-11)
    p = p * v2 + np.float32(5.12229709037114e-08)
    p = p * v2 + np.float32(1.48572235717979e-05)
    p = p * v2 + np.float32(6.37261928875436e-04)
    p = p * v2 + np.float32(4.89352455891786e-03)
    q = np.float32(1.19825839466702e-06)
    q = q * v2 + np.float32(1.18534705686654e-04)
    q = q * v2 + np.float32(2.26843463243900e-03)
    q = q * v2 + np.float32(4.89352518554385e-03)
    return v * p / q


@numba.njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _add_recurrent(z, h, recurrent):  # type: ignore[no-untyped-def]
    """``z += h @ recurrent`` for every step kernel: eight rows of ``recurrent`` per pass over ``z`` (an eighth of
    the loads and stores of z, the rows streamed). Inlined, so it compiles with its caller's fastmath flags."""
    units = h.shape[0]
    width = z.shape[0]
    blocked = units - units % 8
    for j in range(0, blocked, 8):
        h0, h1, h2, h3 = h[j], h[j + 1], h[j + 2], h[j + 3]
        h4, h5, h6, h7 = h[j + 4], h[j + 5], h[j + 6], h[j + 7]
        for k in range(width):
            z[k] += (
                h0 * recurrent[j, k]
                + h1 * recurrent[j + 1, k]
                + h2 * recurrent[j + 2, k]
                + h3 * recurrent[j + 3, k]
                + h4 * recurrent[j + 4, k]
                + h5 * recurrent[j + 5, k]
                + h6 * recurrent[j + 6, k]
                + h7 * recurrent[j + 7, k]
            )
    for j in range(blocked, units):
        hj = h[j]
        for k in range(width):
            z[k] += hj * recurrent[j, k]


@numba.njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _lstm_update(z, cell_in, hidden_out, cell_out, dense):  # type: ignore[no-untyped-def]
    """The LSTM's step from its pre-activations ``z`` (input, forget, candidate, output blocks) and the previous
    cell ``cell_in``: writes the new cell and hidden state into ``cell_out`` and ``hidden_out`` (which may be
    ``cell_in`` and the hidden state ``z`` was computed from) and returns ``dense . hidden``. Inlined, whole loop
    and all, so the caller's loop over the units still vectorises (a helper per unit stopped it)."""
    units = cell_in.shape[0]
    half = np.float32(0.5)
    acc = np.float32(0.0)
    for j in range(units):
        input_gate = half + half * _tanh(half * z[j])
        forget_gate = half + half * _tanh(half * z[units + j])
        candidate = _tanh(z[2 * units + j])
        output_gate = half + half * _tanh(half * z[3 * units + j])
        cell = forget_gate * cell_in[j] + input_gate * candidate
        cell_out[j] = cell
        hidden = output_gate * _tanh(cell)
        hidden_out[j] = hidden
        acc += hidden * dense[j]
    return acc


@numba.njit(cache=True, nogil=True, error_model="numpy")
def tanh_approx(values):  # type: ignore[no-untyped-def]
    """The approximation ``stream`` uses, elementwise over a float32 array (exposed for its test)."""
    out = np.empty_like(values)
    for k in range(values.size):
        out[k] = _tanh(values[k])
    return out


@numba.njit(cache=True, nogil=True, fastmath={"contract", "reassoc"}, error_model="numpy")
def _stream(dry, kernel, recurrent, bias, dense, dense_bias, h, c, out):  # type: ignore[no-untyped-def]
    """Run the LSTM over ``dry``; write ``out[t] = dense . h_t + dense_bias``; update ``h``, ``c`` in place."""
    units = h.shape[0]
    four = 4 * units
    z = np.empty(four, np.float32)
    for t in range(dry.shape[0]):
        x = dry[t]
        for k in range(four):
            z[k] = bias[k] + x * kernel[k]
        _add_recurrent(z, h, recurrent)
        out[t] = _lstm_update(z, c, h, c, dense) + dense_bias


@numba.njit(cache=True, nogil=True, fastmath={"contract", "reassoc"}, error_model="numpy")
def _stream_gru(dry, kernel, recurrent, start, bias_h, dense, dense_bias, h, out):  # type: ignore[no-untyped-def]
    """Run the GRU over ``dry``; write ``out[t] = dense . h_t + dense_bias``; update ``h`` in place.

    ``start`` (3u): what each step's sums start from, ``bias_h`` (u): the candidate's input bias (both from
    ``gru_sums_start``). Written out in full like ``_stream``: small helper functions, even inlined, made the
    loop about twice as slow (measured).
    """
    units = h.shape[0]
    three = 3 * units
    half = np.float32(0.5)
    one = np.float32(1.0)
    z = np.empty(three, np.float32)
    for t in range(dry.shape[0]):
        x = dry[t]
        for k in range(three):
            z[k] = start[k]
        _add_recurrent(z, h, recurrent)
        acc = np.float32(0.0)
        for j in range(units):  # z holds every h U this step needs, so h is updated in place
            update = half + half * _tanh(half * (z[j] + x * kernel[j]))
            reset = half + half * _tanh(half * (z[units + j] + x * kernel[units + j]))
            candidate = _tanh(bias_h[j] + x * kernel[2 * units + j] + reset * z[2 * units + j])
            hidden = update * h[j] + (one - update) * candidate
            h[j] = hidden
            acc += hidden * dense[j]
        out[t] = acc + dense_bias


def gru_sums_start(weights: GruWeights) -> tuple[np.ndarray, np.ndarray]:
    """(3u start of each step's sums, u candidate input bias), float32: z's and r's two biases added (both sit
    outside the reset gate), the candidate's recurrent bias kept apart (the reset gate multiplies it)."""
    units = weights.units
    start = np.array(weights.recurrent_bias, dtype=np.float32)
    start[: 2 * units] += np.asarray(weights.bias[: 2 * units], np.float32)
    return start, np.ascontiguousarray(weights.bias[2 * units :], dtype=np.float32)


def check_shapes(weights: RecurrentWeights) -> None:
    """ValueError unless the weights have the shapes of an LSTM(u) (or GRU(u)) -> Dense(1)."""
    units, gates = weights.units, 3 if isinstance(weights, GruWeights) else 4
    arrays = [weights.kernel, weights.bias, weights.recurrent, weights.dense_kernel]
    expected = [(gates * units,), (gates * units,), (units, gates * units), (units,)]
    if isinstance(weights, GruWeights):
        arrays.append(weights.recurrent_bias)
        expected.append((gates * units,))
    shapes = tuple(np.shape(a) for a in arrays)
    if shapes != tuple(expected):
        name = "GRU" if gates == 3 else "LSTM"
        raise ValueError(f"weights have shapes {shapes}, not those of an {name}({units}) -> Dense(1)")


def _vector(values: Any, units: int, name: str) -> np.ndarray:
    array = np.array(values, dtype=np.float32).ravel()  # a fresh copy: the kernel updates it in place
    if array.shape != (units,):
        raise ValueError(f"{name} has shape {np.shape(values)}, expected ({units},)")
    return array


class StreamingPredictor:
    """Stream whole signals through the stateful model (LSTM or GRU), sample by sample, at batch 1."""

    def __init__(self, weights: RecurrentWeights) -> None:
        check_shapes(weights)
        units = weights.units
        self.weights = weights
        self.units = units
        self.gru = isinstance(weights, GruWeights)
        self._kernel = np.ascontiguousarray(weights.kernel, dtype=np.float32)
        self._recurrent = np.ascontiguousarray(weights.recurrent, dtype=np.float32)
        self._bias = np.ascontiguousarray(weights.bias, dtype=np.float32)
        self._dense = np.ascontiguousarray(weights.dense_kernel, dtype=np.float32)
        self._dense_bias = np.float32(weights.dense_bias)
        if isinstance(weights, GruWeights):
            self._start, self._bias_h = gru_sums_start(weights)

    def zero_state(self) -> LstmState | GruState:
        """The zero state (the default start of ``stream``)."""
        return GruState.zeros(self.units) if self.gru else LstmState.zeros(self.units)

    def warm_up(self) -> None:
        """Compile the loop, or load it from numba's cache, now (so timings exclude it)."""
        self.stream(np.zeros(1, np.float32))

    def stream(self, dry: np.ndarray, state: Any = None) -> tuple[np.ndarray, Any]:
        """Output for every sample of ``dry`` (float32, same length) from ``state`` (zeros if None); the end state.

        ``state`` (an ``LstmState``, or a ``GruState`` for a GRU) is not modified. Streaming a signal in
        consecutive chunks, each from the state the previous call returned, gives the same output as one
        call on the whole signal.
        """
        signal = np.ascontiguousarray(np.asarray(dry, dtype=np.float32).ravel())
        start = state or self.zero_state()
        h = _vector(start.h, self.units, "state h")
        out = np.empty(len(signal), np.float32)
        if self.gru:
            _stream_gru(
                signal, self._kernel, self._recurrent, self._start, self._bias_h, self._dense,
                self._dense_bias, h, out,
            )  # fmt: skip
            return out, GruState(h)
        c = _vector(start.c, self.units, "state c")
        _stream(signal, self._kernel, self._recurrent, self._bias, self._dense, self._dense_bias, h, c, out)
        return out, LstmState(h, c)

    def predict(self, dry: np.ndarray) -> np.ndarray:
        """The model's output for every sample of ``dry`` from the zero state (float32, same length)."""
        return self.stream(dry)[0]


def keras_predict_stateful(model: Any, dry: np.ndarray) -> np.ndarray:
    """The reference: Keras ``model.predict`` of a ``build_stateful_model`` model on ``(1, T, 1)`` from zero state."""
    signal = np.asarray(dry, dtype=np.float32).ravel()
    names = {layer.name for layer in model.layers}
    units = int(model.get_layer("gru" if "gru" in names else "lstm").units)
    zeros = np.zeros((1, units), np.float32)
    states = [zeros] if "gru" in names else [zeros, zeros]
    wet = model.predict([signal[None, :, None], *states], batch_size=1, verbose=0)[0]
    return np.asarray(wet, dtype=np.float32)[0, :, 0]
