"""The built-in demo recordings and the ``synth`` command.

``python -m sd1job synth`` writes, through the store, what the ``data`` and ``eval`` stages
read: a training pair shaped like a capture file and six short test riffs, each as a dry
(guitar DI) and a wet (through the virtual SD-1) 24-bit WAV, plus ``recordings/synth.json``
describing how they were made. Everything comes from the seed: the same options give the same
bytes.

The training recording (``--seconds``, default 180) is laid out like the re-amp files of neural
capture tools: a little noise floor, a validation phrase, blips, two sine sweeps (50 mV and
500 mV), band-limited noise rising from 1 mV to 150 mV RMS, about 71 % varied playing (palm-
muted chugs, gallops, power-chord riffs, strummed open and barre chords, clean arpeggios,
pentatonic leads with bends and vibrato, rests; across the neck and from soft to hard picking),
and the validation phrase again, sample for sample. The riffs (``--riff-seconds``, default 8)
are hand-written phrases in the spirit of their names, looped to length; the training playing
is drawn at random, so none of them appears in it.

Levels: the dry files hold the DI in volts (1.0 = 1 V; hard chords peak at several hundred
millivolts; a take that would pass 0.95 is scaled down as a whole, and logged). The wet files
hold the pedal's output voltage times ONE gain for the whole set, chosen so that the loudest wet
file peaks at -3 dBFS: relative levels between files are real, nothing is clipped, and the gain
is recorded in synth.json.

Existing recordings are never overwritten silently: if synth.json records the same settings
and every file exists, the command does nothing; if the files were written with other settings,
or by something else (your own recordings), it stops with an error unless ``--force`` is given.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import signal

from sd1job.audio import encode_wav
from sd1job.config import Config
from sd1job.errors import UserError
from sd1job.layout import riff_dry_key, riff_wet_key, synth_info_key
from sd1job.store import Store, open_store
from sd1job.synth.guitar import Guitar, noise_floor
from sd1job.synth.pedal import OVERSAMPLE, SD1, Knobs, VirtualSD1
from sd1job.synth.score import Score

log = logging.getLogger(__name__)


GENERATOR_VERSION = 1
DRY_PEAK_MAX = 0.95
WET_PEAK = 10 ** (-3 / 20)
LEAD_IN = 0.05  # seconds of noise floor before a riff's first note
FADE = 0.03  # seconds of fade-out at the end of a riff
MIN_SECONDS, MIN_RIFF_SECONDS, MIN_RATE = 2.0, 0.5, 22050


class SynthError(UserError, ValueError):
    """The demo recordings cannot be written as asked; the message says why and what to do."""


# --- the six test riffs -------------------------------------------------------------------------
# Strings: 0 = low E ... 5 = high E (standard tuning). Each function plays one phrase.


def battery(s: Score) -> None:
    """Fast thrash down-picking: palm-muted 16ths on low E, accented power chords."""
    s.tempo(188).dynamics(0.85)
    for _ in range(2):
        for _ in range(4):
            s.power(0, 0, 0.25, octave=False, mute=True)
        s.power(0, 3, 0.5, accent=True).power(0, 5, 0.5, accent=True)
    for _ in range(6):
        s.power(0, 0, 0.25, octave=False, mute=True)
    s.power(0, 6, 0.25, accent=True).power(0, 5, 0.25, accent=True)
    s.power(1, 2, 0.5, accent=True, ring=True).power(0, 3, 0.5, accent=True)


def electric_eye(s: Score) -> None:
    """A galloping metal riff: eighth plus two sixteenths, muted pedal tone, power-chord stabs."""
    s.tempo(162).dynamics(0.8)
    for chord in ((0, 5), (0, 7), (1, 5), (0, 3)):
        for _ in range(2):
            s.note(0, 2, 0.5, mute=True, accent=True).note(0, 2, 0.25, mute=True).note(0, 2, 0.25, mute=True)
        s.power(*chord, 0.5, accent=True).power(*chord, 0.25, mute=True).power(*chord, 0.25, mute=True)
        s.note(0, 2, 0.5, mute=True).rest(0.5, damp=False)


def holy_war(s: Score) -> None:
    """A fast chromatic single-note riff over a muted pedal tone, with a trill and a gallop."""
    s.tempo(176).dynamics(0.8)
    for top in ((1, 1), (1, 2), (1, 3), (1, 2)):
        s.note(0, 0, 0.25, mute=True).note(0, 0, 0.25, mute=True)
        s.note(*top, 0.25, accent=True).note(0, 0, 0.25, mute=True)
    for _ in range(3):
        s.note(2, 2, 0.125).note(2, 3, 0.125)
    s.note(2, 2, 0.25).note(1, 5, 0.5, accent=True, vibrato=25)
    s.note(0, 0, 0.5, mute=True).note(0, 0, 0.25, mute=True).note(0, 0, 0.25, mute=True)
    s.power(0, 1, 0.5, accent=True).power(0, 0, 0.5, ring=True)


def oh_well(s: Score) -> None:
    """A blues-rock call and response: open-string licks, bends, vibrato and stop time."""
    s.tempo(132).dynamics(0.7)
    s.note(0, 0, 0.5).note(0, 3, 0.25).note(1, 0, 0.25).note(1, 2, 0.5, bend=1.0, release=True)
    s.note(2, 0, 0.5).note(2, 2, 0.5, bend=2.0, vibrato=35).rest(0.5)
    s.chord([(0, 0), (1, 2), (2, 2)], 0.5, accent=True).rest(1.0)
    s.note(3, 2, 0.25).note(3, 0, 0.25).note(2, 2, 0.25).note(2, 0, 0.25)
    s.note(1, 2, 0.5, bend=1.0).note(1, 0, 0.5).note(0, 3, 0.5, vibrato=30).note(0, 0, 1.0, ring=True)
    s.rest(1.0)


def sanitarium(s: Score) -> None:
    """A clean, ringing arpeggio at low picking strength."""
    s.tempo(96).dynamics(0.35)
    shapes = (
        ((1, 0), (2, 2), (3, 2), (4, 1)),
        ((0, 3), (2, 0), (3, 0), (4, 0)),
        ((2, 0), (3, 2), (4, 3), (5, 2)),
        ((1, 0), (2, 2), (3, 2), (4, 2)),
    )
    for shape in shapes:
        for index in (0, 1, 2, 3, 2, 1):
            s.note(*shape[index], 0.5, ring=True)
        s.note(*shape[3], 0.5, ring=True, vibrato=15).note(*shape[2], 0.5, ring=True)


def shadow_love(s: Score) -> None:
    """A slow, dark ballad figure: a ringing low chord, then a sung melody with swells and vibrato."""
    s.tempo(72)
    s.dynamics(0.55).chord([(0, 0), (1, 2), (2, 2), (3, 0)], 1.0, ring=True, strum=0.02)
    s.dynamics(0.45).note(3, 4, 1.0, vibrato=30).note(4, 5, 0.5).note(4, 3, 0.5, bend=2.0, release=True)
    s.dynamics(0.6).note(3, 2, 1.5, vibrato=40).rest(0.5, damp=False)
    s.dynamics(0.5).chord([(1, 0), (2, 2), (3, 2), (4, 1)], 1.0, ring=True, up=True, strum=0.015)
    s.dynamics(0.4).note(4, 1, 0.5).note(4, 3, 0.5).note(5, 0, 1.0, vibrato=25).rest(1.0)


RIFFS: dict[str, Callable[[Score], None]] = {
    "battery": battery,
    "electricEye": electric_eye,
    "holywar": holy_war,
    "ohwell": oh_well,
    "sanitarium": sanitarium,
    "shadowlove": shadow_love,
}


# --- varied playing for training ------------------------------------------------------------------

MINOR_PENTATONIC = (0, 3, 5, 7, 10)
CHORD_SHAPES = (  # open shapes; E- and A-shapes also move up the neck as barre chords
    ((0, 0), (1, 2), (2, 2), (3, 1), (4, 0), (5, 0)),
    ((0, 0), (1, 2), (2, 2), (3, 0), (4, 0), (5, 0)),
    ((1, 0), (2, 2), (3, 2), (4, 2), (5, 0)),
    ((1, 0), (2, 2), (3, 2), (4, 1), (5, 0)),
    ((2, 0), (3, 2), (4, 3), (5, 2)),
    ((0, 3), (1, 2), (2, 0), (3, 0), (4, 0), (5, 3)),
    ((1, 3), (2, 2), (3, 0), (4, 1), (5, 0)),
)

STRUM_RHYTHMS = ((1.0, 1.0), (0.5, 0.5, 1.0), (2.0,), (1.0, 0.5, 0.5))


def _chugs(s: Score, rng: np.random.Generator) -> None:
    s.tempo(rng.uniform(160, 200))
    root_string, key = int(rng.integers(0, 2)), int(rng.integers(0, 8))
    for _ in range(int(rng.integers(2, 5))):
        for step in range(8):
            if rng.random() < 0.25:
                s.power(root_string, key + int(rng.choice([3, 5, 7, 1])), 0.25, octave=False, accent=True)
            else:
                s.power(root_string, key, 0.25, octave=False, mute=True, accent=step % 4 == 0)


def _gallop(s: Score, rng: np.random.Generator) -> None:
    s.tempo(rng.uniform(140, 190))
    root_string, key = int(rng.integers(0, 2)), int(rng.integers(0, 8))
    for _ in range(int(rng.integers(3, 7))):
        s.note(root_string, key, 0.5, mute=True, accent=True)
        s.note(root_string, key, 0.25, mute=True).note(root_string, key, 0.25, mute=True)
        if rng.random() < 0.4:
            s.power(root_string, key + int(rng.choice([2, 3, 5])), 0.5, accent=True)


def _power_riff(s: Score, rng: np.random.Generator) -> None:
    s.tempo(rng.uniform(90, 170))
    key = int(rng.integers(0, 10))
    for _ in range(int(rng.integers(6, 14))):
        string = int(rng.integers(0, 3))
        fret = (key + int(rng.choice(MINOR_PENTATONIC))) % 12
        beats = float(rng.choice([0.5, 0.5, 1.0, 0.25]))
        s.power(string, fret, beats, octave=rng.random() < 0.5, mute=rng.random() < 0.3)


def _strum(s: Score, rng: np.random.Generator) -> None:
    s.tempo(rng.uniform(70, 140))
    for _ in range(int(rng.integers(3, 7))):
        shape = CHORD_SHAPES[int(rng.integers(len(CHORD_SHAPES)))]
        barre = int(rng.integers(0, 10)) if shape[0] in ((0, 0), (1, 0)) and rng.random() < 0.5 else 0
        frets = [(string, fret + barre) for string, fret in shape]
        rhythm = STRUM_RHYTHMS[int(rng.integers(len(STRUM_RHYTHMS)))]
        for beats in rhythm:
            s.chord(frets, beats, ring=True, up=rng.random() < 0.4, strum=rng.uniform(0.004, 0.02))


def _arpeggio(s: Score, rng: np.random.Generator) -> None:
    s.tempo(rng.uniform(70, 120)).dynamics(rng.uniform(0.2, 0.55))
    for _ in range(int(rng.integers(2, 5))):
        shape = CHORD_SHAPES[int(rng.integers(len(CHORD_SHAPES)))]
        order = rng.permutation(len(shape))[: int(rng.integers(3, len(shape) + 1))]
        for index in np.concatenate([order, order[::-1][1:]]):
            s.note(*shape[int(index)], 0.5, ring=True)


def _lead(s: Score, rng: np.random.Generator) -> None:
    s.tempo(rng.uniform(80, 160))
    position, key = int(rng.integers(0, 13)), int(rng.integers(0, 12))
    tuning = s.guitar.tuning
    box = sorted(
        ((tuning[string] + fret, string, fret) for string in range(1, 6) for fret in range(position, position + 5)),
    )
    box = [item for item in box if (item[0] - key) % 12 in MINOR_PENTATONIC]
    index = int(rng.integers(len(box)))
    for _ in range(int(rng.integers(8, 20))):
        index = int(np.clip(index + rng.choice([-2, -1, -1, 1, 1, 2]), 0, len(box) - 1))
        _, string, fret = box[index]
        beats = float(rng.choice([0.25, 0.5, 0.5, 1.0, 1.5]))
        bend = float(rng.choice([1.0, 2.0])) if beats >= 0.5 and rng.random() < 0.25 else 0.0
        vibrato = float(rng.uniform(15, 45)) if beats >= 1.0 and rng.random() < 0.6 else 0.0
        s.note(string, fret, beats, bend=bend, release=bend > 0 and rng.random() < 0.5, vibrato=vibrato)


SECTIONS = (_chugs, _gallop, _power_riff, _strum, _arpeggio, _lead)


def varied_playing(seconds: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Random sections of playing (every style, across the neck and the dynamic range), ``seconds`` long."""
    score = Score(rng).at(LEAD_IN)
    while score.time < seconds:
        score.dynamics(float(rng.uniform(0.25, 1.0)))
        SECTIONS[int(rng.integers(len(SECTIONS)))](score, rng)
        if rng.random() < 0.3:
            score.rest(float(rng.choice([0.5, 1.0, 2.0])))
    return score.render(sample_rate, seconds)


