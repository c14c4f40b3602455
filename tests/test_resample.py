"""Polyphase resampling between rates: ratios, lengths, alignment, band-limited round trips."""

from __future__ import annotations

import numpy as np
import pytest

from sd1job.resample import fit_length, rate_ratio, resample, resample_to_length, resampled_length


@pytest.mark.parametrize(
    ("from_rate", "to_rate", "expected"),
    [(44100, 48000, (160, 147)), (48000, 44100, (147, 160)), (44100, 88200, (2, 1)), (96000, 44100, (147, 320))],
)
def test_rate_ratio_is_in_lowest_terms(from_rate: int, to_rate: int, expected: tuple[int, int]) -> None:
    assert rate_ratio(from_rate, to_rate) == expected
    up, down = expected
    assert from_rate * up == to_rate * down


def test_rate_ratio_refuses_non_positive_rates() -> None:
    with pytest.raises(ValueError, match="positive"):
        rate_ratio(0, 44100)


def sine(freq: float, rate: int, seconds: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("to_rate", [48000, 88200, 96000, 22050])
def test_a_sine_keeps_its_frequency_phase_and_level(to_rate: int) -> None:
    """The filter's delay is compensated: the resampled sine is the same sine sampled at the new rate."""
    out = resample(sine(1000.0, 44100, 0.2), 44100, to_rate)
    assert out.dtype == np.float32
    assert len(out) == resampled_length(int(44100 * 0.2), 44100, to_rate)
    expected = sine(1000.0, to_rate, 0.2)[: len(out)]
    middle = slice(len(out) // 4, 3 * len(out) // 4)  # away from the edges, where the filter sees zeros
    assert np.max(np.abs(out[middle] - expected[middle])) < 2e-3


def test_round_trip_returns_the_input_length_and_signal() -> None:
    dry = sine(440.0, 44100, 0.1) + sine(3000.0, 44100, 0.1)
    up = resample(dry, 44100, 96000)
    back = resample_to_length(up, 96000, 44100, len(dry))
    assert len(back) == len(dry)
    middle = slice(500, len(dry) - 500)
    assert np.max(np.abs(back[middle] - dry[middle])) < 2e-3


def test_equal_rates_copy_the_signal() -> None:
    dry = sine(100.0, 8000, 0.01)
    out = resample(dry, 8000, 8000)
    assert out is not dry and np.array_equal(out, dry)


def test_fit_length_cuts_or_pads_with_zeros() -> None:
    signal = np.arange(5, dtype=np.float32)
    assert np.array_equal(fit_length(signal, 3), [0, 1, 2])
    assert np.array_equal(fit_length(signal, 7), [0, 1, 2, 3, 4, 0, 0])
