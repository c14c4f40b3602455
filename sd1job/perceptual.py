"""Scores beyond ESR that weigh errors as ears do: pure numpy/scipy on whole signals.

Every function compares a ``target`` (the pedal's wet recording) with a ``prediction`` of the
same length at ``sample_rate``:

- ``esr_aweighted``: ESR after the perceptual pre-emphasis of Wright and Valimaki (ICASSP 2020,
  "Perceptual loss function for neural modelling of audio systems"): an A-weighting filter
  (the analog IEC 61672 curve, bilinear-transformed at the signal's rate, fitted by least squares
  with a 101-tap FIR, as auraloss' ``FIRFilter(filter_type="aw")``) followed by the low-pass
  ``1 + 0.85 z^-1`` the paper cascades with it, applied to both signals. Listeners preferred
  models trained on this over plain ESR.
- ``mel_distance``: the mean absolute difference, in dB, of the two log-mel power spectrograms
  (``MEL_FFT``-point Hann frames, hop ``MEL_HOP``, ``MEL_BANDS`` triangular bands from 20 Hz to
  the Nyquist frequency on the HTK mel scale; powers floored at ``MEL_FLOOR_DB``).
- ``loudness_difference``: integrated loudness (ITU-R BS.1770-4, K-weighted and gated, by
  pyloudnorm) of the prediction minus the target, in LU. A riff shorter than BS.1770's 400 ms
  gating block is measured with one block its own length. None when either signal is silent.

``perceptual_scores`` returns all three keyed by their results-table names (``PERCEPTUAL_NAMES``).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import signal as scipy_signal

from sd1job.scores import ESR_EPSILON, paired

PERCEPTUAL_NAMES = ("esr_aw", "mel", "loudness_diff")
# Changing any definition here changes this version, so eval rescores every unit.
METRICS_VERSION = 1

AW_TAPS = 101
AW_LOWPASS = 0.85
MEL_FFT = 2048
MEL_HOP = 512
MEL_BANDS = 64
MEL_FLOOR_DB = -100.0
LOUDNESS_BLOCK_SECONDS = 0.4


@functools.lru_cache(maxsize=8)
def a_weighting_fir(sample_rate: int, taps: int = AW_TAPS) -> np.ndarray:
    """The A-weighting curve at ``sample_rate`` as a least-squares FIR (auraloss' ``aw`` pre-emphasis)."""
    f1, f2, f3, f4 = 20.598997, 107.65265, 737.86223, 12194.217
    gain_1k_db = 1.9997
    numerator = [(2 * np.pi * f4) ** 2 * (10 ** (gain_1k_db / 20)), 0, 0, 0, 0]
    denominator = np.polymul([1, 4 * np.pi * f4, (2 * np.pi * f4) ** 2], [1, 4 * np.pi * f1, (2 * np.pi * f1) ** 2])
    denominator = np.polymul(np.polymul(denominator, [1, 2 * np.pi * f3]), [1, 2 * np.pi * f2])
    b, a = scipy_signal.bilinear(numerator, denominator, fs=sample_rate)
    freqs, response = scipy_signal.freqz(b, a, worN=512, fs=sample_rate)
    return scipy_signal.firls(taps, freqs, np.abs(response), fs=sample_rate)


def perceptual_emphasis(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """A-weighting FIR then ``1 + 0.85 z^-1``, causal, output as long as the input."""
    weighted = scipy_signal.fftconvolve(x, a_weighting_fir(sample_rate))[: len(x)]
    out = weighted.copy()
    out[1:] += AW_LOWPASS * weighted[:-1]
    return out


def esr_aweighted(target: np.ndarray, prediction: np.ndarray, sample_rate: int) -> float:
    """ESR of the A-weighted and low-passed signals (Wright and Valimaki 2020)."""
    y, y_hat = paired(target, prediction)
    e, e_hat = perceptual_emphasis(y, sample_rate), perceptual_emphasis(y_hat, sample_rate)
    return float(np.sum(np.square(e - e_hat)) / (np.sum(np.square(e)) + ESR_EPSILON))


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=float) / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@functools.lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, fft_size: int = MEL_FFT, bands: int = MEL_BANDS) -> np.ndarray:
    """Triangular HTK-mel filters, shape (bands, fft_size // 2 + 1), from 20 Hz to Nyquist."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(20.0), _hz_to_mel(sample_rate / 2), bands + 2))
    freqs = np.fft.rfftfreq(fft_size, 1.0 / sample_rate)
    bank = np.zeros((bands, freqs.size))
    for band in range(bands):
        low, centre, high = edges[band : band + 3]
        rising = (freqs - low) / (centre - low)
        falling = (high - freqs) / (high - centre)
        bank[band] = np.maximum(0.0, np.minimum(rising, falling))
    return bank


def log_mel(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Log-mel power spectrogram in dB, shape (frames, bands), floored at MEL_FLOOR_DB."""
    padded = np.pad(x, (MEL_FFT // 2, MEL_FFT // 2))
    frames = np.lib.stride_tricks.sliding_window_view(padded, MEL_FFT)[::MEL_HOP]
    window = np.hanning(MEL_FFT + 1)[:-1]
    power = np.square(np.abs(np.fft.rfft(frames * window, axis=1))) / np.sum(window**2)
    mel_power = power @ mel_filterbank(sample_rate).T
    return np.maximum(10.0 * np.log10(mel_power + 1e-20), MEL_FLOOR_DB)


def mel_distance(target: np.ndarray, prediction: np.ndarray, sample_rate: int) -> float:
    """Mean absolute log-mel difference in dB."""
    y, y_hat = paired(target, prediction)
    return float(np.mean(np.abs(log_mel(y, sample_rate) - log_mel(y_hat, sample_rate))))


def integrated_loudness(x: np.ndarray, sample_rate: int) -> float | None:
    """BS.1770-4 integrated loudness in LUFS (pyloudnorm); None for silence."""
    import pyloudnorm

    samples = np.asarray(x, dtype=np.float64).ravel()
    block = min(LOUDNESS_BLOCK_SECONDS, samples.size / sample_rate)
    with np.errstate(divide="ignore"):
        loudness = pyloudnorm.Meter(sample_rate, block_size=block).integrated_loudness(samples)
    return float(loudness) if math.isfinite(loudness) else None


def loudness_difference(target: np.ndarray, prediction: np.ndarray, sample_rate: int) -> float | None:
    """Integrated loudness of the prediction minus the target's, in LU (None if either is silent)."""
    y, y_hat = paired(target, prediction)
    reference, measured = integrated_loudness(y, sample_rate), integrated_loudness(y_hat, sample_rate)
    return None if reference is None or measured is None else measured - reference


def perceptual_scores(target: np.ndarray, prediction: np.ndarray, sample_rate: int) -> dict[str, float | None]:
    """All three scores keyed by their column names."""
    return {
        "esr_aw": esr_aweighted(target, prediction, sample_rate),
        "mel": mel_distance(target, prediction, sample_rate),
        "loudness_diff": loudness_difference(target, prediction, sample_rate),
    }
