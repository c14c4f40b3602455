"""A circuit-informed virtual Boss SD-1 Super OverDrive.

Signal chain (component values from public schematics; uncertain ones are ``Circuit`` fields):

1. input buffer coupling, a one-pole high-pass near 7 Hz;
2. op-amp input coupling, a one-pole high-pass near 88 Hz (18 nF into 100 k; one source);
3. the clipping amplifier, a non-inverting op-amp. With an ideal op-amp the inverting input
   follows the input ``x``, so the current in the gain leg (4.7 k in series with 47 nF) is a
   LINEAR filter of ``x``: ``i_g = x * sC / (1 + sRC)``. That current flows through the feedback
   element, ``Rf`` (33 k plus the Drive pot) in parallel with ``Cf`` and the diodes, whose voltage
   ``v`` obeys ``Cf dv/dt = i_g - v / Rf - i_D(v)``; the output is ``y = x + v``. The SD-1 has
   two diodes in series one way and one the other (asymmetric clipping, even harmonics); the
   Tube Screamer has one each way (``TUBE_SCREAMER_CLIPPING``).
4. the tone stage: 10 k into 18 nF, then the op-amp shelving stage with the 22 k Tone pot (the
   second-order analog transfer function published by AudioTK's SD1ToneCoefficients);
5. the level stage: 1 uF into 4.7 k and the 10 k (audio taper) Level pot.

The diode equation is solved at 8x the sample rate (``scipy.signal.resample_poly``; -64 dB of
aliasing for a 2.8 kHz sine at noon drive) by one of two solvers:

- ``fast`` (the default): the same trapezoidal rule, solved exactly by a table instead of
  Newton. The rule's implicit equation is ``k v_n + G(v_n) = i_n + s_{n-1}`` with ``k = 2 Cf / T``,
  ``G(v) = v / Rf + i_D(v)`` and a state ``s_n = 2 k v_n - s_{n-1}``; ``k v + G(v)`` is monotone,
  so its inverse ``H`` is tabulated once per Drive setting and rate (a fine uniform table for
  the usual range, a wide one for any current). The per-sample recursion is compiled with numba
  (about 13 ns a sample); ESR against the reference is below 1e-10. (Putting ``Cf`` back as a one-pole low-pass
  after a static inverse is not enough: measured ESR 0.015 to 0.044 at full drive on guitar-like
  material, where ``Rf Cf`` sets a 3.4 kHz corner and slews the transitions between the diodes.)
- ``reference``: the trapezoidal rule with one Newton-Raphson solve per sample (warm start,
  steps clamped to 0.1 V), in pure Python: slow, and the oracle the tests compare against.

Long signals are processed in chunks with margins: the clipping stage forgets its state within
a few time constants ``Rf Cf`` (under 50 us at the default values), so chunks overlapping by at
least 60 time constants give the same output as one pass to rounding, with bounded memory.

Units: the input is in volts at the pedal's input jack (1.0 = 1 V); the output is in volts at
its output jack.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from typing import Literal

import numba
import numpy as np
from scipy import signal

Solver = Literal["fast", "reference"]
SOLVERS: tuple[str, ...] = ("fast", "reference")
OVERSAMPLE = 8
CHUNK = 1 << 15  # base-rate samples per chunk of the clipping stage
MARGIN = 256  # base-rate samples of overlap on each side of a chunk
TABLE_POINTS = 16384  # cells of each tabulated inverse
Q_SPAN = 64.0  # the fine table covers |q| <= Q_SPAN * q0


@dataclass(frozen=True)
class Knobs:
    """The three knobs, each in [0, 1]; 0.5 is noon."""

    drive: float = 0.5
    tone: float = 0.5
    level: float = 0.5

    def __post_init__(self) -> None:
        for name in ("drive", "tone", "level"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


@dataclass(frozen=True)
class Circuit:
    """Component values of the virtual pedal (SI units). Defaults: the SD-1 as documented."""

    input_buffer_hz: float = 7.0
    input_coupling_hz: float = 88.0  # 18 nF into 100 k (one source; 0 removes it)
    gain_leg_r: float = 4.7e3
    gain_leg_c: float = 47e-9
    feedback_r: float = 37.7e3  # Rf at Drive 0 (33 k plus the pot's end) as in an open-source model
    drive_pot: float = 1e6
    drive_taper: float = 5.0  # Rf = feedback_r + drive_pot * (e^(taper d) - 1) / (e^taper - 1)
    feedback_c: float = 47e-12  # one source shows no capacitor: 0 removes it
    diode_is: float = 2.52e-9
    diode_n: float = 1.75
    thermal_voltage: float = 25.85e-3
    diodes_positive: int = 2  # diodes in series conducting while v > 0 (output above input)
    diodes_negative: int = 1  # diodes in series conducting while v < 0
    tone_r1: float = 10e3
    tone_r2: float = 22e3  # the Tone pot
    tone_r3: float = 470.0
    tone_r4: float = 10e3
    tone_c1: float = 18e-9
    tone_c2: float = 27e-9
    tone_c3: float = 10e-9
    level_c: float = 1e-6
    level_r: float = 4.7e3
    level_pot: float = 10e3
    level_taper: float = 3.47  # audio taper: the wiper passes 15 % at noon

    def __post_init__(self) -> None:
        if self.diodes_positive < 1 or self.diodes_negative < 1:
            raise ValueError("each clipping direction needs at least one diode")
        for name, value in asdict(self).items():
            if value < 0:
                raise ValueError(f"circuit value {name} must not be negative, got {value}")


SD1 = Circuit()
TUBE_SCREAMER_CLIPPING = replace(SD1, diodes_positive=1, diodes_negative=1)


def feedback_resistance(drive: float, circuit: Circuit = SD1) -> float:
    """The clipping amplifier's feedback resistance Rf (ohms) at a Drive setting in [0, 1]."""
    taper = circuit.drive_taper
    fraction = math.expm1(taper * drive) / math.expm1(taper) if taper else drive
    return circuit.feedback_r + circuit.drive_pot * fraction


