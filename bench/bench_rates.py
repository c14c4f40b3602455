"""Measure a stateful model trained at 44.1 kHz run at 48, 88.2 and 96 kHz: delay line, resampling, naive.

On ONE core with one TensorFlow thread. Steps:

1. The demo data at 44.1 kHz (``write_demo_recordings``: TRAIN_SECONDS of synthetic guitar through
   the virtual SD-1 at noon), the data stage, and one stateful unit (LSTM(UNITS)) trained by the
   train stage for at most TRAIN_BUDGET seconds (kept in bench/results/rates-store: a rerun
   reuses the trained unit).
2. For each rate: every riff rendered by the synthetic guitar AT THAT RATE (same score, same seed)
   and run through the virtual pedal AT THAT RATE (times the demo set's wet gain), then through the
   model by each method (``sd1job.infer.rates``). ESR and pre-emphasised ESR (eval's 0.85) over
   all riffs together.
3. Aliasing: a stepped sine sweep (TONES log-spaced tones from 100 Hz to 8 kHz, 0.25 s each, at
   SWEEP_AMPLITUDE volts) through the model; for each tone the steady middle 0.125 s is
   Blackman-Harris windowed and its spectrum split into harmonic bins (within 6 bins of a multiple of the
   tone's frequency) and the rest, below 20 kHz; the aliasing figure is the non-harmonic energy
   over the total, in dB, summed over the tones, and for the worst tone. The virtual pedal (8x
   oversampled) is measured the same way as a reference.

Writes bench/results/rates.json and prints the tables.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

CORE = max(os.sched_getaffinity(0))
os.sched_setaffinity(0, {CORE})
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["TF_NUM_INTRAOP_THREADS"] = "1"
os.environ["TF_NUM_INTEROP_THREADS"] = "1"

import numpy as np  # noqa: E402
from scipy.signal import windows  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS_DIR, print_table, save_results  # noqa: E402

TRAINING_RATE = 44100
RATES = (44100, 48000, 88200, 96000)
METHODS = ("delay", "resample", "naive")
UNITS = 16
TRAIN_SECONDS = 60.0
RIFF_SECONDS = 4.0
TRAIN_BUDGET = 180.0
SEED = 25
TONES = 16
TONE_SECONDS = 0.25
SWEEP_AMPLITUDE = 0.2
PRE_EMPHASIS = 0.85
STORE = RESULTS_DIR / "rates-store"


def stepped_sweep(rate: int) -> tuple[np.ndarray, np.ndarray]:
    """The stepped sine sweep at ``rate`` and its tone frequencies (each tone starts at phase 0)."""
    freqs = np.geomspace(100.0, 8000.0, TONES)
    length = int(TONE_SECONDS * rate)
    t = np.arange(length) / rate
    tones = [SWEEP_AMPLITUDE * np.sin(2 * np.pi * f * t) * np.hanning(length) ** 0.1 for f in freqs]
    return np.concatenate(tones).astype(np.float32), freqs


def aliasing_db(output: np.ndarray, freqs: np.ndarray, rate: int) -> tuple[float, float]:
    """Non-harmonic over total energy below 20 kHz (dB) of the stepped sweep's output: all tones, and the worst.

    Each tone's steady middle half is windowed by a 4-term Blackman-Harris window (sidelobes
    below -92 dB: a Hann window's leakage alone reads -40 dB); bins within 6 of a harmonic count
    as harmonic.
    """
    length = int(TONE_SECONDS * rate)
    steady = length // 2
    window = windows.blackmanharris(steady)
    bins = np.fft.rfftfreq(steady, 1.0 / rate)
    spacing = rate / steady
    audible = (bins >= 20.0) & (bins <= 20000.0)
    off, total = np.zeros(len(freqs)), np.zeros(len(freqs))
    for index, f in enumerate(freqs):
        start = index * length + length // 4
        segment = output[start : start + steady]
        power = np.abs(np.fft.rfft((segment - np.mean(segment)) * window)) ** 2
        harmonic_number = np.round(bins / f)
        harmonic = (harmonic_number >= 1) & (np.abs(bins - harmonic_number * f) <= 6 * spacing)
        off[index] = np.sum(power[audible & ~harmonic])
        total[index] = np.sum(power[audible])
    return float(10 * np.log10(off.sum() / total.sum())), float(10 * np.log10(np.max(off / total)))


def train_model() -> tuple[object, dict, float]:
    """The trained unit's weights (training it first if the store lacks it), its history, the demo wet gain."""
    from sd1job.config import config_from_mapping
    from sd1job.infer.weights import load_weights
    from sd1job.layout import SYNTH_INFO, RunLayout
    from sd1job.stages.data import build_datasets
    from sd1job.stages.train import train_unit
    from sd1job.store import open_store
    from sd1job.synth.capture import write_demo_recordings
    from sd1job.units import Unit

    config = config_from_mapping(
        {
            "store": str(STORE),
            "run_id": "rates",
            "recordings": {"sample_rate": TRAINING_RATE},
            "model": {"kind": "stateful"},
            "train": {"lstm_units": UNITS, "epochs": 1000, "patience": 1000, "max_train_seconds": TRAIN_BUDGET,
                      "learning_rate": 0.005, "threads": 0, "seed": SEED},
        }
    )  # fmt: skip
    store = open_store(config.store)
    write_demo_recordings(store, config, seconds=TRAIN_SECONDS, riff_seconds=RIFF_SECONDS, seed=SEED)
    build_datasets(config, store)
    unit = Unit("stateful", None, SEED)
    history = train_unit(config, store, unit)
    layout = RunLayout(config.run_id)
    weights = load_weights(store.read_bytes(layout.model(unit)), "model", None)
    return weights, history, float(store.read_json(SYNTH_INFO)["levels"]["wet_gain"])


