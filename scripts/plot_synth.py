"""Figures of the virtual SD-1 for the README: a sine through it, and a riff's spectrum before and after.

Usage: .venv/bin/python scripts/plot_synth.py [OUTDIR]   (default docs/img)
Writes synth_sine.png and synth_spectrum.png.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy import signal

from sd1job.synth import capture, pedal

RATE = 44100


def plot_sine(path: Path) -> None:
    """Input and output of a 200 Hz, 100 mV sine at three Drive settings, SD-1 and symmetric diodes."""
    t = np.arange(RATE // 2) / RATE
    x = 0.1 * np.sin(2 * np.pi * 200 * t)
    view = slice(RATE // 4, RATE // 4 + int(0.01 * RATE))
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(t[view] * 1e3, x[view], "k--", label="input (V)")
    for drive in (0.0, 0.5, 1.0):
        knobs = pedal.Knobs(drive=drive)
        y = pedal.VirtualSD1(knobs).clipping_stage(x)
        ax.plot(t[view] * 1e3, y[view], label=f"SD-1 clipping stage, drive {drive:g}")
    ts = pedal.VirtualSD1(circuit=pedal.TUBE_SCREAMER_CLIPPING).clipping_stage(x)
    ax.plot(t[view] * 1e3, ts[view], ":", label="symmetric (TS-style) diodes, drive 0.5")
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("volts")
    ax.set_title("Virtual SD-1: asymmetric clipping of a 200 Hz sine (before tone and level)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_spectrum(path: Path, riff: str = "battery") -> None:
    """Long-term spectrum of a demo riff, dry and through the pedal at noon (each normalised)."""
    dry = capture.riff_dry(riff, 8.0, RATE, seed=25)
    wet = pedal.VirtualSD1().process(dry)
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, x in (("dry (guitar DI)", dry), ("wet (virtual SD-1, noon)", wet)):
        freqs, power = signal.welch(x, RATE, nperseg=8192)
        ax.semilogx(freqs[1:], 10 * np.log10(power[1:] / power.max()), label=name)
    ax.set_xlim(30, 20000)
    ax.set_ylim(-100, 5)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("power (dB, relative)")
    ax.set_title(f"Demo riff '{riff}': spectrum before and after the pedal")
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img")
    out.mkdir(parents=True, exist_ok=True)
    plot_sine(out / "synth_sine.png")
    plot_spectrum(out / "synth_spectrum.png")
    print(f"wrote {out / 'synth_sine.png'} and {out / 'synth_spectrum.png'}")


if __name__ == "__main__":
    main()
