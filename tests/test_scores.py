"""The scores on hand-computed cases, silence, the STFT distance's invariances, and the STFT distance
against an independent transcription of auraloss' MultiResolutionSTFTLoss."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sd1job import scores


def test_esr_hand_computed() -> None:
    # error (0, 1) -> 1; energy 1 + 4 = 5
    assert scores.esr([1.0, 2.0], [1.0, 1.0]) == pytest.approx(0.2, rel=1e-9)
    assert scores.esr([3.0, -4.0], [3.0, -4.0]) == 0.0
    assert scores.esr([1.0, 1.0], [0.0, 0.0]) == pytest.approx(1.0, rel=1e-9)


def test_pre_emphasis_filter_and_esr_pre_hand_computed() -> None:
    np.testing.assert_allclose(scores.pre_emphasis([1.0, 1.0, 1.0], 0.5), [1.0, 0.5, 0.5])
    np.testing.assert_allclose(scores.pre_emphasis([2.0, 0.0, 1.0], 0.85), [2.0, -1.7, 1.0])
    # target -> (1, 0.5), prediction -> (1, -0.5): error 1, energy 1.25
    assert scores.esr_pre([1.0, 1.0], [1.0, 0.0], 0.5) == pytest.approx(0.8, rel=1e-9)
    # a = 0 is plain ESR
    assert scores.esr_pre([1.0, 2.0], [1.0, 1.0], 0.0) == pytest.approx(0.2, rel=1e-9)


def test_pre_emphasis_weighs_high_frequencies() -> None:
    t = np.arange(4410) / 44100
    low, high = np.sin(2 * np.pi * 100 * t), np.sin(2 * np.pi * 8000 * t)
    target = low + high
    # the same error energy at low and at high frequency: pre-emphasis punishes the high one more
    assert scores.esr(target, target + 0.1 * low) == pytest.approx(scores.esr(target, target + 0.1 * high), rel=1e-2)
    assert scores.esr_pre(target, target + 0.1 * high) > 10 * scores.esr_pre(target, target + 0.1 * low)


def test_mse_mae_hand_computed() -> None:
    assert scores.mse([1.0, 2.0, 3.0], [1.0, 1.0, 1.0]) == pytest.approx(5.0 / 3.0)
    assert scores.mae([1.0, 2.0, 3.0], [1.0, 1.0, 1.0]) == pytest.approx(1.0)
    assert scores.mae([-1.0], [1.0]) == pytest.approx(2.0)


def test_silence_gives_finite_scores() -> None:
    silent = np.zeros(5000)
    with np.errstate(all="raise"):
        assert scores.esr(silent, silent) == 0.0
        assert scores.esr_pre(silent, silent) == 0.0
        assert scores.stft_distance(silent, silent) == 0.0
        noisy = scores.score_all(silent, np.full(5000, 1e-3))
    assert all(math.isfinite(value) for value in noisy.as_dict().values())
    assert noisy.esr > 1.0  # any output over a silent target is an error, not 0/0


def test_length_mismatch_and_empty_are_rejected() -> None:
    with pytest.raises(ValueError, match="3 samples"):
        scores.esr([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="empty"):
        scores.mse([], [])


def test_stft_terms_of_a_doubled_signal() -> None:
    # |2S - S| / |S| = 1 exactly; |log S - log 2S| = log 2 wherever both are above the floor
    x = np.random.default_rng(0).standard_normal(20_000)
    for resolution in scores.STFT_RESOLUTIONS:
        convergence, log_distance = scores.stft_terms(x, 2.0 * x, resolution)
        assert convergence == pytest.approx(1.0, rel=1e-9)
        assert log_distance == pytest.approx(math.log(2.0), rel=1e-3)
    assert scores.stft_distance(x, 2.0 * x) == pytest.approx(1.0 + math.log(2.0), rel=1e-3)
    assert scores.stft_distance(x, x) == 0.0


# --- auraloss' MultiResolutionSTFTLoss, transcribed independently (numpy, float64) ----------------
# auraloss.freq.STFTLoss.stft: torch.stft(x, fft_size, hop_size, win_length, hann_window(win_length),
# return_complex=True) with torch's defaults center=True, pad_mode="reflect" (fft_size // 2 samples
# reflected at each end, the window centred in each fft_size frame with zeros around it); magnitude
# sqrt(clamp(re^2 + im^2, min=eps=1e-8)), used by both terms. SpectralConvergenceLoss:
# ||y_mag - x_mag||_F / ||y_mag||_F, y the target. STFTMagnitudeLoss(log=True, "L1", "mean"):
# mean |log(x_mag) - log(y_mag)|. MultiResolutionSTFTLoss: the mean over the resolutions (defaults
# below) of w_sc * sc + w_log_mag * log_mag, both weights 1.
AURALOSS_RESOLUTIONS = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))
AURALOSS_EPS = 1e-8
# Both sides compute in float64 with the same transforms; only the order of the sums differs.
AURALOSS_TOLERANCE = 1e-9


def torch_style_magnitudes(
    x: np.ndarray, fft_size: int, hop: int, win_length: int, pad_mode: str = "reflect", eps: float = AURALOSS_EPS
) -> np.ndarray:
    """|torch.stft(x, center=True, pad_mode=...)| with a periodic Hann window, clamped as auraloss clamps it."""
    padded = np.pad(x, fft_size // 2, mode=pad_mode)
    frames = 1 + (len(padded) - fft_size) // hop
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win_length) / win_length)  # torch.hann_window(periodic=True)
    window = np.zeros(fft_size)
    left = (fft_size - win_length) // 2
    window[left : left + win_length] = hann
    spectra = np.stack([np.fft.rfft(padded[i * hop : i * hop + fft_size] * window) for i in range(frames)])
    return np.sqrt(np.maximum(spectra.real**2 + spectra.imag**2, eps))


def auraloss_mrstft(
    prediction: np.ndarray, target: np.ndarray, pad_mode: str = "reflect", eps: float = AURALOSS_EPS
) -> float:
    """``auraloss.freq.MultiResolutionSTFTLoss()(prediction, target)``; other ``pad_mode``/``eps`` are variants."""
    total = 0.0
    for fft_size, hop, win_length in AURALOSS_RESOLUTIONS:
        x_mag = torch_style_magnitudes(prediction, fft_size, hop, win_length, pad_mode, eps)
        y_mag = torch_style_magnitudes(target, fft_size, hop, win_length, pad_mode, eps)
        spectral_convergence = np.linalg.norm(y_mag - x_mag) / np.linalg.norm(y_mag)
        log_magnitude = np.mean(np.abs(np.log(x_mag) - np.log(y_mag)))
        total += spectral_convergence + log_magnitude
    return float(total / len(AURALOSS_RESOLUTIONS))


def signal_pairs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(target, prediction) pairs: loud and quiet, long and short, with silent stretches, odd lengths."""
    rng = np.random.default_rng(11)
    t = np.arange(30_011) / 44100
    riff = 0.4 * np.sin(2 * np.pi * 196 * t) * np.exp(-3 * t) + 0.01 * rng.standard_normal(len(t))
    model = np.tanh(1.2 * riff) + 0.005 * rng.standard_normal(len(t))
    gated = riff.copy()
    gated[5_000:15_000] = 0.0  # digital silence: magnitudes under the floor
    short = rng.standard_normal(3_001)  # a few frames: the padded ends weigh a lot
    quiet = 1e-4 * rng.standard_normal(8_000)  # most magnitudes near the floor
    return {
        "riff": (riff, model),
        "gated": (gated, np.roll(gated, 3)),
        "short": (short, 0.5 * short + 0.1 * rng.standard_normal(len(short))),
        "quiet": (quiet, 1e-4 * rng.standard_normal(len(quiet))),
        "silent target": (np.zeros(4_000), 1e-3 * rng.standard_normal(4_000)),
    }


