"""Scores beyond ESR: A-weighted ESR, mel distance, loudness difference."""

from __future__ import annotations

import numpy as np
import pytest

from sd1job import perceptual

RATE = 44100


def riff(seconds: float = 2.0, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(0)
    return 0.3 * np.sin(2 * np.pi * 196 * t) * np.exp(-(t % 0.5) * 4) + 0.01 * rng.standard_normal(t.size)


def test_a_weighting_follows_the_curve() -> None:
    response = np.abs(np.fft.rfft(perceptual.a_weighting_fir(RATE), 1 << 14))
    freqs = np.fft.rfftfreq(1 << 14, 1 / RATE)
    gain = {f: 20 * np.log10(response[np.argmin(np.abs(freqs - f))]) for f in (100, 1000, 3000)}
    assert gain[1000] == pytest.approx(0.0, abs=0.5)  # IEC 61672: 0 dB at 1 kHz
    assert gain[100] == pytest.approx(-19.1, abs=3.0) and gain[3000] == pytest.approx(1.2, abs=0.5)


def test_scores_are_zero_for_a_perfect_model_and_grow_with_error() -> None:
    y = riff()
    perfect = perceptual.perceptual_scores(y, y, RATE)
    assert perfect["esr_aw"] == 0 and perfect["mel"] == 0 and perfect["loudness_diff"] == pytest.approx(0)
    quieter = perceptual.perceptual_scores(y, 0.5 * y, RATE)
    assert quieter["esr_aw"] == pytest.approx(0.25, rel=1e-6)  # linear: (1 - 0.5)^2
    assert quieter["loudness_diff"] == pytest.approx(-6.02, abs=0.05)
    assert quieter["mel"] == pytest.approx(6.02, abs=0.05)
    hiss = y + 0.003 * np.random.default_rng(1).standard_normal(y.size)
    hum = y + 0.003 * np.sin(2 * np.pi * 50 * np.arange(y.size) / RATE)
    # equal error energy; the ear (and A-weighting) hears the hiss and hardly the hum
    assert perceptual.esr_aweighted(y, hiss, RATE) > 10 * perceptual.esr_aweighted(y, hum, RATE)


def test_short_and_silent_signals_are_safe() -> None:
    short = riff(0.3, 8000)
    assert perceptual.loudness_difference(short, short * 2, 8000) == pytest.approx(6.02, abs=0.05)
    silent = np.zeros(8000)
    assert perceptual.loudness_difference(silent, short[:1] * np.ones(8000), 8000) is None
    assert np.isfinite(perceptual.mel_distance(silent, silent, 8000))
