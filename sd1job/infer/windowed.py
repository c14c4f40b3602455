"""Fast sliding-window inference from a trained model's weights.

Output sample ``t`` is the model's prediction from the window ``dry[t-n+1 .. t]`` (oldest first),
the first ``n-1`` samples padded with zeros, so the output has the input's length and lines up
with the wet recording (the alignment the dataset trains on).

The model (LSTM(u) from zero state over the n window samples, last step -> Dense(1)) is run
directly from its weights: a block of B consecutive outputs is B windows that share all but
their ends, so step k of window b reads the padded sample ``b + k``: step k's inputs for the
whole block are one slice of the padded signal. One XLA-compiled loop does the n recurrent steps
for the B windows as (B x u) @ (u x 4u) products; the input projection ``x * W + bias`` (one
input feature: an outer product) is fused by XLA into the same elementwise pass as the gates
(measured as fast as precomputing it for the block, with no (B + n) x 4u array to hold). The
sigmoid gates use ``sigmoid(z) = 0.5 + 0.5 tanh(z / 2)`` with the 1/2 folded into their weights
(exact in binary floating point), so one tanh serves all four gates. Blocks are streamed:
working memory is O(B * u + n) for a riff of any length.

A GRU unit (``GruWeights``) runs the same block loop with its own step: ``h U + b'`` as one
(B x u) @ (u x 3u) product, z and r from one tanh (their 1/2 folded in the same way), the
candidate ``tanh(x W_h + b_h + r (h U_h + b'_h))`` and ``h = z h + (1 - z) candidate``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from sd1job.infer.weights import GruWeights, RecurrentWeights

DEFAULT_BLOCK = 4096
# keras_predict hands model.predict this many batches at a time (bounds the windows copied).
_PREDICT_BATCHES = 16


def _gate_scale(units: int) -> np.ndarray:
    """1/2 on the sigmoid gates (input, forget, output), 1 on the cell candidate."""
    scale = np.full(4 * units, 0.5, dtype=np.float32)
    scale[2 * units : 3 * units] = 1.0
    return scale


def _make_block(block: int, context: int, units: int) -> Any:
    """An XLA-compiled function: padded block (block + context - 1,) -> block outputs."""

    @tf.function(jit_compile=True)
    def run(padded: tf.Tensor, kernel: tf.Tensor, recurrent: tf.Tensor, bias: tf.Tensor, dense: tf.Tensor) -> tf.Tensor:
        def step(k: tf.Tensor, h: tf.Tensor, c: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
            x = tf.slice(padded, [k], [block])  # step k of every window in the block
            z = tf.tanh(tf.matmul(h, recurrent) + x[:, None] * kernel[None, :] + bias[None, :])
            input_gate = 0.5 + 0.5 * z[:, :units]
            forget_gate = 0.5 + 0.5 * z[:, units : 2 * units]
            output_gate = 0.5 + 0.5 * z[:, 3 * units :]
            c = forget_gate * c + input_gate * z[:, 2 * units : 3 * units]
            return k + 1, output_gate * tf.tanh(c), c

        zeros = tf.zeros((block, units), tf.float32)
        _, h, _ = tf.while_loop(lambda k, h, c: k < context, step, (tf.constant(0), zeros, zeros))
        return tf.linalg.matvec(h, dense)

    return run


def _make_gru_block(block: int, context: int, units: int) -> Any:
    """The GRU's ``_make_block``: padded block (block + context - 1,) -> block outputs (z and r pre-halved)."""

    @tf.function(jit_compile=True)
    def run(
        padded: tf.Tensor,
        kernel: tf.Tensor,
        recurrent: tf.Tensor,
        bias: tf.Tensor,
        recurrent_bias: tf.Tensor,
        dense: tf.Tensor,
    ) -> tf.Tensor:
        def step(k: tf.Tensor, h: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            x = tf.slice(padded, [k], [block])  # step k of every window in the block
            inner = tf.matmul(h, recurrent) + recurrent_bias[None, :]
            outer = x[:, None] * kernel[None, :] + bias[None, :]
            gates = 0.5 + 0.5 * tf.tanh(outer[:, : 2 * units] + inner[:, : 2 * units])
            update, reset = gates[:, :units], gates[:, units:]
            candidate = tf.tanh(outer[:, 2 * units :] + reset * inner[:, 2 * units :])
            return k + 1, update * h + (1.0 - update) * candidate

        _, h = tf.while_loop(lambda k, h: k < context, step, (tf.constant(0), tf.zeros((block, units), tf.float32)))
        return tf.linalg.matvec(h, dense)

    return run


class SlidingWindowPredictor:
    """Predict whole signals, block by block, from one model's weights (an LSTM's or a GRU's)."""

    def __init__(self, weights: RecurrentWeights, context: int, block: int = DEFAULT_BLOCK) -> None:
        if block <= 0 or context <= 0:
            raise ValueError("block and context must be positive")
        self.weights = weights
        self.context = context
        self.block = block
        units = weights.units
        if isinstance(weights, GruWeights):
            scale = np.full(3 * units, 0.5, dtype=np.float32)  # z and r: sigmoid(v) = 0.5 + 0.5 tanh(v / 2)
            scale[2 * units :] = 1.0
            self._args = tuple(
                tf.constant(value)
                for value in (
                    weights.kernel * scale,
                    weights.recurrent * scale[None, :],
                    weights.bias * scale,
                    weights.recurrent_bias * scale,
                    weights.dense_kernel,
                )
            )
            self._run = _make_gru_block(block, context, units)
            return
        scale = _gate_scale(units)
        self._args = (
            tf.constant(weights.kernel * scale),
            tf.constant(weights.recurrent * scale[None, :]),
            tf.constant(weights.bias * scale),
            tf.constant(weights.dense_kernel),
        )
        self._run = _make_block(block, context, units)

    def warm_up(self) -> None:
        """Compile the block function now (a few seconds with XLA), so timings exclude it."""
        self._block_outputs(np.zeros(self.block + self.context - 1, np.float32))

    def _block_outputs(self, padded: np.ndarray) -> np.ndarray:
        out = self._run(tf.constant(padded), *self._args)
        return out.numpy() + np.float32(self.weights.dense_bias)

    def iter_blocks(self, dry: np.ndarray) -> Iterator[np.ndarray]:
        """Yield the output in consecutive blocks of at most ``block`` samples."""
        signal = np.asarray(dry, dtype=np.float32).ravel()
        n, block = self.context, self.block
        for start in range(0, len(signal), block):
            stop = min(start + block, len(signal))
            # padded[i] is dry[start - (n - 1) + i]: zeros before the signal and after its end
            padded = np.zeros(block + n - 1, np.float32)
            lo = start - (n - 1)
            src = signal[max(lo, 0) : stop]
            padded[max(lo, 0) - lo : max(lo, 0) - lo + len(src)] = src
            yield self._block_outputs(padded)[: stop - start]

    def predict(self, dry: np.ndarray) -> np.ndarray:
        """The model's output for every sample of ``dry``: same length, aligned with the wet signal."""
        signal = np.asarray(dry).ravel()
        out = np.empty(len(signal), np.float32)
        position = 0
        for chunk in self.iter_blocks(signal):
            out[position : position + len(chunk)] = chunk
            position += len(chunk)
        return out


def padded_windows(dry: np.ndarray, context: int) -> np.ndarray:
    """Every window ``dry[t-n+1 .. t]`` with zero padding, as a read-only (len, n) view (no copy of the windows)."""
    signal = np.asarray(dry, dtype=np.float32).ravel()
    padded = np.concatenate([np.zeros(context - 1, np.float32), signal])
    return np.lib.stride_tricks.sliding_window_view(padded, context)


def keras_predict(model: Any, dry: np.ndarray, context: int, batch_size: int = DEFAULT_BLOCK) -> np.ndarray:
    """The reference: Keras ``model.predict`` on every padded window (batches of ``batch_size``)."""
    windows = padded_windows(dry, context)
    out = np.empty(len(windows), np.float32)
    step = batch_size * _PREDICT_BATCHES
    for start in range(0, len(windows), step):
        chunk = np.ascontiguousarray(windows[start : start + step])[..., None]
        out[start : start + len(chunk)] = model.predict(chunk, batch_size=batch_size, verbose=0)[:, 0]
    return out
