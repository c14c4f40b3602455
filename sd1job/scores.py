"""How close a model's output is to the pedal's: pure numpy scores on whole signals.

Every score compares a ``target`` (the true wet recording) with a ``prediction`` of the same
length, accumulates in float64 and is safe on silence (a small epsilon in every denominator and
logarithm, never a division by zero or a NaN).

- ``esr``: error-to-signal ratio ``sum((y - y_hat)^2) / (sum(y^2) + eps)``, the training loss
  over a whole riff.
- ``esr_pre``: the same after the pre-emphasis filter ``1 - a z^-1`` on both signals (a = 0.85
  by default, the convention of NAM and Automated-GuitarAmpModelling), which weighs the high
  frequencies a listener hears as fizz.
- ``mse``, ``mae``: mean squared and mean absolute error.
- ``stft_distance``: multi-resolution STFT distance, auraloss' ``MultiResolutionSTFTLoss`` with
  its defaults (also NAM's): for each resolution, spectral convergence ``||S - S_hat||_F / ||S||_F``
  plus the mean absolute difference of natural-log magnitudes, averaged over the resolutions in
  ``STFT_RESOLUTIONS``. As there: frames centred on ``t * hop`` with reflect padding at the ends
  (``torch.stft``'s ``center=True``), a periodic Hann window, and magnitudes floored at
  ``MAGNITUDE_FLOOR`` (auraloss clamps the squared magnitude at 1e-8) in both terms.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

# The epsilon of every ESR here and of the training loss (sd1job.model). The seed used 1e-50,
# which is 0 in float32, so a silent batch gave inf or NaN. 1e-10 is a normal float32 far below
# the energy of any audible batch (64 samples at -100 dBFS sum to 6e-9).
ESR_EPSILON = 1e-10
# Floor on STFT magnitudes in both terms of the STFT distance (auraloss clamps the squared magnitude at 1e-8).
MAGNITUDE_FLOOR = 1e-4
DEFAULT_PRE_EMPHASIS = 0.85
# Frames transformed at once by stft_distance: bounds memory for signals of any length.
_FRAME_CHUNK = 2048


@dataclass(frozen=True)
class StftResolution:
    """One STFT resolution: FFT size, hop and Hann window length, in samples."""

    fft_size: int
    hop: int
    window: int


# auraloss.freq.MultiResolutionSTFTLoss defaults (also NAM's multi-resolution STFT loss).
STFT_RESOLUTIONS: tuple[StftResolution, ...] = (
    StftResolution(1024, 120, 600),
    StftResolution(2048, 240, 1200),
    StftResolution(512, 50, 240),
)


def paired(target: np.ndarray, prediction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both signals as flat float64 arrays; ValueError if their lengths differ or they are empty."""
    y = np.asarray(target, dtype=np.float64).ravel()
    y_hat = np.asarray(prediction, dtype=np.float64).ravel()
    if y.shape != y_hat.shape:
        raise ValueError(f"target has {y.size} samples but prediction has {y_hat.size}")
    if y.size == 0:
        raise ValueError("cannot score empty signals")
    return y, y_hat


def esr(target: np.ndarray, prediction: np.ndarray) -> float:
    """Error-to-signal ratio: ``sum((y - y_hat)^2) / (sum(y^2) + eps)``."""
    y, y_hat = paired(target, prediction)
    return float(np.sum(np.square(y - y_hat)) / (np.sum(np.square(y)) + ESR_EPSILON))


def pre_emphasis(signal: np.ndarray, coefficient: float = DEFAULT_PRE_EMPHASIS) -> np.ndarray:
    """Apply ``1 - a z^-1``: ``out[t] = x[t] - a * x[t-1]``, with ``x[-1] = 0``."""
    x = np.asarray(signal, dtype=np.float64).ravel()
    out = x.copy()
    out[1:] -= coefficient * x[:-1]
    return out


def esr_pre(target: np.ndarray, prediction: np.ndarray, coefficient: float = DEFAULT_PRE_EMPHASIS) -> float:
    """ESR after the pre-emphasis filter ``1 - a z^-1`` on both signals."""
    y, y_hat = paired(target, prediction)
    return esr(pre_emphasis(y, coefficient), pre_emphasis(y_hat, coefficient))


def mse(target: np.ndarray, prediction: np.ndarray) -> float:
    """Mean squared error."""
    y, y_hat = paired(target, prediction)
    return float(np.mean(np.square(y - y_hat)))