# --- capture signals ----------------------------------------------------------------------------


def _fade(x: np.ndarray, samples: int) -> np.ndarray:
    samples = min(samples, len(x) // 2)
    if samples > 0:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, samples))
        x[:samples] *= ramp
        x[-samples:] *= ramp[::-1]
    return x


def sine_sweep(length: int, sample_rate: int, amplitude: float, low: float = 20.0) -> np.ndarray:
    """An exponential sine sweep from ``low`` Hz to 20 kHz (or 0.45 of the rate), faded in and out."""
    high = min(20000.0, 0.45 * sample_rate)
    duration = length / sample_rate
    t = np.arange(length) / sample_rate
    rate = math.log(high / low)
    phase = 2 * np.pi * low * duration / rate * np.expm1(t * rate / duration)
    return _fade(amplitude * np.sin(phase), int(0.01 * sample_rate))


def rising_noise(
    length: int, sample_rate: int, rng: np.random.Generator, start: float = 1e-3, end: float = 0.15
) -> np.ndarray:
    """Band-limited (60 Hz to 8 kHz) noise whose RMS rises exponentially from ``start`` to ``end`` volts."""
    sos = signal.butter(2, [60.0, min(8000.0, 0.45 * sample_rate)], btype="bandpass", fs=sample_rate, output="sos")
    noise = signal.sosfilt(sos, rng.standard_normal(length))
    noise /= np.sqrt(np.mean(noise**2)) or 1.0
    return _fade(noise * np.geomspace(start, end, length), int(0.01 * sample_rate))


