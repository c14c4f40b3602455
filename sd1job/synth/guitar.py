"""A synthetic electric guitar DI: extended Karplus-Strong strings and a magnetic pickup.

Each note is one string's vibration (Jaffe and Smith's extended Karplus-Strong):

- an excitation one period long: an impulse plus seeded noise, tilted like a pluck, shaped by
  the pick (a one-pole low-pass, darker for soft or palm-muted picking), a comb for the pick
  position and one for the pickup position (both notches move up the spectrum as the fretted
  string gets shorter);
- a loop of ``N`` samples of delay closed through a damping filter (one-pole loss filter: the
  decay time ``T60`` at the fundamental and how much faster the highs die), a stiffness
  all-pass (higher partials slightly sharp) and a first-order Thiran all-pass for the
  fractional part of the period, so each note is in tune to a fraction of a cent.

The loop is a rational transfer function; its recursion (the delay line plus a third-order
filter) is compiled with numba, about half a millisecond per note-second at any pitch. Bends
and vibrato modulate the pitch by reading the note with a time-varying rate (the same as
modulating the loop delay, up to the decay being stretched by the bend ratio).

The notes are summed and pass the pickup: the aperture (a gentle low-pass) and the coil's
resonance with the cable's capacitance (a resonant low-pass near 3 kHz). A real DI also
carries a noise floor: hiss and mains hum, added everywhere, so rests are not digital silence.

Units: volts, 1.0 = 1 V (single picked notes peak at tens of millivolts, hard chords at several
hundred).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np
from scipy import signal

STANDARD_TUNING: tuple[int, ...] = (40, 45, 50, 55, 59, 64)  # MIDI notes E2 A2 D3 G3 B3 E4, low string first
MAX_RING = 8.0  # seconds a note may ring at most
RELEASE = 0.012  # time constant (s) of a note damped by the player
NOISE_SHARE = 0.35  # noise in the excitation, relative to the impulse, per harmonic


@dataclass(frozen=True)
class Guitar:
    """The instrument: tuning, pickup and noise floor."""

    tuning: tuple[int, ...] = STANDARD_TUNING
    pickup_position: float = 0.08  # distance of the (bridge) pickup from the bridge, over the scale length
    aperture_hz: float = 7000.0
    resonance_hz: float = 3200.0  # coil inductance with the cable's capacitance
    resonance_q: float = 1.8
    note_peak: float = 0.22  # volts: the peak of one note picked as hard as possible
    hum_hz: float = 60.0
    hum_volts: float = 2.5e-4  # peak of the mains hum
    hiss_volts: float = 1.5e-5  # RMS of the white hiss

    def __post_init__(self) -> None:
        if not self.tuning:
            raise ValueError("a guitar needs at least one string")
        if not 0.0 < self.pickup_position < 0.5:
            raise ValueError("pickup_position must be in (0, 0.5)")


@dataclass(frozen=True)
class Pluck:
    """One picked note: which string and fret, when, how hard, how it ends and how it moves."""

    start: float  # seconds
    string: int  # 0 = the lowest string
    fret: int
    velocity: float = 0.7  # 0..1
    stop: float | None = None  # seconds: when the player damps it (None: it rings out)
    muted: bool = False  # palm mute: short decay, darker
    pick_position: float = 0.15  # distance of the pick from the bridge, over the scale length
    bend: tuple[tuple[float, float], ...] = ()  # (seconds after start, semitones) breakpoints
    vibrato_cents: float = 0.0
    vibrato_hz: float = 5.5
    vibrato_delay: float = 0.15  # seconds after start before vibrato begins

    def __post_init__(self) -> None:
        if not 0.0 <= self.velocity <= 1.0:
            raise ValueError(f"velocity must be in [0, 1], got {self.velocity}")
        if self.fret < 0:
            raise ValueError(f"fret must not be negative, got {self.fret}")
        if self.stop is not None and self.stop < self.start:
            raise ValueError("a note cannot stop before it starts")


def midi_to_hz(note: float) -> float:
    """Frequency of a MIDI note number (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((note - 69.0) / 12.0)


def _phase_delay(b: np.ndarray, a: np.ndarray, omega: float) -> float:
    """Phase delay (samples) of the filter ``b / a`` (polynomials in z^-1) at ``omega`` rad/sample."""
    z = np.exp(-1j * omega * np.arange(max(len(b), len(a))))
    response = np.dot(b, z[: len(b)]) / np.dot(a, z[: len(a)])
    return float(-np.angle(response) / omega)


@dataclass(frozen=True)
class StringLoop:
    """The closed loop of one note: integer delay and the loop filter ``b / a``."""

    delay: int
    b: np.ndarray
    a: np.ndarray


def string_loop(f0: float, sample_rate: int, t60: float, darkness: float, stiffness: float = 0.1) -> StringLoop:
    """Design the loop of a string sounding ``f0`` Hz that decays by 60 dB in ``t60`` s at ``f0``.

    ``darkness`` in [0, 1) is the loss filter's pole (higher: highs die faster); ``stiffness`` in
    [0, 1) the (negated) coefficient of the dispersion all-pass.
    """
    period = sample_rate / f0
    omega = 2 * math.pi * f0 / sample_rate
    if period < 4:
        raise ValueError(f"{f0:.0f} Hz is too high for {sample_rate} Hz")
    loss_shape = (np.array([1.0 - darkness]), np.array([1.0, -darkness]))
    shape_gain = abs((1.0 - darkness) / (1.0 - darkness * np.exp(-1j * omega)))
    gain = min(10.0 ** (-3.0 / (f0 * t60)) / shape_gain, 0.99999)
    loss = (loss_shape[0] * gain, loss_shape[1])
    c = -stiffness
    disperse = (np.array([c, 1.0]), np.array([1.0, c]))
    fixed = _phase_delay(*loss, omega) + _phase_delay(*disperse, omega)
    delay = math.floor(period - fixed - 0.5)
    fraction = period - delay - fixed
    target = fraction
    for _ in range(4):  # the Thiran all-pass's delay is exact only at DC: correct it at f0
        eta = (1.0 - fraction) / (1.0 + fraction)
        fraction += target - _phase_delay(np.array([eta, 1.0]), np.array([1.0, eta]), omega)
    eta = (1.0 - fraction) / (1.0 + fraction)
    tune = (np.array([eta, 1.0]), np.array([1.0, eta]))
    b = np.convolve(np.convolve(loss[0], disperse[0]), tune[0])
    a = np.convolve(np.convolve(loss[1], disperse[1]), tune[1])
    return StringLoop(delay, b, a)


@numba.njit(cache=True, nogil=True)
def _feedback_loop(e, delay, b, a):  # type: ignore[no-untyped-def]
    """``y[n] = e[n] + w[n]`` with ``w = (b / a)`` applied to ``y[n - delay]`` (``a[0] = 1``)."""
    length = len(e)
    y = np.empty(length)
    w = np.zeros(length)
    for n in range(length):
        acc = 0.0
        for k in range(len(b)):
            m = n - delay - k
            if m >= 0:
                acc += b[k] * y[m]
        for k in range(1, len(a)):
            if n - k >= 0:
                acc -= a[k] * w[n - k]
        w[n] = acc
        y[n] = e[n] + acc
    return y


def run_loop(excitation: np.ndarray, loop: StringLoop, length: int) -> np.ndarray:
    """The string's output ``y = e + G(z) z^-N y`` for ``length`` samples (compiled recursion)."""
    e = np.zeros(length)
    e[: min(length, len(excitation))] = excitation[:length]
    return _feedback_loop(e, loop.delay, loop.b / loop.a[0], loop.a / loop.a[0])


def decay_time(f0: float, fret: int, muted: bool, rng: np.random.Generator) -> float:
    """T60 (s) of a note: 2 to 6 s for open low strings, shorter up the neck, about 0.1 s muted."""
    if muted:
        return float(rng.uniform(0.08, 0.15))
    base = 5.0 * (82.4 / f0) ** 0.55 * 0.97**fret
    return float(max(0.6, base * rng.uniform(0.85, 1.15)))


def excitation(
    period: float, pick_fraction: float, pickup_fraction: float, darkness: float, rng: np.random.Generator
) -> np.ndarray:
    """One period of an impulse plus seeded noise, shaped like a pluck, by the pick, and combed.

    The burst is tilted down 6 dB per octave above the fundamental (a plucked string's initial
    shape has harmonics falling as 1/k; white noise leaves the low fundamental far under its
    second harmonic), low-passed by the pick, then combed at the pick and pickup positions. The
    noise is NOISE_SHARE of the impulse per harmonic on average. Peak 1.
    """
    length = max(4, round(period))
    burst = NOISE_SHARE / math.sqrt(length) * rng.standard_normal(length)
    burst[0] += 1.0  # an impulse plus noise: steady harmonic levels, a lively attack
    leak = math.exp(-2 * math.pi / period)  # tilt the spectrum 1/k from the fundamental up: a plucked shape
    burst = signal.lfilter([1.0 - darkness], np.convolve([1.0, -darkness], [1.0, -leak]), burst)
    burst -= burst.mean()
    shaped = np.concatenate([burst, np.zeros(length)])
    for fraction in (pick_fraction, pickup_fraction):
        offset = min(length - 1, max(1, round(fraction * period)))
        shaped[offset:] -= shaped[:-offset].copy()
    return shaped / np.max(np.abs(shaped))


def pitch_ratio(pluck: Pluck, times: np.ndarray) -> np.ndarray | None:
    """Playback-rate multiplier over ``times`` (s after the start) from bends and vibrato; None if constant."""
    if not pluck.bend and pluck.vibrato_cents == 0:
        return None
    semitones = np.zeros_like(times)
    if pluck.bend:
        points = sorted(pluck.bend)
        semitones += np.interp(times, [p[0] for p in points], [p[1] for p in points])
    if pluck.vibrato_cents:
        onset = np.clip((times - pluck.vibrato_delay) / 0.15, 0.0, 1.0)
        semitones += onset * pluck.vibrato_cents / 100.0 * np.sin(2 * np.pi * pluck.vibrato_hz * times)
    return 2.0 ** (semitones / 12.0)


def render_pluck(pluck: Pluck, guitar: Guitar, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """One note, in volts, from its start; it ends when damped or when it has decayed 78 dB."""
    if not 0 <= pluck.string < len(guitar.tuning):
        raise ValueError(f"string {pluck.string} does not exist on a {len(guitar.tuning)}-string guitar")
    f0 = midi_to_hz(guitar.tuning[pluck.string] + pluck.fret)
    shorter = 2.0 ** (pluck.fret / 12.0)  # the fretted string is this much shorter than the open one
    t60 = decay_time(f0, pluck.fret, pluck.muted, rng)
    darkness = 0.6 if pluck.muted else 0.08 + 0.1 * rng.random()
    pick_darkness = min(0.95, 0.15 + 0.55 * (1.0 - pluck.velocity) + (0.25 if pluck.muted else 0.0))
    ring = min(MAX_RING, 1.3 * t60)
    if pluck.stop is not None:
        ring = min(ring, pluck.stop - pluck.start + 6 * RELEASE)
    length = max(8, int(ring * sample_rate))
    times = np.arange(length) / sample_rate
    ratio = pitch_ratio(pluck, times)
    position = None
    if ratio is not None:  # read the note at a varying rate: position in the unbent note's samples
        position = np.concatenate([[0.0], np.cumsum(ratio[:-1])])
        length = int(position[-1]) + 2
    period = sample_rate / f0
    shaped = excitation(period, pluck.pick_position * shorter, guitar.pickup_position * shorter, pick_darkness, rng)
    loop = string_loop(f0, sample_rate, t60, darkness, stiffness=0.05 + 0.1 * (pluck.string < 3))
    note = run_loop(shaped, loop, length)
    if position is not None:
        note = np.interp(position, np.arange(len(note)), note)
    if pluck.stop is not None:
        damp_from = int((pluck.stop - pluck.start) * sample_rate)
        if damp_from < len(note):
            note[damp_from:] *= np.exp(-np.arange(len(note) - damp_from) / (RELEASE * sample_rate))
    peak = np.max(np.abs(note))
    volts = guitar.note_peak * pluck.velocity**1.6 * (0.75 if pluck.muted else 1.0)
    return note * (volts / peak) if peak > 0 else note


def pickup(strings: np.ndarray, guitar: Guitar, sample_rate: int) -> np.ndarray:
    """The pickup's aperture low-pass and coil resonance applied to the summed strings."""
    w = 2 * math.pi * guitar.resonance_hz
    resonance = signal.bilinear([1.0], [1.0 / w**2, 1.0 / (guitar.resonance_q * w), 1.0], fs=sample_rate)
    aperture = signal.bilinear([1.0], [1.0 / (2 * math.pi * guitar.aperture_hz), 1.0], fs=sample_rate)
    return signal.lfilter(*resonance, signal.lfilter(*aperture, strings))


def noise_floor(length: int, guitar: Guitar, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Hiss and mains hum (fundamental plus a few harmonics, seeded phases and a slow wobble)."""
    period = sample_rate / guitar.hum_hz
    cycle = round(period) if abs(period - round(period)) < 1e-9 else length  # tile whole mains periods
    t = np.arange(min(cycle, length)) / sample_rate
    hum = np.zeros(len(t))
    for harmonic, weight in ((1, 1.0), (2, 0.25), (3, 0.45), (5, 0.2), (7, 0.1)):
        hum += weight * np.sin(2 * np.pi * guitar.hum_hz * harmonic * t + rng.uniform(0, 2 * np.pi))
    hum = np.resize(hum, length)
    slow = np.arange(length) / sample_rate
    wobble = 1.0 + 0.2 * np.sin(2 * np.pi * 0.3 * slow + rng.uniform(0, 2 * np.pi))
    return guitar.hum_volts / 2.0 * wobble * hum + guitar.hiss_volts * rng.standard_normal(length)


def render(
    plucks: Sequence[Pluck], seconds: float, sample_rate: int, rng: np.random.Generator, guitar: Guitar | None = None
) -> np.ndarray:
    """The guitar DI (volts) playing ``plucks`` for ``seconds``, noise floor included.

    Notes sounding past the end are cut there. Every random choice comes from ``rng``, drawn in
    the order of ``plucks``: the same plucks and generator state give the same samples.
    """
    guitar = guitar or Guitar()
    length = round(seconds * sample_rate)
    strings = np.zeros(length)
    for pluck in plucks:
        start = round(pluck.start * sample_rate)
        if start >= length:
            continue
        note = render_pluck(pluck, guitar, sample_rate, rng)
        stop = min(length, start + len(note))
        strings[start:stop] += note[: stop - start]
    return pickup(strings, guitar, sample_rate) + noise_floor(length, guitar, sample_rate, rng)
