"""Polyphase resampling between two sample rates (pure numpy/scipy, no model).

A model trained at one rate meets audio at another: the audio is converted to the training rate,
processed, and converted back. ``resample`` uses ``scipy.signal.resample_poly`` with the exact
rational ratio of the two rates (44100 -> 48000 is up 160, down 147) and its default Kaiser
window (beta 5); the filter is linear-phase and the function compensates its delay, so the output
lines up with the input (no latency). ``resample_to_length`` returns exactly the length asked for,
which is how a round trip gets back the input's length.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal as _signal


def rate_ratio(from_rate: int, to_rate: int) -> tuple[int, int]:
    """``(up, down)`` in lowest terms with ``from_rate * up / down == to_rate``; ValueError unless both are positive."""
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} and {to_rate}")
    common = math.gcd(int(from_rate), int(to_rate))
    return int(to_rate) // common, int(from_rate) // common


def resampled_length(length: int, from_rate: int, to_rate: int) -> int:
    """The length ``resample`` returns for ``length`` samples: ``ceil(length * up / down)``."""
    up, down = rate_ratio(from_rate, to_rate)
    return -(-length * up // down)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """``samples`` (1-D) at ``from_rate`` converted to ``to_rate``, float32, ``resampled_length`` long.

    Equal rates return a float32 copy unchanged.
    """
    signal = np.asarray(samples, dtype=np.float32)
    if signal.ndim != 1:
        raise ValueError("resample expects a mono 1-D signal")
    up, down = rate_ratio(from_rate, to_rate)
    if up == down:
        return signal.copy()
    if len(signal) == 0:
        return np.zeros(0, np.float32)
    out = _signal.resample_poly(signal.astype(np.float64), up, down)
    return np.ascontiguousarray(out, dtype=np.float32)


def fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    """``samples`` cut to ``length``, or padded with zeros at the end to reach it."""
    if len(samples) >= length:
        return samples[:length]
    return np.concatenate([samples, np.zeros(length - len(samples), samples.dtype)])


def resample_to_length(samples: np.ndarray, from_rate: int, to_rate: int, length: int) -> np.ndarray:
    """``resample`` then ``fit_length``: a round trip's way back to the original length."""
    return fit_length(resample(samples, from_rate, to_rate), length)