def riffs_at(rate: int, wet_gain: float) -> tuple[np.ndarray, np.ndarray]:
    """Every demo riff's dry and wet at ``rate``, concatenated (the guitar and the pedal both render at that rate)."""
    from sd1job.config import SEED_RIFFS
    from sd1job.synth.capture import _fit_dry, riff_dry
    from sd1job.synth.pedal import Knobs, VirtualSD1

    pedal = VirtualSD1(Knobs(), sample_rate=rate)
    dry = [_fit_dry(name, riff_dry(name, RIFF_SECONDS, rate, SEED)) for name in SEED_RIFFS]
    wet = [pedal.process(d) * wet_gain for d in dry]
    return np.concatenate(dry).astype(np.float32), np.concatenate(wet).astype(np.float32)


def main() -> dict:
    from sd1job import scores
    from sd1job.infer.rates import plan, predictor_for, process
    from sd1job.infer.stateful import StreamingPredictor
    from sd1job.synth.pedal import Knobs, VirtualSD1

    started = time.perf_counter()
    weights, history, wet_gain = train_model()
    train_seconds = time.perf_counter() - started
    base = StreamingPredictor(weights)
    base.warm_up()
    rows, alias_rows = [], []
    for rate in RATES:
        dry, wet = riffs_at(rate, wet_gain)
        sweep, freqs = stepped_sweep(rate)
        alias: dict[str, float] = {"rate": rate}
        pedal_out = VirtualSD1(Knobs(), sample_rate=rate).process(sweep)
        alias["pedal_db"], alias["pedal_worst_db"] = aliasing_db(pedal_out, freqs, rate)
        for method in METHODS:  # at the training rate the three are the same model: scored once
            chosen = plan("stateful", method, TRAINING_RATE, rate)
            predictor = predictor_for(chosen, base)
            predictor.warm_up()
            alias[f"{method}_db"], alias[f"{method}_worst_db"] = aliasing_db(
                process(predictor, sweep, chosen), freqs, rate
            )
            if rate == TRAINING_RATE and method != METHODS[0]:
                continue
            tick = time.perf_counter()
            out = process(predictor, dry, chosen)
            seconds = time.perf_counter() - tick
            rows.append(
                {
                    "rate": rate,
                    "method": method if rate != TRAINING_RATE else "trained rate",
                    "esr": scores.esr(wet, out),
                    "esr_pre": scores.esr_pre(wet, out, PRE_EMPHASIS),
                    "realtime_x": len(dry) / rate / seconds,
                }
            )
        alias_rows.append(alias)
    results = {
        "units": UNITS,
        "core": CORE,
        "training": {
            "rate": TRAINING_RATE,
            "audio_seconds": TRAIN_SECONDS,
            "budget_seconds": TRAIN_BUDGET,
            "epochs_run": history["epochs_run"],
            "best_val_loss": history["best_val_loss"],
            "train_seconds": history["total_seconds"],
        },
        "riff_seconds_per_rate": RIFF_SECONDS * 6,
        "rows": rows,
        "aliasing": alias_rows,
        "wall_seconds": time.perf_counter() - started,
        "setup_seconds": train_seconds,
    }
    save_results("rates", results)
    print(
        f"stateful LSTM({UNITS}) trained at {TRAINING_RATE} Hz for {history['total_seconds']:.0f} s "
        f"({history['epochs_run']} epochs, best val ESR {history['best_val_loss']:.4f}), one core (cpu {CORE})"
    )
    print_table(rows)
    print("aliasing of a stepped sine sweep (non-harmonic / total energy below 20 kHz, dB)")
    print_table(alias_rows)
    return results


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("sd1job").setLevel(logging.INFO)
    main()
