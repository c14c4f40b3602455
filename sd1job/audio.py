"""Reading, checking and writing recordings; the dry/wet latency estimate; loading checked pairs.

Decoding, checks and the latency estimate are pure functions on bytes and numpy arrays. The
loaders at the end (``read_recording``, ``load_pair``, ``load_riffs``) fetch the bytes through a
``Store`` and are what every stage uses, so a recording is checked the same way wherever it is read.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soundfile as sf

from sd1job.config import RecordingsConfig
from sd1job.errors import UserError
from sd1job.hashing import sha256_hex
from sd1job.layout import riff_dry_key, riff_wet_key
from sd1job.store import MissingObjectError, Store

# A sample this close to full scale counts as clipped; this much mean counts as DC offset.
CLIP_LEVEL = 0.999
CLIP_FRACTION_WARN = 1e-4
DC_OFFSET_WARN = 0.01
SILENCE_PEAK = 1e-6
OUTPUT_SUBTYPE = "PCM_24"
# 8-bit PCM (48 dB of dynamic range) and lossy codecs are refused: too coarse to model a pedal.
SUPPORTED_SUBTYPES = frozenset({"PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"})


class AudioError(UserError, ValueError):
    """A recording is missing, unreadable or unusable; the message names the file."""


@dataclass
class Recording:
    """A mono float32 signal, its sample rate and where it came from."""

    samples: np.ndarray
    sample_rate: int
    source: str
    subtype: str = ""

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate


# A pedal's own phase response moves the correlation peak by a sample or two (0 to 3 on the
# EGFxSet pedals); only a larger lag is worth a warning. The estimate is always recorded.
LATENCY_TOLERANCE = 2


@dataclass
class CheckedPair:
    """A dry/wet pair as it will be used (aligned, equal length) and what checking it found."""

    name: str
    dry: np.ndarray
    wet: np.ndarray
    sample_rate: int
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """Duration of the pair."""
        return len(self.dry) / self.sample_rate

    @property
    def warnings(self) -> list[str]:
        """What the checks warned about (clipping, DC offset, latency)."""
        return list(self.report.get("warnings", []))


def decode_wav(data: bytes, source: str, expected_rate: int | None = None) -> Recording:
    """Decode WAV (or any libsndfile format) bytes into a checked mono float32 Recording."""
    if len(data) == 0:
        raise AudioError(f"{source}: file is empty (0 bytes)")
    _check_riff_size(data, source)
    try:
        with sf.SoundFile(io.BytesIO(data)) as handle:
            rate, channels, subtype, frames = handle.samplerate, handle.channels, handle.subtype, handle.frames
            samples = handle.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as error:
        detail = str(error).split(":")[-1].strip() or "unknown format"
        raise AudioError(f"{source}: not a readable audio file ({detail})") from None
    if frames > 0 and len(samples) < frames:
        raise AudioError(f"{source}: truncated audio: header says {frames} frames, found {len(samples)}")
    if subtype not in SUPPORTED_SUBTYPES:
        raise AudioError(
            f"{source}: sample format {subtype} is not supported; use 16-, 24- or 32-bit PCM or float "
            "(8-bit and compressed formats are too coarse to model a pedal)"
        )
    if channels != 1:
        raise AudioError(f"{source}: has {channels} channels; recordings must be mono")
    if expected_rate is not None and rate != expected_rate:
        raise AudioError(
            f"{source}: sample rate is {rate} Hz but the config says {expected_rate} Hz "
            "(recordings are never resampled silently; set recordings.sample_rate or resample the files)"
        )
    signal = samples[:, 0]
    if len(signal) == 0:
        raise AudioError(f"{source}: contains no samples")
    if not np.all(np.isfinite(signal)):
        bad = int(np.count_nonzero(~np.isfinite(signal)))
        raise AudioError(f"{source}: contains {bad} NaN or Inf samples")
    if float(np.max(np.abs(signal))) < SILENCE_PEAK:
        raise AudioError(f"{source}: is silent (peak below {SILENCE_PEAK:g})")
    return Recording(np.ascontiguousarray(signal), rate, source, subtype)


def _check_riff_size(data: bytes, source: str) -> None:
    """Refuse a WAV file shorter than its RIFF header says (libsndfile would silently read less)."""
    if data[:4] != b"RIFF" or len(data) < 8:
        return
    declared = int.from_bytes(data[4:8], "little") + 8
    if declared in (8, 0xFFFFFFFF + 8):  # streaming writers leave the size unset
        return
    if len(data) < declared:
        raise AudioError(f"{source}: truncated WAV file: header says {declared} bytes, file has {len(data)}")


def encode_wav(samples: np.ndarray, sample_rate: int, subtype: str = OUTPUT_SUBTYPE) -> bytes:
    """Encode a mono float signal as WAV bytes (24-bit PCM by default).

    Samples beyond full scale would wrap or clip in PCM, so the caller must keep them within
    [-1, 1]; this raises rather than silently clipping.
    """
    signal = np.asarray(samples, dtype=np.float32)
    if signal.ndim != 1:
        raise ValueError("encode_wav expects a mono 1-D signal")
    if not np.all(np.isfinite(signal)):
        raise ValueError("encode_wav: signal contains NaN or Inf")
    peak = float(np.max(np.abs(signal))) if len(signal) else 0.0
    if subtype.startswith("PCM") and peak > 1.0:
        raise ValueError(f"encode_wav: peak {peak:.3f} exceeds full scale; scale the signal first")
    buffer = io.BytesIO()
    sf.write(buffer, signal, sample_rate, subtype=subtype, format="WAV")
    return buffer.getvalue()


def level_warnings(recording: Recording) -> list[str]:
    """Warnings about clipping and DC offset in one recording."""
    signal = recording.samples
    warnings = []
    clipped = int(np.count_nonzero(np.abs(signal) >= CLIP_LEVEL))
    if clipped / len(signal) > CLIP_FRACTION_WARN:
        warnings.append(f"{recording.source}: {clipped} samples at full scale (clipping)")
    offset = float(np.mean(signal))
    if abs(offset) > DC_OFFSET_WARN:
        warnings.append(f"{recording.source}: DC offset {offset:+.4f}")
    return warnings


LATENCY_BAND_HZ = 8000.0
LATENCY_EXCERPT = 1 << 18  # about 6 s at 44.1 kHz


def loudest_excerpt(dry: np.ndarray, wet: np.ndarray, length: int = LATENCY_EXCERPT) -> tuple[np.ndarray, np.ndarray]:
    """The same index range of both signals where the dry signal is loudest (whole signals if short)."""
    span = min(len(dry), len(wet))
    if span <= length:
        return dry, wet
    block = length // 8
    blocks = span // block
    block_energy = np.einsum("ij,ij->i", *(dry[: blocks * block].reshape(blocks, block),) * 2)
    window_energy = np.convolve(block_energy, np.ones(8), mode="valid")
    start = int(np.argmax(window_energy)) * block
    return dry[start : start + length], wet[start : start + length]


def estimate_latency(
    dry: np.ndarray, wet: np.ndarray, search: int = 1024, expected: int = 0, sample_rate: int = 44100
) -> tuple[int, float]:
    """Estimate how many samples the wet signal lags the dry one.

    Returns ``(lag, confidence)``: ``wet[t]`` best matches ``dry[t - lag]`` for a lag searched only
    over ``[expected - search, expected + search]`` (a whole-file cross-correlation picks wrong lags
    on sustained notes, whose pitch period repeats). The correlation uses the first difference of
    each signal with phase-transform weighting (GCC-PHAT), which sharpens the true peak against
    the periodic ones a sustained note leaves, restricted to frequencies below 8 kHz, where a
    distorting pedal's harmonics do not scramble the phase (on the EGFxSet RAT, BD-2 and Tube
    Screamer files this lands within 3 samples of the documented lags). Confidence is the peak's height over the next
    best lag outside +-2 samples of it (1.0 means no contrast). Long recordings are measured on
    their loudest stretch of ``LATENCY_EXCERPT`` samples, which bounds time and memory.
    """
    dry, wet = loudest_excerpt(dry, wet)
    a = np.diff(np.asarray(dry, dtype=np.float64))
    b = np.diff(np.asarray(wet, dtype=np.float64))
    length = min(len(a), len(b))
    if length < 2:
        return 0, 0.0
    size = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    spectrum = np.conj(np.fft.rfft(a, size)) * np.fft.rfft(b, size)
    spectrum /= np.abs(spectrum) + 1e-12 * np.max(np.abs(spectrum))
    spectrum[np.fft.rfftfreq(size, 1.0 / sample_rate) > LATENCY_BAND_HZ] = 0.0
    correlation = np.fft.irfft(spectrum, size)
    lags = np.arange(expected - search, expected + search + 1)
    lags = lags[(lags > -len(a)) & (lags < len(b))]
    values = correlation[lags % size]
    best = int(np.argmax(values))
    peak = float(values[best])
    others = np.abs(lags - lags[best]) > 2
    runner_up = float(np.max(values[others])) if np.any(others) else 0.0
    confidence = peak / runner_up if runner_up > 0 else float("inf")
    return int(lags[best]), confidence


def align_pair(dry: np.ndarray, wet: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Shift the wet signal by ``lag`` so ``wet[t]`` lines up with ``dry[t]``; trim to the overlap."""
    if lag >= 0:
        wet = wet[lag:]
    else:
        dry = dry[-lag:]
    length = min(len(dry), len(wet))
    return dry[:length].copy(), wet[:length].copy()