@pytest.mark.parametrize("name", list(signal_pairs()))
def test_stft_distance_is_auralosss_multi_resolution_stft_loss(name: str) -> None:
    target, prediction = signal_pairs()[name]
    expected = auraloss_mrstft(prediction, target)
    assert scores.stft_distance(target, prediction) == pytest.approx(expected, rel=AURALOSS_TOLERANCE)


def test_the_auraloss_comparison_sees_padding_and_the_floor() -> None:
    # Variants the comparison must tell apart from auraloss: zero padding at the ends; a far lower floor.
    pairs = signal_pairs()
    short_target, short_prediction = pairs["short"]
    zero_padded = auraloss_mrstft(short_prediction, short_target, pad_mode="constant")
    assert scores.stft_distance(short_target, short_prediction) != pytest.approx(
        zero_padded, rel=1e3 * AURALOSS_TOLERANCE
    )
    quiet_target, quiet_prediction = pairs["quiet"]
    tiny_floor = auraloss_mrstft(quiet_prediction, quiet_target, eps=1e-30)
    assert scores.stft_distance(quiet_target, quiet_prediction) != pytest.approx(
        tiny_floor, rel=1e3 * AURALOSS_TOLERANCE
    )


def test_stft_distance_sees_what_esr_flatters() -> None:
    # a one-sample delay of a high tone: large ESR, but the magnitude spectrum is nearly the same
    t = np.arange(22050) / 44100
    tone = np.sin(2 * np.pi * 5000 * t)
    delayed = np.concatenate([[0.0], tone[:-1]])
    noise = tone + 0.3 * np.random.default_rng(1).standard_normal(len(t))
    assert scores.esr(tone, delayed) > scores.esr(tone, noise)
    assert scores.stft_distance(tone, delayed) < scores.stft_distance(tone, noise)


def test_stft_distance_does_not_depend_on_the_chunk_size(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal(12_000), rng.standard_normal(12_000)
    whole = scores.stft_distance(x, y)
    monkeypatch.setattr(scores, "_FRAME_CHUNK", 7)
    assert scores.stft_distance(x, y) == pytest.approx(whole, rel=1e-12)


def test_average_spectrum_peaks_at_the_tone() -> None:
    rate = 8000
    t = np.arange(rate) / rate
    freqs, power_db = scores.average_spectrum(np.sin(2 * np.pi * 1000 * t), rate, fft_size=1024)
    assert freqs[np.argmax(power_db)] == pytest.approx(1000, abs=rate / 1024)
    assert len(freqs) == len(power_db) == 513


def test_score_all_matches_the_single_scores() -> None:
    rng = np.random.default_rng(3)
    y, y_hat = rng.standard_normal(3000), rng.standard_normal(3000)
    result = scores.score_all(y, y_hat, 0.95)
    assert result.as_dict() == {
        "esr": scores.esr(y, y_hat),
        "esr_pre": scores.esr_pre(y, y_hat, 0.95),
        "mse": scores.mse(y, y_hat),
        "mae": scores.mae(y, y_hat),
        "stft": scores.stft_distance(y, y_hat),
    }
