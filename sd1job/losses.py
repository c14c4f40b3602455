"""The training loss of the segment-trained kinds (wavenet; stateful adds the terms to its own ESR).

``recipe_loss = ESR(y, p) + w_pre * ESR(P(y), P(p)) + w_stft * MRSTFT(P(y), P(p))`` with
``P = 1 - 0.85 z^-1`` (the pre-emphasis of Wright and Valimaki 2019 that NAM's recipe uses), on a
batch of (batch, time, 1) or (batch, time) signals. Both weights 0 (the defaults) is plain ESR.

MRSTFT is the multi-resolution STFT distance of auraloss (Steinmetz and Reiss 2020), at its
default resolutions: FFT sizes 1024, 2048, 512 with hops 120, 240, 50 and Hann windows of 600,
1200, 240 samples; per resolution the spectral convergence ``||S_y - S_p||_F / ||S_y||_F`` plus the
mean absolute difference of log magnitudes, averaged over the resolutions that fit the signal
(a resolution whose window is longer than the signal is skipped).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from sd1job.scores import ESR_EPSILON

PRE_EMPHASIS = 0.85
STFT_RESOLUTIONS = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))  # (fft size, hop, window)
_MAGNITUDE_FLOOR = 1e-8


def _as_batch_time(signal: Any) -> tf.Tensor:
    signal = tf.convert_to_tensor(signal, tf.float32)
    return signal[..., 0] if signal.shape.rank == 3 else signal


def pre_emphasised(signal: tf.Tensor, coefficient: float = PRE_EMPHASIS) -> tf.Tensor:
    """``x[t] - a x[t-1]`` along time, for t >= 1 (one sample shorter)."""
    return signal[:, 1:] - coefficient * signal[:, :-1]


def esr(y: tf.Tensor, prediction: tf.Tensor) -> tf.Tensor:
    """Error-to-signal ratio of the whole batch: sum((y - p)^2) / (sum(y^2) + eps)."""
    return tf.reduce_sum(tf.square(y - prediction)) / (tf.reduce_sum(tf.square(y)) + ESR_EPSILON)


def _magnitude(signal: tf.Tensor, fft: int, hop: int, window: int) -> tf.Tensor:
    spectrum = tf.signal.stft(signal, window, hop, fft_length=fft, window_fn=tf.signal.hann_window)
    return tf.sqrt(tf.maximum(tf.square(tf.math.real(spectrum)) + tf.square(tf.math.imag(spectrum)), _MAGNITUDE_FLOOR))


def _resolution_distance(y: tf.Tensor, prediction: tf.Tensor, fft: int, hop: int, window: int) -> tf.Tensor:
    target, guess = _magnitude(y, fft, hop, window), _magnitude(prediction, fft, hop, window)
    convergence = tf.norm(target - guess) / (tf.norm(target) + ESR_EPSILON)
    return convergence + tf.reduce_mean(tf.abs(tf.math.log(target) - tf.math.log(guess)))


def mrstft(y: tf.Tensor, prediction: tf.Tensor) -> tf.Tensor:
    """The multi-resolution STFT distance (module docstring) of (batch, time) signals; 0 if no resolution fits.

    A signal whose length is only known when the graph runs (the stateful trainer's last, shorter
    truncation chunk) has the fit decided then, so a short chunk neither makes NaN nor a NaN gradient.
    """
    length = y.shape[1]
    terms, fitting = [], []
    for fft, hop, window in STFT_RESOLUTIONS:
        if length is not None:
            if length >= window:
                terms.append(_resolution_distance(y, prediction, fft, hop, window))
                fitting.append(tf.constant(1.0))
            continue
        fits = tf.shape(y)[1] >= window
        terms.append(
            tf.cond(
                fits,
                lambda fft=fft, hop=hop, window=window: _resolution_distance(y, prediction, fft, hop, window),
                lambda: tf.constant(0.0),
            )
        )
        fitting.append(tf.cast(fits, tf.float32))
    if not terms:
        return tf.constant(0.0)
    return tf.math.divide_no_nan(tf.add_n(terms), tf.add_n(fitting))


def pre_emphasised_terms(
    y: Any, prediction: Any, pre_emphasis_weight: float = 0.0, mrstft_weight: float = 0.0
) -> tf.Tensor:
    """``w_pre * ESR(P(y), P(p)) + w_stft * MRSTFT(P(y), P(p))`` (module docstring); 0 when both weights are 0."""
    y, prediction = _as_batch_time(y), _as_batch_time(prediction)
    total = tf.constant(0.0)
    if pre_emphasis_weight or mrstft_weight:
        y_pre, prediction_pre = pre_emphasised(y), pre_emphasised(prediction)
        if pre_emphasis_weight:
            total += pre_emphasis_weight * esr(y_pre, prediction_pre)
        if mrstft_weight:
            total += mrstft_weight * mrstft(y_pre, prediction_pre)
    return total


def recipe_loss(y: Any, prediction: Any, pre_emphasis_weight: float = 0.0, mrstft_weight: float = 0.0) -> tf.Tensor:
    """ESR plus the weighted pre-emphasised ESR and MRSTFT terms (module docstring); plain ESR when both are 0."""
    loss = esr(_as_batch_time(y), _as_batch_time(prediction))
    return loss + pre_emphasised_terms(y, prediction, pre_emphasis_weight, mrstft_weight)