def blips(length: int, sample_rate: int, amplitude: float = 0.3) -> np.ndarray:
    """Three short raised-cosine clicks (1 ms), evenly spaced: the latency markers of a capture file."""
    out = np.zeros(length)
    width = max(3, int(0.001 * sample_rate))
    pulse = amplitude * np.hanning(width)
    for k in (1, 2, 3):
        at = k * length // 4
        out[at : at + width] += pulse[: max(0, length - at)]
    return out


# fraction of the training recording per section; the varied playing takes what is left
LAYOUT = (
    ("noise floor", 0.01),
    ("validation", 0.06),
    ("blips", 0.02),
    ("sweep 50 mV", 0.04),
    ("sweep 500 mV", 0.04),
    ("rising noise", 0.06),
    ("playing", None),
    ("validation repeat", 0.06),
)


def training_dry(seconds: float, sample_rate: int, seed: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """The dry training recording (volts) and its sections (name, start and length in seconds)."""
    total = round(seconds * sample_rate)
    counts = {name: round(share * total) for name, share in LAYOUT if share is not None}
    counts["playing"] = total - sum(counts.values())
    guitar = Guitar()
    validation = varied_playing(counts["validation"] / sample_rate, sample_rate, np.random.default_rng([seed, 0, 1]))
    rng = np.random.default_rng([seed, 0, 2])
    parts = {
        "noise floor": noise_floor(counts["noise floor"], guitar, sample_rate, rng),
        "validation": validation,
        "blips": blips(counts["blips"], sample_rate),
        "sweep 50 mV": sine_sweep(counts["sweep 50 mV"], sample_rate, 0.05),
        "sweep 500 mV": sine_sweep(counts["sweep 500 mV"], sample_rate, 0.5),
        "rising noise": rising_noise(counts["rising noise"], sample_rate, rng),
        "playing": varied_playing(counts["playing"] / sample_rate, sample_rate, np.random.default_rng([seed, 0, 3])),
        "validation repeat": validation,
    }
    sections, start = [], 0
    for name, _ in LAYOUT:
        sections.append({"name": name, "start": start / sample_rate, "seconds": counts[name] / sample_rate})
        start += counts[name]
    return np.concatenate([parts[name] for name, _ in LAYOUT]), sections


def riff_dry(name: str, seconds: float, sample_rate: int, seed: int) -> np.ndarray:
    """A test riff's dry recording (volts): its phrase looped to ``seconds``, faded at the end."""
    rng = np.random.default_rng([seed, 1, zlib.crc32(name.encode("utf-8"))])
    score = Score(rng).at(LEAD_IN)
    while score.time < seconds:
        RIFFS[name](score)
    return _fade_out(score.render(sample_rate, seconds), int(FADE * sample_rate))


def _fade_out(x: np.ndarray, samples: int) -> np.ndarray:
    samples = min(samples, len(x))
    if samples:
        x[-samples:] *= np.linspace(1.0, 0.0, samples)
    return x


def _fit_dry(name: str, dry: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(dry)))
    if peak > DRY_PEAK_MAX:
        log.warning("%s: dry peak %.3f V scaled down to %.2f to fit full scale", name, peak, DRY_PEAK_MAX)
        return dry * (DRY_PEAK_MAX / peak)
    return dry