def high_frequency_gain(drive: float, circuit: Circuit = SD1) -> float:
    """Small-signal gain of the clipping amplifier well above the gain leg's corner: 1 + Rf / R."""
    return 1.0 + feedback_resistance(drive, circuit) / circuit.gain_leg_r


def level_gain(level: float, circuit: Circuit = SD1) -> float:
    """Pass-band gain of the level stage: series resistor and audio-taper pot as a divider."""
    taper = circuit.level_taper
    fraction = math.expm1(taper * level) / math.expm1(taper) if taper else level
    return circuit.level_pot * fraction / (circuit.level_r + circuit.level_pot)


def diode_current(v: np.ndarray | float, circuit: Circuit = SD1) -> np.ndarray | float:
    """Current (A) through the anti-parallel diode strings at voltage ``v`` (V).

    ``m`` diodes in series share the voltage: their exponent is ``v / (m n Vt)``; Is is not scaled.
    """
    nvt = circuit.diode_n * circuit.thermal_voltage
    pos = circuit.diode_is * np.expm1(np.asarray(v) / (circuit.diodes_positive * nvt))
    neg = circuit.diode_is * np.expm1(-np.asarray(v) / (circuit.diodes_negative * nvt))
    return pos - neg


def feedback_current(v: np.ndarray, rf: float, circuit: Circuit = SD1) -> np.ndarray:
    """Static current of the feedback element at voltage ``v``: ``v / Rf + i_D(v)`` (Cf ignored)."""
    return np.asarray(v) / rf + diode_current(v, circuit)


# --- linear stages (analog prototypes, bilinear transform) -------------------------------------


def _one_pole_highpass(corner_hz: float) -> tuple[np.ndarray, np.ndarray]:
    tau = 1.0 / (2 * math.pi * corner_hz)
    return np.array([tau, 0.0]), np.array([tau, 1.0])