# --- loaders: through the store, checked the same way wherever a recording is read -----------


def read_recording(store: Store, key: str, sample_rate: int) -> tuple[Recording, str]:
    """Read and check one recording from the store; also return its SHA-256 (AudioError naming the file)."""
    try:
        data = store.read_bytes(key)
    except MissingObjectError:
        raise AudioError(f"{store.url(key)}: recording not found") from None
    return decode_wav(data, store.url(key), sample_rate), sha256_hex(data)


def check_pair(
    name: str,
    dry: Recording,
    wet: Recording,
    *,
    latency_search: int,
    latency_expected: int,
    compensate_latency: bool,
) -> CheckedPair:
    """Check a dry/wet pair, estimate their latency and (if asked) compensate it.

    Dry and wet of different lengths are an AudioError unless ``compensate_latency`` (which
    shifts the wet signal by the estimated lag and trims both to their overlap). Warnings are
    returned in the report, never logged here: a caller that goes on to fail prints only its error.
    """
    lag, confidence = estimate_latency(
        dry.samples, wet.samples, search=latency_search, expected=latency_expected, sample_rate=dry.sample_rate
    )
    warnings = level_warnings(dry) + level_warnings(wet)
    if compensate_latency:
        dry_samples, wet_samples = align_pair(dry.samples, wet.samples, lag)
        if lag:
            warnings.append(f"{wet.source}: compensated a latency of {lag} samples (wet behind dry)")
    else:
        if len(dry.samples) != len(wet.samples):
            raise AudioError(
                f"{wet.source}: has {len(wet.samples)} samples but {dry.source} has {len(dry.samples)}; dry and wet "
                "must be the same length (or set recordings.compensate_latency: true to align and trim them)"
            )
        dry_samples, wet_samples = dry.samples, wet.samples
        if abs(lag) > LATENCY_TOLERANCE:
            warnings.append(
                f"{wet.source}: wet appears {lag} samples behind dry (confidence {confidence:.2f}); "
                "set recordings.compensate_latency: true to align"
            )
    report = {
        "samples": len(dry_samples),
        "seconds": round(len(dry_samples) / dry.sample_rate, 6),
        "latency_samples": lag,
        "latency_confidence": round(confidence, 3) if np.isfinite(confidence) else None,
        "latency_compensated": bool(compensate_latency and lag),
        "warnings": warnings,
    }
    return CheckedPair(name, dry_samples, wet_samples, dry.sample_rate, report)


def load_pair(store: Store, name: str, dry_key: str, wet_key: str, settings: RecordingsConfig) -> CheckedPair:
    """Read and check one dry/wet pair with the ``recordings`` settings (rate, latency search and compensation).

    The report gains the two files' SHA-256 checksums under ``sources``.
    """
    dry, dry_sha = read_recording(store, dry_key, settings.sample_rate)
    wet, wet_sha = read_recording(store, wet_key, settings.sample_rate)
    pair = check_pair(
        name,
        dry,
        wet,
        latency_search=settings.latency_search,
        latency_expected=settings.latency_expected,
        compensate_latency=settings.compensate_latency,
    )
    pair.report["sources"] = {dry_key: dry_sha, wet_key: wet_sha}
    return pair


def load_riffs(store: Store, settings: RecordingsConfig) -> list[CheckedPair]:
    """Every configured test riff, read and checked like the training pair."""
    return [
        load_pair(store, riff, riff_dry_key(settings.test_dir, riff), riff_wet_key(settings.test_dir, riff), settings)
        for riff in settings.riffs
    ]
