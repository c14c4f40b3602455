"""Recording checks and the dry/wet latency estimate (synthetic and real EGFxSet recordings)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sd1job.audio import align_pair, decode_wav, encode_wav, estimate_latency, level_warnings
from tests.helpers import toy_dry, toy_pedal

RATE = 8000


def wav_bytes(signal: np.ndarray, rate: int = RATE, subtype: str = "PCM_24") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, signal, rate, subtype=subtype, format="WAV")
    return buffer.getvalue()


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_decode_any_pcm_or_float_subtype(subtype: str) -> None:
    signal = toy_dry(0.2, RATE, seed=3)
    recording = decode_wav(wav_bytes(signal, subtype=subtype), "x.wav", RATE)
    assert recording.samples.dtype == np.float32
    assert recording.samples.shape == signal.shape
    assert np.max(np.abs(recording.samples - signal)) < 1e-4


def test_encode_is_24_bit_and_refuses_to_clip() -> None:
    signal = toy_dry(0.1, RATE, seed=4)
    info = sf.info(io.BytesIO(encode_wav(signal, RATE)))
    assert (info.subtype, info.samplerate, info.channels) == ("PCM_24", RATE, 1)
    with pytest.raises(ValueError, match="exceeds full scale"):
        encode_wav(signal * 5, RATE)


def test_level_warnings_for_clipping_and_dc() -> None:
    signal = np.clip(toy_dry(0.5, RATE, seed=5) * 20, -1, 1) + 0.0
    recording = decode_wav(wav_bytes(np.clip(signal + 0.05, -1, 1)), "hot.wav", RATE)
    warnings = level_warnings(recording)
    assert any("clipping" in w for w in warnings)
    assert any("DC offset" in w for w in warnings)
    clean = decode_wav(wav_bytes(toy_dry(0.5, RATE, seed=6)), "clean.wav", RATE)
    assert level_warnings(clean) == []


@pytest.mark.parametrize("lag", [0, 7, 31, 250, -12])
def test_latency_of_a_delayed_distorted_signal(lag: int) -> None:
    dry = toy_dry(2.0, RATE, seed=7)
    wet = toy_pedal(dry)
    delayed = np.concatenate([np.zeros(lag, np.float32), wet])[: len(wet)] if lag >= 0 else wet[-lag:]
    estimate, confidence = estimate_latency(dry, delayed, search=400, sample_rate=RATE)
    assert estimate == lag
    assert confidence > 1.1
    aligned_dry, aligned_wet = align_pair(dry, delayed, estimate)
    assert len(aligned_dry) == len(aligned_wet)
    np.testing.assert_allclose(aligned_wet[:1000], wet[:1000] if lag >= 0 else wet[-lag : -lag + 1000])


def test_latency_search_is_bounded() -> None:
    dry = toy_dry(1.0, RATE, seed=8)
    wet = np.concatenate([np.zeros(300, np.float32), toy_pedal(dry)])
    estimate, _ = estimate_latency(dry, wet, search=50, sample_rate=RATE)
    assert abs(estimate) <= 50
    estimate, _ = estimate_latency(dry, wet, search=50, expected=290, sample_rate=RATE)
    assert estimate == 300


def _read(path: Path) -> tuple[np.ndarray, int]:
    data, rate = sf.read(path, dtype="float32")
    return data, rate


@pytest.mark.parametrize("pedal", ["tubescreamer", "bluesdriver", "rat"])
def test_latency_on_real_egfx_recordings(realdata: Path, pedal: str) -> None:
    # Documented: the wet lags the dry by 27 to 31 samples. The pedal's own phase response shifts
    # the apparent lag by a few samples, so allow 3 either side.
    for note in ("noteA", "noteB"):
        dry, rate = _read(realdata / f"egfx-{pedal}" / "Dry" / f"d_{note}.wav")
        wet, _ = _read(realdata / f"egfx-{pedal}" / "Wet" / f"w_{note}.wav")
        lag, _ = estimate_latency(dry, wet, search=1024, sample_rate=rate)
        assert 24 <= lag <= 34, (pedal, note, lag)


@pytest.mark.parametrize("pedal", ["tubescreamer", "bluesdriver", "rat"])
def test_latency_on_real_openamp_recordings(realdata: Path, pedal: str) -> None:
    # Documented: the wet file lacks its first 4410 samples, wet[t] ~ dry[t + 4410 - d], d in 1..23.
    for clip in range(4):
        dry, rate = _read(realdata / f"openamp-{pedal}" / "Dry" / f"d_clip{clip}.wav")
        wet, _ = _read(realdata / f"openamp-{pedal}" / "Wet" / f"w_clip{clip}.wav")
        lag, _ = estimate_latency(dry, wet, search=200, expected=-4400, sample_rate=rate)
        assert -4413 <= lag <= -4384, (pedal, clip, lag)