def tone_analog(tone: float, circuit: Circuit = SD1) -> tuple[np.ndarray, np.ndarray]:
    """The tone stage's analog transfer function (b, a) in s, highest power first."""
    r1, r2, r3, r4 = circuit.tone_r1, circuit.tone_r2, circuit.tone_r3, circuit.tone_r4
    c1, c2, c3 = circuit.tone_c1, circuit.tone_c2, circuit.tone_c3
    k = tone * (1 - tone) * r2 * c2
    b = [c3 * r4 * (r3 * c2 + k), c2 * r3 + r4 * c3 + k + tone * c2 * r4, 1.0]
    a = [c1 * r1 * (r3 * c2 + k), c2 * r3 + r1 * c1 + k + (1 - tone) * c2 * r1, 1.0]
    return np.array(b), np.array(a)


def tone_response_db(tone: float, freqs_hz: np.ndarray, circuit: Circuit = SD1) -> np.ndarray:
    """The tone stage's analog magnitude response (dB) at the given frequencies."""
    b, a = tone_analog(tone, circuit)
    s = 2j * np.pi * np.asarray(freqs_hz, dtype=float)
    return 20 * np.log10(np.abs(np.polyval(b, s) / np.polyval(a, s)))


def _digital(analog: tuple[np.ndarray, np.ndarray], rate: float) -> tuple[np.ndarray, np.ndarray]:
    b, a = signal.bilinear(analog[0], analog[1], fs=rate)
    return b / a[0], a / a[0]


