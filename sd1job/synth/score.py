"""A small builder for guitar parts: notes, chords, palm mutes, bends, tempo, dynamics, rests.

Durations are in beats at the current tempo; the builder keeps a cursor and returns itself, so
a riff reads like tablature::

    riff = Score(rng, bpm=180)
    riff.power(0, 0, 0.25, mute=True).power(0, 0, 0.25, mute=True).power(0, 3, 0.5, accent=True)
    riff.note(1, 7, 1.0, bend=2.0, vibrato=30).rest(0.5)

Strings are monophonic: a new note on a string damps the one before. A note lasts its duration
and is then damped by the player unless ``ring=True`` (it rings until the string is played
again or a ``rest`` damps everything). Timing and velocity are humanised with the score's
generator; ``render`` turns the plucks into a DI signal (see ``guitar.render``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from sd1job.synth.guitar import Guitar, Pluck, render


class Score:
    """A cursor over time that collects plucks."""

    def __init__(
        self,
        rng: np.random.Generator,
        bpm: float = 120.0,
        velocity: float = 0.7,
        guitar: Guitar | None = None,
        timing_jitter: float = 0.004,
        velocity_jitter: float = 0.05,
    ) -> None:
        self.rng = rng
        self.guitar = guitar or Guitar()
        self.bpm = bpm
        self.velocity = velocity
        self.timing_jitter = timing_jitter
        self.velocity_jitter = velocity_jitter
        self.time = 0.0
        self.plucks: list[Pluck] = []
        self._sounding: dict[int, int] = {}  # string -> index of its last pluck in self.plucks

    # --- controls ---
    def tempo(self, bpm: float) -> Score:
        """Set the tempo (beats per minute) from here on."""
        if bpm <= 0:
            raise ValueError("tempo must be positive")
        self.bpm = bpm
        return self

    def dynamics(self, velocity: float) -> Score:
        """Set the picking strength (0..1) from here on."""
        if not 0.0 <= velocity <= 1.0:
            raise ValueError("velocity must be in [0, 1]")
        self.velocity = velocity
        return self

    def beats(self, count: float) -> float:
        """Seconds in ``count`` beats at the current tempo."""
        return count * 60.0 / self.bpm

    def at(self, seconds: float) -> Score:
        """Move the cursor to an absolute time (seconds)."""
        self.time = seconds
        return self

    # --- playing ---
    def _damp(self, string: int, when: float) -> None:
        index = self._sounding.pop(string, None)
        if index is None:
            return
        pluck = self.plucks[index]
        if pluck.stop is None or pluck.stop > when:
            stop = max(pluck.start, when)
            self.plucks[index] = replace(pluck, stop=stop)

    def _pluck(
        self,
        string: int,
        fret: int,
        start: float,
        length: float,
        velocity: float,
        mute: bool,
        ring: bool,
        bend: float,
        release: bool,
        vibrato: float,
    ) -> None:
        if not 0 <= string < len(self.guitar.tuning):
            raise ValueError(f"string {string} does not exist")
        start = max(0.0, start + self.rng.normal(0.0, self.timing_jitter))
        velocity = float(np.clip(velocity + self.rng.normal(0.0, self.velocity_jitter), 0.02, 1.0))
        self._damp(string, start)
        breakpoints: tuple[tuple[float, float], ...] = ()
        if bend:
            rise = min(0.12, 0.35 * length)
            breakpoints = ((0.0, 0.0), (0.25 * rise, 0.0), (rise, bend))
            if release:
                breakpoints += ((0.7 * length, bend), (0.95 * length, 0.0))
        self.plucks.append(
            Pluck(
                start=start,
                string=string,
                fret=fret,
                velocity=velocity,
                stop=None if ring else start + 0.95 * length,
                muted=mute,
                pick_position=float(self.rng.uniform(0.12, 0.2)),
                bend=breakpoints,
                vibrato_cents=vibrato,
                vibrato_delay=min(0.15, 0.3 * length),
            )
        )
        self._sounding[string] = len(self.plucks) - 1

    def note(
        self,
        string: int,
        fret: int,
        beats: float,
        *,
        velocity: float | None = None,
        accent: bool = False,
        mute: bool = False,
        ring: bool = False,
        bend: float = 0.0,
        release: bool = False,
        vibrato: float = 0.0,
    ) -> Score:
        """Pick one note and advance ``beats``; ``bend`` in semitones, ``vibrato`` depth in cents."""
        length = self.beats(beats)
        strength = self._strength(velocity, accent)
        self._pluck(string, fret, self.time, length, strength, mute, ring, bend, release, vibrato)
        self.time += length
        return self

    def chord(
        self,
        frets: Sequence[tuple[int, int]],
        beats: float,
        *,
        velocity: float | None = None,
        accent: bool = False,
        mute: bool = False,
        ring: bool = False,
        up: bool = False,
        strum: float = 0.007,
    ) -> Score:
        """Strum ``(string, fret)`` pairs (low to high, or high to low with ``up``) and advance ``beats``."""
        length = self.beats(beats)
        strength = self._strength(velocity, accent)
        order = sorted(frets, reverse=up)
        for k, (string, fret) in enumerate(order):
            offset = k * strum
            self._pluck(string, fret, self.time + offset, length - offset, strength, mute, ring, 0.0, False, 0.0)
        self.time += length
        return self

    def power(self, string: int, fret: int, beats: float, *, octave: bool = True, **options: object) -> Score:
        """A power chord rooted on ``string`` at ``fret``: root, fifth and (if it fits) the octave."""
        tuning = self.guitar.tuning
        shape = [(string, fret)]
        for above, interval in ((1, 7), (2, 12))[: 2 if octave else 1]:
            target = string + above
            if target < len(tuning):
                shape.append((target, fret + interval - (tuning[target] - tuning[string])))
        return self.chord(shape, beats, **options)  # type: ignore[arg-type]

    def rest(self, beats: float, damp: bool = True) -> Score:
        """Advance ``beats`` (only the noise floor sounds if everything is damped)."""
        if damp:
            for string in list(self._sounding):
                self._damp(string, self.time)
        self.time += self.beats(beats)
        return self

    def _strength(self, velocity: float | None, accent: bool) -> float:
        strength = self.velocity if velocity is None else velocity
        return min(1.0, strength * 1.25) if accent else strength

    # --- output ---
    def render(self, sample_rate: int, seconds: float | None = None) -> np.ndarray:
        """The DI signal (volts) of everything played, ``seconds`` long (default: up to the cursor)."""
        return render(self.plucks, self.time if seconds is None else seconds, sample_rate, self.rng, self.guitar)