# --- the demo set ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoSettings:
    """Everything the demo recordings depend on."""

    seed: int = 25
    seconds: float = 180.0
    riff_seconds: float = 8.0
    sample_rate: int = 44100
    knobs: Knobs = field(default_factory=Knobs)
    riffs: tuple[str, ...] = tuple(RIFFS)

    def __post_init__(self) -> None:
        if not self.seconds >= MIN_SECONDS:
            raise SynthError(f"synth: --seconds must be at least {MIN_SECONDS:g}, got {self.seconds:g}")
        if not self.riff_seconds >= MIN_RIFF_SECONDS:
            raise SynthError(f"synth: --riff-seconds must be at least {MIN_RIFF_SECONDS:g}, got {self.riff_seconds:g}")
        if self.sample_rate < MIN_RATE:
            raise SynthError(f"synth: sample rate must be at least {MIN_RATE} Hz, got {self.sample_rate}")
        unknown = [name for name in self.riffs if name not in RIFFS]
        if unknown:
            raise SynthError(f"recordings.riffs: synth has no riff named {unknown[0]!r}; it knows {', '.join(RIFFS)}")

    def as_json(self) -> dict[str, Any]:
        """The settings as recorded in synth.json (compared to decide whether to skip)."""
        return {
            "generator_version": GENERATOR_VERSION,
            "seed": self.seed,
            "seconds": float(self.seconds),
            "riff_seconds": float(self.riff_seconds),
            "sample_rate": self.sample_rate,
            "knobs": asdict(self.knobs),
            "riffs": list(self.riffs),
        }