def mae(target: np.ndarray, prediction: np.ndarray) -> float:
    """Mean absolute error."""
    y, y_hat = paired(target, prediction)
    return float(np.mean(np.abs(y - y_hat)))


def _magnitude_chunks(signal: np.ndarray, resolution: StftResolution) -> Iterator[np.ndarray]:
    """Floored STFT magnitudes, ``_FRAME_CHUNK`` frames at a time, framed like ``torch.stft(center=True)``.

    torch pads ``fft_size // 2`` samples by reflection at each end and centres the window in each
    ``fft_size`` frame; only the window's span matters, so pad just that and frame by the window.
    """
    front = resolution.fft_size // 2 - (resolution.fft_size - resolution.window) // 2
    padded = np.pad(signal, (front, resolution.window - front), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, resolution.window)[:: resolution.hop]
    window = np.hanning(resolution.window + 1)[:-1]  # periodic Hann, like torch.hann_window
    for start in range(0, len(frames), _FRAME_CHUNK):
        chunk = frames[start : start + _FRAME_CHUNK] * window
        yield np.maximum(np.abs(np.fft.rfft(chunk, n=resolution.fft_size, axis=1)), MAGNITUDE_FLOOR)


def stft_terms(target: np.ndarray, prediction: np.ndarray, resolution: StftResolution) -> tuple[float, float]:
    """Spectral convergence and mean absolute log-magnitude difference at one resolution (floored magnitudes)."""
    y, y_hat = paired(target, prediction)
    diff_energy = 0.0
    energy = 0.0
    log_sum = 0.0
    count = 0
    for mag, mag_hat in zip(_magnitude_chunks(y, resolution), _magnitude_chunks(y_hat, resolution), strict=True):
        diff_energy += float(np.sum(np.square(mag - mag_hat)))
        energy += float(np.sum(np.square(mag)))
        log_sum += float(np.sum(np.abs(np.log(mag) - np.log(mag_hat))))
        count += mag.size
    # The floor keeps the energy positive, so silence needs no epsilon here.
    return float(np.sqrt(diff_energy / energy)), log_sum / count


def stft_distance(
    target: np.ndarray, prediction: np.ndarray, resolutions: tuple[StftResolution, ...] = STFT_RESOLUTIONS
) -> float:
    """Multi-resolution STFT distance: mean over resolutions of spectral convergence + log-magnitude L1."""
    terms = [sum(stft_terms(target, prediction, r)) for r in resolutions]
    return float(np.mean(terms))


def average_spectrum(signal: np.ndarray, sample_rate: int, fft_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies (Hz) and the mean power spectrum in dB of Hann-windowed frames (half overlap)."""
    x = np.asarray(signal, dtype=np.float64).ravel()
    if len(x) < fft_size:
        x = np.concatenate([x, np.zeros(fft_size - len(x))])
    frames = np.lib.stride_tricks.sliding_window_view(x, fft_size)[:: fft_size // 2]
    window = np.hanning(fft_size)
    power = np.zeros(fft_size // 2 + 1)
    for start in range(0, len(frames), _FRAME_CHUNK):
        power += np.sum(np.square(np.abs(np.fft.rfft(frames[start : start + _FRAME_CHUNK] * window, axis=1))), axis=0)
    power /= len(frames) * np.sum(window**2)
    freqs = np.fft.rfftfreq(fft_size, 1.0 / sample_rate)
    return freqs, 10.0 * np.log10(power + ESR_EPSILON)


SCORE_NAMES = ("esr", "esr_pre", "mse", "mae", "stft")


@dataclass(frozen=True)
class Scores:
    """Every score of one prediction against its target."""

    esr: float
    esr_pre: float
    mse: float
    mae: float
    stft: float

    def as_dict(self) -> dict[str, float]:
        """The scores keyed by their results-table column names."""
        return {name: getattr(self, name) for name in SCORE_NAMES}


def score_all(
    target: np.ndarray, prediction: np.ndarray, pre_emphasis_coefficient: float = DEFAULT_PRE_EMPHASIS
) -> Scores:
    """ESR, pre-emphasised ESR, MSE, MAE and multi-resolution STFT distance."""
    return Scores(
        esr=esr(target, prediction),
        esr_pre=esr_pre(target, prediction, pre_emphasis_coefficient),
        mse=mse(target, prediction),
        mae=mae(target, prediction),
        stft=stft_distance(target, prediction),
    )