def _cascade(*filters: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    b, a = np.array([1.0]), np.array([1.0])
    for fb, fa in filters:
        b, a = np.convolve(b, fb), np.convolve(a, fa)
    return b, a


# --- the clipping stage -------------------------------------------------------------------------


def _invert(targets: np.ndarray, rf: float, k: float, circuit: Circuit) -> np.ndarray:
    """Solve ``k v + v / Rf + i_D(v) = target`` for every target by vectorised bisection."""
    low = np.full_like(targets, -20.0)
    high = np.full_like(targets, 20.0)
    for _ in range(80):  # 40 V / 2**80 is far below float resolution near 1 V
        mid = 0.5 * (low + high)
        above = k * mid + feedback_current(mid, rf, circuit) > targets
        high = np.where(above, mid, high)
        low = np.where(above, low, mid)
    return 0.5 * (low + high)


@dataclass(frozen=True)
class InverseTable:
    """The inverse ``v = H(q)`` of the monotone ``q = k v + v / Rf + i_D(v)``, tabulated twice.

    ``k`` (siemens) is the trapezoidal rule's capacitor term ``2 Cf / T``; with ``k = 0`` this is
    the static inverse of the feedback law. A fine table uniform in ``q`` covers
    ``|q| <= Q_SPAN * q0`` (``q0`` is about where the diodes take over; signals up to several
    volts stay inside it) and is read with one multiply; a wide table uniform in
    ``u = q / (|q| + q0)`` covers every ``q`` beyond it.
    """

    q0: float
    q_max: float
    values: np.ndarray  # v on the uniform grid over [-q_max, q_max]
    slopes: np.ndarray  # values[j + 1] - values[j], with a trailing 0
    wide_values: np.ndarray  # v on the grid uniform in u over [-1, 1]
    wide_slopes: np.ndarray

    @classmethod
    def build(cls, rf: float, k: float = 0.0, circuit: Circuit = SD1) -> InverseTable:
        """Tabulate the inverse for one feedback resistance and capacitor term, to float precision."""
        q0 = 0.5 * (k + 1.0 / rf)
        q_max = Q_SPAN * q0
        values = _invert(np.linspace(-q_max, q_max, TABLE_POINTS + 1), rf, k, circuit)
        u = np.linspace(-1.0, 1.0, TABLE_POINTS + 1)
        wide = _invert(q0 * u / np.maximum(1.0 - np.abs(u), 1.0 / TABLE_POINTS**2), rf, k, circuit)
        values[TABLE_POINTS // 2] = wide[TABLE_POINTS // 2] = 0.0
        return cls(q0, q_max, values, np.append(np.diff(values), 0.0), wide, np.append(np.diff(wide), 0.0))


@numba.njit(cache=True, nogil=True)
def _trapezoid_by_table(current, k2, q0, q_max, values, slopes, wide_values, wide_slopes):  # type: ignore[no-untyped-def]
    """``v_n = H(i_n + s_{n-1})``, ``s_n = k2 v_n - s_{n-1}``: the trapezoidal rule via the tables."""
    cells = len(values) - 1
    scale = cells / (2.0 * q_max)
    wide_cells = len(wide_values) - 1
    wide_half = wide_cells / 2.0
    out = np.empty(len(current))
    s = 0.0
    for n in range(len(current)):
        q = current[n] + s
        position = (q + q_max) * scale
        if 0.0 <= position < cells:
            j = int(position)
            v = values[j] + (position - j) * slopes[j]
        else:
            position = (q / (abs(q) + q0) + 1.0) * wide_half
            j = min(int(position), wide_cells - 1)
            v = wide_values[j] + (position - j) * wide_slopes[j]
        s = k2 * v - s
        out[n] = v
    return out


def solve_fast(current: np.ndarray, table: InverseTable, k: float) -> np.ndarray:
    """Diode voltage for the gain-leg current by the trapezoidal rule, solved through ``table``.

    ``table`` must be built with the same ``k = 2 Cf / T``; ``k = 0`` (no capacitor) gives the
    static inverse sample by sample. Starts from ``v = 0`` like the reference.
    """
    current = np.ascontiguousarray(current, dtype=np.float64)
    t = table
    return _trapezoid_by_table(current, 2.0 * k, t.q0, t.q_max, t.values, t.slopes, t.wide_values, t.wide_slopes)


def solve_reference(current: np.ndarray, rf: float, cf: float, rate: float, circuit: Circuit = SD1) -> np.ndarray:
    """Diode voltage by the trapezoidal rule and Newton-Raphson per sample (slow; the oracle).

    Solves ``Cf dv/dt = i - v / Rf - i_D(v)`` from ``v = 0``; with ``Cf = 0`` each sample solves
    the algebraic law ``v / Rf + i_D(v) = i``. Newton iterates to 1e-12 V, steps clamped to 0.1 V.
    """
    nvt = circuit.diode_n * circuit.thermal_voltage
    ap, an = 1.0 / (circuit.diodes_positive * nvt), 1.0 / (circuit.diodes_negative * nvt)
    isat, g = circuit.diode_is, 1.0 / rf
    k = 2.0 * cf * rate  # trapezoidal: (2 Cf / T) (v_n - v_{n-1}) = f_n + f_{n-1}
    exp = math.exp
    out = np.empty(len(current))
    v = 0.0
    rest = 0.0  # f_{n-1} = i_{n-1} - v_{n-1}/Rf - i_D(v_{n-1})
    for n, i in enumerate(np.asarray(current, dtype=np.float64).tolist()):
        target = i + rest + k * v if k else i
        x = v
        for _ in range(100):
            ep, en = exp(ap * x), exp(-an * x)
            f = k * x + g * x + isat * (ep - en) - target
            step = f / (k + g + isat * (ap * ep + an * en))
            step = 0.1 if step > 0.1 else -0.1 if step < -0.1 else step
            x -= step
            if -1e-12 < step < 1e-12:
                break
        rest = i - g * x - isat * (exp(ap * x) - exp(-an * x))
        v = x
        out[n] = x
    return out


# --- the pedal ----------------------------------------------------------------------------------


class VirtualSD1:
    """The virtual pedal at fixed knobs and sample rate: ``process(volts_in) -> volts_out``."""

    def __init__(
        self,
        knobs: Knobs | None = None,
        circuit: Circuit = SD1,
        sample_rate: int = 44100,
        solver: Solver = "fast",
        oversample: int = OVERSAMPLE,
    ) -> None:
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
        if sample_rate <= 0 or oversample < 1:
            raise ValueError("sample_rate and oversample must be positive")
        self.knobs = knobs or Knobs()
        self.circuit = circuit
        self.sample_rate = int(sample_rate)
        self.solver = solver
        self.oversample = int(oversample)
        self.rf = feedback_resistance(self.knobs.drive, circuit)
        rate = float(self.sample_rate)
        stages = [_one_pole_highpass(circuit.input_buffer_hz)]
        if circuit.input_coupling_hz > 0:
            stages.append(_one_pole_highpass(circuit.input_coupling_hz))
        self._input = _digital(_cascade(*stages), rate)
        gain_leg = (np.array([circuit.gain_leg_c, 0.0]), np.array([circuit.gain_leg_r * circuit.gain_leg_c, 1.0]))
        self._gain_leg = _digital(gain_leg, rate)
        level_hz = 1.0 / (2 * math.pi * circuit.level_c * (circuit.level_r + circuit.level_pot))
        post = _cascade(tone_analog(self.knobs.tone, circuit), _one_pole_highpass(level_hz))
        b, a = _digital(post, rate)
        self._output = (b * level_gain(self.knobs.level, circuit), a)

    @property
    def high_rate(self) -> int:
        """The rate the clipping stage runs at."""
        return self.sample_rate * self.oversample

    @property
    def capacitor_term(self) -> float:
        """The trapezoidal rule's ``k = 2 Cf / T`` at the oversampled rate (siemens)."""
        return 2.0 * self.circuit.feedback_c * self.high_rate

    @cached_property
    def table(self) -> InverseTable:
        """The tabulated inverse used by the fast solver at this Drive setting and rate."""
        return InverseTable.build(self.rf, self.capacitor_term, self.circuit)

    @cached_property
    def margin(self) -> int:
        """Base-rate samples of chunk overlap: 60 time constants Rf Cf, at least MARGIN."""
        tau = self.rf * self.circuit.feedback_c
        return max(MARGIN, math.ceil(60 * tau * self.sample_rate))

    def gain_leg_current(self, x: np.ndarray) -> np.ndarray:
        """The op-amp input (after the input couplings) and the gain-leg current it drives."""
        xc = signal.lfilter(*self._input, np.asarray(x, dtype=np.float64))
        return xc, signal.lfilter(*self._gain_leg, xc)

    @cached_property
    def _fir(self) -> np.ndarray:
        """resample_poly's own default anti-imaging/anti-aliasing filter, designed once."""
        return signal.firwin(2 * 10 * self.oversample + 1, 1.0 / self.oversample, window=("kaiser", 5.0))

    def _clip_chunk(self, current: np.ndarray) -> np.ndarray:
        up = self.oversample
        i_up = signal.resample_poly(current, up, 1, window=self._fir) if up > 1 else current
        if self.solver == "fast":
            v_up = solve_fast(i_up, self.table, self.capacitor_term)
        else:
            v_up = solve_reference(i_up, self.rf, self.circuit.feedback_c, self.high_rate, self.circuit)
        return signal.resample_poly(v_up, 1, up, window=self._fir) if up > 1 else v_up

    def diode_voltage(self, current: np.ndarray) -> np.ndarray:
        """The clipping stage's feedback voltage ``v`` for a base-rate gain-leg current."""
        total, margin = len(current), self.margin
        if total <= CHUNK + 2 * margin:
            return self._clip_chunk(current)
        out = np.empty(total)
        for start in range(0, total, CHUNK):
            stop = min(start + CHUNK, total)
            lo, hi = max(0, start - margin), min(total, stop + margin)
            out[start:stop] = self._clip_chunk(current[lo:hi])[start - lo : stop - lo]
        return out

    def clipping_stage(self, x: np.ndarray) -> np.ndarray:
        """Output of the clipping amplifier, ``y = x + v`` (volts), before tone and level."""
        xc, current = self.gain_leg_current(x)
        return xc + self.diode_voltage(current)

    def process(self, x: np.ndarray) -> np.ndarray:
        """Run a signal (volts at the input jack) through the pedal; volts at the output jack."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 1:
            raise ValueError("the pedal takes a mono 1-D signal")
        if len(x) == 0:
            return x.copy()
        return signal.lfilter(*self._output, self.clipping_stage(x))


def process(
    x: np.ndarray,
    sample_rate: int,
    knobs: Knobs | None = None,
    circuit: Circuit = SD1,
    solver: Solver = "fast",
) -> np.ndarray:
    """Convenience: one signal through a freshly built pedal."""
    return VirtualSD1(knobs, circuit, sample_rate, solver).process(x)
