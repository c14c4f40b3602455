"""What the listening test plays: the pedal, one representative seed per arm, the anchor.

For every riff of the config: the pedal's wet recording, each arm's output on it from the arm's
representative unit (the seed whose riff-mean test ESR is the median of the arm's, so the
listener hears a typical model rather than the luckiest), and the MUSHRA anchor (the pedal
low-passed at ``ANCHOR_CUTOFF_HZ``, ITU-R BS.1534-3). Each is cut to the same excerpt (the
riff's first ``excerpt_seconds``) and its integrated loudness (ITU-R BS.1770-4, pyloudnorm) set to
``TARGET_LUFS``; if that would clip any stimulus, every stimulus is lowered by the same amount,
so levels stay matched.

Every served copy differs from the stimulus by one 24-bit step on about half its samples, at random
(``served_wav``, drawn from the copy's token): inaudible (-138 dBFS), but no two copies are
byte-identical, so a page cannot find which of A and B the X repeats by comparing files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import signal as scipy_signal

from sd1job.audio import decode_wav, encode_wav
from sd1job.config import Config
from sd1job.errors import UserError
from sd1job.hashing import fingerprint
from sd1job.layout import RunLayout, riff_wet_key
from sd1job.listen.design import ANCHOR, PEDAL
from sd1job.perceptual import integrated_loudness
from sd1job.store import MissingObjectError, Store, StoreError
from sd1job.units import Unit

log = logging.getLogger(__name__)

TARGET_LUFS = -23.0
PEAK_CEILING = 0.98
ANCHOR_CUTOFF_HZ = 3500.0
ANCHOR_ORDER = 8


class StimulusError(UserError, RuntimeError):
    """The listening test cannot be built: no scored unit, or an output missing."""


def representative_units(store: Store, layout: RunLayout, units: list[Unit]) -> dict[str, Unit]:
    """Per arm (in config order), the scored unit whose riff-mean ESR is the arm's median (lower median)."""
    by_arm: dict[str, list[tuple[float, Unit]]] = {}
    for unit in units:
        try:
            document = store.read_json(layout.scores(unit))
        except MissingObjectError:
            continue
        except StoreError as error:
            raise StimulusError(str(error)) from None
        rows = document.get("rows") if isinstance(document, dict) else None
        if not rows:
            raise StimulusError(f"{store.url(layout.scores(unit))}: not a scores file (no rows)")
        by_arm.setdefault(unit.arm, []).append((float(np.mean([row["esr"] for row in rows])), unit))
    chosen = {}
    for arm, scored in by_arm.items():
        ordered = sorted(scored, key=lambda pair: (pair[0], pair[1].seed))
        chosen[arm] = ordered[(len(ordered) - 1) // 2][1]
    return chosen


def excerpt(samples: np.ndarray, sample_rate: int, seconds: float) -> np.ndarray:
    """The first ``seconds`` of a signal (all of it if shorter)."""
    return np.asarray(samples[: round(seconds * sample_rate)], dtype=np.float64)


def low_pass_anchor(samples: np.ndarray, sample_rate: int, cutoff: float = ANCHOR_CUTOFF_HZ) -> np.ndarray:
    """The anchor: a zero-phase Butterworth low-pass at ``cutoff`` (below Nyquist, whatever the rate)."""
    edge = min(cutoff, 0.45 * sample_rate)
    sos = scipy_signal.butter(ANCHOR_ORDER // 2, edge, btype="low", fs=sample_rate, output="sos")
    return scipy_signal.sosfiltfilt(sos, samples)


def match_loudness(signals: dict[Any, np.ndarray], sample_rate: int, target: float = TARGET_LUFS) -> dict[Any, float]:
    """Gains (linear) that bring each signal to ``target`` LUFS, lowered together so none peaks over the ceiling.

    A silent signal keeps gain 1 (it has no loudness to match).
    """
    gains = {}
    for key, samples in signals.items():
        loudness = integrated_loudness(samples, sample_rate)
        gains[key] = 1.0 if loudness is None else 10 ** ((target - loudness) / 20)
    peak = max(float(np.max(np.abs(samples))) * gains[key] for key, samples in signals.items())
    if peak > PEAK_CEILING:
        scale = PEAK_CEILING / peak
        gains = {key: gain * scale for key, gain in gains.items()}
    return gains


@dataclass
class StimulusSet:
    """Every stimulus of the test, loudness-matched, as WAV bytes keyed by (condition, riff)."""

    sample_rate: int
    riffs: list[str]
    arms: list[str]
    units: dict[str, str]  # arm -> the representative unit's name
    seconds: float
    wavs: dict[tuple[str, str], bytes] = field(default_factory=dict)
    gains_db: dict[str, float] = field(default_factory=dict)  # "condition/riff" -> gain applied

    def served_wav(self, key: tuple[str, str], token: str) -> bytes:
        """One served copy of a stimulus: the 24-bit WAV with the lowest bit of each sample flipped at random.

        The flips are drawn from the token; a flip moves a sample by one 24-bit step (-138 dBFS) and
        never carries. About 3 ms for 10 s at 44.1 kHz, so serving stays cheap under load.
        """
        data = bytearray(self.wavs[key])
        start, length = _data_chunk(data)
        low_bytes = np.frombuffer(data, dtype=np.uint8, count=length, offset=start)[::3]
        flips = np.random.default_rng(int(token, 16)).integers(0, 2, low_bytes.size, dtype=np.uint8)
        data[start : start + length : 3] = (low_bytes ^ flips).tobytes()
        return bytes(data)

    @property
    def fingerprint(self) -> str:
        """Identifies the stimuli: sessions drawn for another set cannot be resumed."""
        return fingerprint({"units": self.units, "riffs": self.riffs, "seconds": self.seconds, "gains": self.gains_db})

    def describe(self) -> dict[str, Any]:
        """The stimulus set for the store (design.json): server-side, names every condition."""
        return {
            "sample_rate": self.sample_rate,
            "riffs": self.riffs,
            "arms": self.arms,
            "units": self.units,
            "excerpt_seconds": self.seconds,
            "target_lufs": TARGET_LUFS,
            "anchor_cutoff_hz": ANCHOR_CUTOFF_HZ,
            "gains_db": self.gains_db,
            "fingerprint": self.fingerprint,
        }


def _data_chunk(wav: bytearray) -> tuple[int, int]:
    """Offset and length of a RIFF/WAVE file's ``data`` chunk (ValueError if it has none)."""
    offset = 12
    while offset + 8 <= len(wav):
        size = int.from_bytes(wav[offset + 4 : offset + 8], "little")
        if wav[offset : offset + 4] == b"data":
            return offset + 8, min(size, len(wav) - offset - 8)
        offset += 8 + size + (size & 1)
    raise ValueError("WAV without a data chunk")


def build_stimuli(store: Store, config: Config, recording_set: str | None = None) -> StimulusSet:
    """Read the pedal's riffs and each arm's representative output; cut, anchor and loudness-match them.

    Every arm is heard against the one pedal its units were trained on, so a grid over recording sets
    is listened to one set at a time: ``recording_set`` names it (StimulusError, one line, if the grid
    spans several sets and none is named); only that set's arms and riffs are used.
    """
    layout = RunLayout(config.run_id)
    sets = config.recording_sets_used()
    if recording_set is None and len(sets) > 1:
        raise StimulusError(
            f"the grid spans recording sets {', '.join(map(str, sets))}: listen to one at a time with --set NAME"
        )
    if recording_set is not None and recording_set not in sets:
        raise StimulusError(f"--set {recording_set}: not a recording set of this run ({', '.join(map(str, sets))})")
    chosen_set = recording_set if recording_set is not None else sets[0]
    recordings = config.recordings_of_set(chosen_set)
    units = [unit for unit in config.units() if config.recording_set_of(unit) == chosen_set]
    chosen = representative_units(store, layout, units)
    if not chosen:
        raise StimulusError(f"no scored unit in {store.url(layout.root)}: run the train and eval stages first")
    rate = config.recordings.sample_rate
    seconds = config.listen.excerpt_seconds
    raw: dict[tuple[str, str], np.ndarray] = {}
    for riff in recordings.riffs:
        wet_key = riff_wet_key(recordings.test_dir, riff)
        pedal = excerpt(_read(store, wet_key, rate), rate, seconds)
        raw[(PEDAL, riff)] = pedal
        raw[(ANCHOR, riff)] = low_pass_anchor(pedal, rate)
        for arm, unit in chosen.items():
            output = excerpt(_read(store, layout.unit_output(unit, riff), rate), rate, seconds)
            if output.size != pedal.size:
                key = layout.unit_output(unit, riff)
                raise StimulusError(f"{store.url(key)}: {output.size} samples, the pedal's riff has {pedal.size}")
            raw[(arm, riff)] = output
    gains = match_loudness(raw, rate)
    stimuli = StimulusSet(
        sample_rate=rate,
        riffs=list(recordings.riffs),
        arms=list(chosen),
        units={arm: unit.name for arm, unit in chosen.items()},
        seconds=round(min(seconds, raw[(PEDAL, recordings.riffs[0])].size / rate), 6),
    )
    for key, samples in raw.items():
        gain = gains[key]
        stimuli.wavs[key] = encode_wav(np.clip(samples * gain, -1.0, 1.0).astype(np.float32), rate)
        stimuli.gains_db[f"{key[0]}/{key[1]}"] = round(20 * float(np.log10(gain)), 6)
    log.info(
        "listen: %d arms (%s), %d riffs, excerpts of %.1f s, matched to %.0f LUFS",
        len(chosen),
        ", ".join(stimuli.units.values()),
        len(stimuli.riffs),
        stimuli.seconds,
        TARGET_LUFS,
    )
    return stimuli


def _read(store: Store, key: str, rate: int) -> np.ndarray:
    try:
        return decode_wav(store.read_bytes(key), store.url(key), expected_rate=rate).samples
    except MissingObjectError:
        raise StimulusError(f"{store.url(key)}: missing (run the eval stage for every arm)") from None