@dataclass
class DemoSet:
    """The generated recordings, in volts at the pedal's input and output, and the training sections."""

    dry: dict[str, np.ndarray]  # "train" and every riff name
    wet: dict[str, np.ndarray]
    sections: list[dict[str, Any]]


def generate(settings: DemoSettings) -> DemoSet:
    """Synthesise every dry recording and run it through the virtual pedal (logs progress)."""
    started = time.perf_counter()
    rate = settings.sample_rate
    log.info("synth: rendering %.0f s of training guitar at %d Hz (seed %d)", settings.seconds, rate, settings.seed)
    train, sections = training_dry(settings.seconds, rate, settings.seed)
    dry = {"train": _fit_dry("train", train)}
    for name in settings.riffs:
        dry[name] = _fit_dry(name, riff_dry(name, settings.riff_seconds, rate, settings.seed))
    log.info("synth: guitar done in %.1f s; running the virtual SD-1", time.perf_counter() - started)
    pedal = VirtualSD1(settings.knobs, sample_rate=rate)
    wet = {}
    for name, signal_in in dry.items():
        wet[name] = pedal.process(signal_in)
        log.info("synth: %s through the pedal (%.1f s of audio)", name, len(signal_in) / rate)
    log.info("synth: generated in %.1f s", time.perf_counter() - started)
    return DemoSet(dry, wet, sections)


