"""The stateful model at a higher sample rate than it was trained at: the recurrence reads a delayed state.

Carson, Wright, Chowdhury, Valimaki and Bilbao, "Sample rate independent recurrent neural
networks for audio effects processing" (DAFx 2024): a recurrent model trained at rate ``F`` and
run at ``M F`` (``M >= 1``) keeps its time constants if step ``n`` reads the state of ``M``
samples ago, ``(h, c)[n - M]``, instead of ``(h, c)[n - 1]``: one step then spans the same
time as one step in training. For an integer ``M`` (88.2 kHz for a 44.1 kHz model) the read is
exact; for a non-integer ``M`` (48 or 96 kHz) the delayed state is interpolated from four stored
states by cubic Lagrange interpolation (the paper's best non-integer method): with
``M >= 2`` the taps are the delays ``floor(M) - 1 .. floor(M) + 2`` around ``M``; with
``1 < M < 2`` they are ``1 .. 4`` (the most recent state is one sample old, so the taps cannot be
centred). ``M = 1`` is the ordinary model. Below the training rate (``M < 1``) the state it would
need is in the future: resample instead (``sd1job.infer.rates``).

The kernel is the same compiled loop as ``sd1job.infer.stateful`` (same gate arithmetic, same
rational tanh, same fastmath limits) with a ring buffer of the last ``floor(M) + 2`` states; the
interpolation adds ``2 x 4 x u`` multiply-adds per sample to the ``4u x u`` recurrent product.
Output sample ``t`` is ``Dense(h_t)``, as at the training rate.

A GRU (``GruWeights``) has one state, ``h``: its step reads the delayed ``h[n - M]`` in both the
recurrent product and the update ``h = z h[n - M] + (1 - z) candidate`` (where the LSTM's reads
the delayed ``c``), and its ring holds ``u`` values per row instead of ``2u``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numba
import numpy as np

from sd1job.infer.stateful import _add_recurrent, _lstm_update, _tanh, check_shapes, gru_sums_start
from sd1job.infer.weights import GruWeights, RecurrentWeights

LAGRANGE_ORDER = 3


def lagrange_weights(position: float, order: int = LAGRANGE_ORDER) -> np.ndarray:
    """Weights of the ``order + 1`` points ``0 .. order`` that interpolate a polynomial at ``position``."""
    weights = np.ones(order + 1)
    for n in range(order + 1):
        for k in range(order + 1):
            if k != n:
                weights[n] *= (position - k) / (n - k)
    return weights


def delay_taps(run_rate: int, training_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """The delays (int64, in samples at ``run_rate``) the recurrence reads, and their weights (float32).

    ``M = run_rate / training_rate``, computed exactly: an integer ``M`` gives one tap of weight 1;
    otherwise four cubic Lagrange taps (see the module docstring). ValueError if ``M < 1``.
    """
    factor = Fraction(int(run_rate), int(training_rate))
    if factor < 1:
        raise ValueError(
            f"the delay line needs a run rate at or above the training rate ({run_rate} Hz < {training_rate} Hz)"
        )
    if factor.denominator == 1:
        return np.array([int(factor)], np.int64), np.ones(1, np.float32)
    whole = math.floor(factor)
    first = whole - 1 if whole >= 2 else 1
    position = float(factor - first)  # in [1, 2) when centred, in (0, 1) when 1 < M < 2
    delays = np.arange(first, first + LAGRANGE_ORDER + 1, dtype=np.int64)
    return delays, lagrange_weights(position).astype(np.float32)


@dataclass(frozen=True)
class DelayLineState:
    """The last ``length`` states, float32 ``(length, 2u)`` (each row ``h`` then ``c``), the newest in row ``head``;
    a GRU's ``(length, u)`` (each row ``h``)."""

    ring: np.ndarray
    head: int
    gru: bool = False

    @classmethod
    def zeros(cls, length: int, units: int, gru: bool = False) -> DelayLineState:
        """Every stored state zero: the start the model has in training."""
        return cls(np.zeros((length, units if gru else 2 * units), np.float32), 0, gru)

    @property
    def h(self) -> np.ndarray:
        """The newest hidden state ``(u,)``."""
        width = self.ring.shape[1]
        return self.ring[self.head, : width if self.gru else width // 2]

    @property
    def c(self) -> np.ndarray:
        """The newest cell state ``(u,)`` (an LSTM's; a GRU has none)."""
        if self.gru:
            raise AttributeError("a GRU has no cell state")
        return self.ring[self.head, self.ring.shape[1] // 2 :]


@numba.njit(cache=True, nogil=True, fastmath={"contract", "reassoc"}, error_model="numpy")
def _stream_delayed(dry, kernel, recurrent, bias, dense, dense_bias, delays, taps, ring, head, out):  # type: ignore[no-untyped-def]
    """Run the LSTM over ``dry`` reading ``sum_k taps[k] * state[t - delays[k]]``; return the new ``head``.

    ``ring`` (updated in place) holds the last ``length`` states, ``h`` then ``c`` in each row, the
    newest in row ``head``; the state ``d`` samples old is in row ``(head - d + 1) mod length``.
    ``h`` and ``c`` are read together as one contiguous ``2u`` vector per tap.
    """
    length = ring.shape[0]
    units = ring.shape[1] // 2
    four = 4 * units
    z = np.empty(four, np.float32)
    state = np.empty(2 * units, np.float32)  # the delayed (h, c) read this step
    h = state[:units]
    c = state[units:]
    for t in range(dry.shape[0]):
        row = (head - delays[0] + 1) % length
        weight = taps[0]
        for j in range(2 * units):
            state[j] = weight * ring[row, j]
        for k in range(1, delays.shape[0]):
            row = (head - delays[k] + 1) % length
            weight = taps[k]
            for j in range(2 * units):
                state[j] += weight * ring[row, j]
        x = dry[t]
        for k in range(four):
            z[k] = bias[k] + x * kernel[k]
        _add_recurrent(z, h, recurrent)
        head = (head + 1) % length
        out[t] = _lstm_update(z, c, ring[head, :units], ring[head, units:], dense) + dense_bias
    return head


@numba.njit(cache=True, nogil=True, fastmath={"contract", "reassoc"}, error_model="numpy")
def _stream_delayed_gru(dry, kernel, recurrent, start, bias_h, dense, dense_bias, delays, taps, ring, head, out):  # type: ignore[no-untyped-def]
    """The GRU's ``_stream_delayed``: each row of ``ring`` is one ``h``; the step reads the interpolated delayed
    ``h`` for its recurrent product and its update (``start`` and ``bias_h``: ``gru_sums_start``)."""
    length = ring.shape[0]
    units = ring.shape[1]
    three = 3 * units
    half = np.float32(0.5)
    one = np.float32(1.0)
    z = np.empty(three, np.float32)
    h = np.empty(units, np.float32)  # the delayed h read this step
    for t in range(dry.shape[0]):
        row = (head - delays[0] + 1) % length
        weight = taps[0]
        for j in range(units):
            h[j] = weight * ring[row, j]
        for k in range(1, delays.shape[0]):
            row = (head - delays[k] + 1) % length
            weight = taps[k]
            for j in range(units):
                h[j] += weight * ring[row, j]
        x = dry[t]
        for k in range(three):
            z[k] = start[k]
        _add_recurrent(z, h, recurrent)
        head = (head + 1) % length
        acc = np.float32(0.0)
        for j in range(units):
            update = half + half * _tanh(half * (z[j] + x * kernel[j]))
            reset = half + half * _tanh(half * (z[units + j] + x * kernel[units + j]))
            candidate = _tanh(bias_h[j] + x * kernel[2 * units + j] + reset * z[2 * units + j])
            hidden = update * h[j] + (one - update) * candidate
            ring[head, j] = hidden
            acc += hidden * dense[j]
        out[t] = acc + dense_bias
    return head


class DelayLinePredictor:
    """Stream signals at ``run_rate`` through a stateful model (LSTM or GRU) trained at ``training_rate`` (run rate
    >= training)."""

    def __init__(self, weights: RecurrentWeights, training_rate: int, run_rate: int) -> None:
        check_shapes(weights)
        units = weights.units
        self.weights = weights
        self.units = units
        self.gru = isinstance(weights, GruWeights)
        self.training_rate = int(training_rate)
        self.run_rate = int(run_rate)
        self.delays, self.taps = delay_taps(run_rate, training_rate)
        self.length = int(self.delays.max())
        self._kernel = np.ascontiguousarray(weights.kernel, dtype=np.float32)
        self._recurrent = np.ascontiguousarray(weights.recurrent, dtype=np.float32)
        self._bias = np.ascontiguousarray(weights.bias, dtype=np.float32)
        self._dense = np.ascontiguousarray(weights.dense_kernel, dtype=np.float32)
        self._dense_bias = np.float32(weights.dense_bias)
        if isinstance(weights, GruWeights):
            self._start, self._bias_h = gru_sums_start(weights)

    def zero_state(self) -> DelayLineState:
        """The all-zero history (the default start of ``stream``)."""
        return DelayLineState.zeros(self.length, self.units, self.gru)

    def warm_up(self) -> None:
        """Compile the loop, or load it from numba's cache, now (so timings exclude it)."""
        self.stream(np.zeros(1, np.float32))

    def stream(self, dry: np.ndarray, state: DelayLineState | None = None) -> tuple[np.ndarray, DelayLineState]:
        """Output for every sample of ``dry`` (float32, same length) from ``state`` (zeros if None); the end state.

        ``state`` is not modified; consecutive chunks, each from the state the previous call
        returned, give the output of one call on the whole signal.
        """
        signal = np.ascontiguousarray(np.asarray(dry, dtype=np.float32).ravel())
        start = state or self.zero_state()
        width = self.units if self.gru else 2 * self.units
        if start.ring.shape != (self.length, width):
            raise ValueError(f"state has shape {start.ring.shape}, expected ({self.length}, {width})")
        ring = np.array(start.ring, dtype=np.float32)  # a fresh copy: the kernel updates it in place
        out = np.empty(len(signal), np.float32)
        if self.gru:
            head = _stream_delayed_gru(
                signal, self._kernel, self._recurrent, self._start, self._bias_h, self._dense,
                self._dense_bias, self.delays, self.taps, ring, int(start.head), out,
            )  # fmt: skip
            return out, DelayLineState(ring, int(head), True)
        head = _stream_delayed(
            signal,
            self._kernel,
            self._recurrent,
            self._bias,
            self._dense,
            self._dense_bias,
            self.delays,
            self.taps,
            ring,
            int(start.head),
            out,
        )
        return out, DelayLineState(ring, int(head))

    def predict(self, dry: np.ndarray) -> np.ndarray:
        """The model's output for every sample of ``dry`` from the zero state (float32, same length)."""
        return self.stream(dry)[0]