def _keys(config: Config, riffs: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    keys = {"train": (config.recordings.train.dry, config.recordings.train.wet)}
    for name in riffs:
        keys[name] = (riff_dry_key(config.recordings.test_dir, name), riff_wet_key(config.recordings.test_dir, name))
    return keys


def _check_existing(store: Store, settings: DemoSettings, keys: list[str], info_key: str) -> bool:
    """True if the same settings were already written; raise if other recordings would be overwritten."""
    if store.exists(info_key):
        info = store.read_json(info_key)
        if isinstance(info, dict) and info.get("settings") == settings.as_json():
            if all(store.exists(key) for key in keys):
                return True
        else:
            raise SynthError(
                f"{store.url(info_key)}: demo recordings with other settings exist; pass --force to overwrite them"
            )
    present = [key for key in keys if store.exists(key)]
    if present and not store.exists(info_key):
        raise SynthError(
            f"{store.url(present[0])} exists and was not written by synth; pass --force to overwrite recordings"
        )
    return False


def write_demo_recordings(
    store: Store,
    config: Config,
    *,
    seconds: float = 180.0,
    riff_seconds: float = 8.0,
    seed: int | None = None,
    knobs: Knobs | None = None,
    sample_rate: int | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Write the demo recordings for ``config`` into ``store``; return what synth.json records.

    Defaults: ``seed`` from ``config.dataset.seed``, ``sample_rate`` from
    ``config.recordings.sample_rate``, every knob at noon, the riffs of ``config.recordings.riffs``.
    Tests and demos can ask for a small set (``seconds=8, riff_seconds=1`` takes about a second).
    Skips the work if the same settings were already written; refuses to overwrite other
    recordings unless ``force``. The files go where ``config.recordings`` says (its chosen set's
    paths when ``recordings.set`` is given, see ``Config.with_values``), the record of what was
    written to ``synth_info_key(config.recordings.set)``.
    """
    info_key = synth_info_key(config.recordings.set)
    settings = DemoSettings(
        seed=config.dataset.seed if seed is None else seed,
        seconds=seconds,
        riff_seconds=riff_seconds,
        sample_rate=config.recordings.sample_rate if sample_rate is None else sample_rate,
        knobs=knobs or Knobs(),
        riffs=tuple(config.recordings.riffs),
    )
    keys = _keys(config, settings.riffs)
    all_keys = [key for pair in keys.values() for key in pair]
    if not force and _check_existing(store, settings, all_keys, info_key):
        log.info("synth: %s already holds these recordings; nothing to do", store.url(info_key))
        return store.read_json(info_key)
    demo = generate(settings)
    wet_peak = max(float(np.max(np.abs(w))) for w in demo.wet.values())
    wet_gain = WET_PEAK / wet_peak
    store.delete(info_key)  # written last: its presence marks a complete set
    files: dict[str, dict[str, Any]] = {}
    for name, (dry_key, wet_key) in keys.items():
        for key, samples in ((dry_key, demo.dry[name]), (wet_key, demo.wet[name] * wet_gain)):
            store.write_bytes(key, encode_wav(samples, settings.sample_rate))
            files[key] = {
                "seconds": len(samples) / settings.sample_rate,
                "peak": round(float(np.max(np.abs(samples))), 6),
                "rms": round(float(np.sqrt(np.mean(samples**2))), 6),
            }
    info = {
        "generator": "sd1job synth: synthetic guitar DI through a circuit-informed virtual Boss SD-1",
        "settings": settings.as_json(),
        "pedal": {
            "knobs": asdict(settings.knobs),
            "circuit": asdict(SD1),
            "oversample": OVERSAMPLE,
            "solver": "fast",
        },
        "levels": {
            "dry": "volts at the pedal input (1.0 = 1 V)",
            "wet": "volts at the pedal output times wet_gain (one gain for every file)",
            "wet_gain": round(wet_gain, 9),
            "wet_gain_db": round(20 * math.log10(wet_gain), 3),
        },
        "train_sections": demo.sections,
        "files": files,
    }
    store.write_json(info_key, info)
    log.info("synth: wrote %d recordings and %s", len(files), store.url(info_key))
    return info


# --- the command ----------------------------------------------------------------------------------


def _knob(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value:g} is outside [0, 1] (0.5 is noon)")
    return value


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m sd1job synth``."""
    parser.add_argument("--store", default=None, help="store to write to (default: the config's store)")
    parser.add_argument("--seconds", type=float, default=180.0, help="length of the training recording (default 180)")
    parser.add_argument("--riff-seconds", type=float, default=8.0, help="length of each test riff (default 8)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: the config's dataset.seed)")
    parser.add_argument(
        "--drive",
        type=_knob,
        default=None,
        help="Drive knob in [0, 1] (default: a recording set's demo_drive, else 0.5, noon)",
    )
    for knob in ("tone", "level"):
        parser.add_argument(f"--{knob}", type=_knob, default=0.5, help=f"{knob.title()} knob in [0, 1] (default 0.5)")
    parser.add_argument(
        "--sample-rate", type=int, default=None, help="sample rate in Hz (default: the config's recordings.sample_rate)"
    )
    parser.add_argument(
        "--set",
        dest="recording_set",
        metavar="NAME",
        default=None,
        help="write only the config's recording set NAME (default: every set of recordings.sets, each at its "
        "demo_drive; a config without sets: its default recordings)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="overwrite existing recordings (default: skip if synth.json records the same settings, else refuse)",
    )


def recordings_to_write(config: Config, recording_set: str | None) -> list[tuple[str | None, Config]]:
    """What ``synth`` writes: the set asked for; else every one of ``recordings.sets`` (in the config's order);
    else the default recordings (None)."""
    if recording_set is not None:
        return [(recording_set, config.with_recording_set(recording_set))]
    if config.recordings.sets:
        return [(name, config.with_recording_set(name)) for name in config.recordings.sets]
    return [(None, config)]


def run(args: argparse.Namespace, config: Config | None) -> int:
    """Generate and write the demo recordings (each recording set at its ``demo_drive``, else ``--drive``)."""
    assert config is not None
    targets = recordings_to_write(config, args.recording_set)
    store = open_store(args.store or config.store)
    for name, chosen in targets:
        demo_drive = None if name is None else config.recordings.sets[name].demo_drive
        drive = next(value for value in (args.drive, demo_drive, 0.5) if value is not None)
        if name is not None:
            log.info("synth: recording set %s at Drive %.2f", name, drive)
        write_demo_recordings(
            store,
            chosen,
            seconds=args.seconds,
            riff_seconds=args.riff_seconds,
            seed=args.seed,
            knobs=Knobs(drive, args.tone, args.level),
            sample_rate=args.sample_rate,
            force=args.force,
        )
    return 0
