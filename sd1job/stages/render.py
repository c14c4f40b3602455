"""The ``render`` command: a player's own DI recording through a trained unit, at the recording's rate.

``python -m sd1job render --config FILE --unit stateful-s25 --input DI.wav --output OUT.wav
[--method delay|resample|naive] [--subtype FLOAT|PCM_24|PCM_16]`` reads a local mono WAV of any
PCM or float subtype at any rate (checked like the data stage's recordings: one line naming the
file if it is unusable), runs it through the unit's model (read from the store, as eval reads it)
and writes the output at the input's rate and length. The default output is 32-bit float, so a
model's overshoot past full scale is kept; a PCM subtype clips it, with a warning.

At the training rate (``recordings.sample_rate``) the output is eval's prediction. At another
rate, ``--method`` chooses how the unit runs (``sd1job.infer.rates``): ``delay`` (default; a
stateful unit's recurrence reads the state ``rate / training rate`` samples back; below the
training rate, and for windowed units, it resamples instead and says so), ``resample`` (to the
training rate and back) or ``naive`` (as if the rates matched, for comparison). Progress is
logged on long files; the real-time factor at the end.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sd1job.audio import AudioError, Recording, decode_wav, encode_wav
from sd1job.config import Config
from sd1job.errors import UserError
from sd1job.infer.rates import DEFAULT_METHOD, METHODS, RatePlan, plan, predictor_for, process
from sd1job.layout import RunLayout
from sd1job.stages.options import add_unit_options, chosen_units
from sd1job.store import MissingObjectError, Store, open_store
from sd1job.units import Unit

log = logging.getLogger(__name__)
OUTPUT_SUBTYPES = ("FLOAT", "PCM_24", "PCM_16")
PROGRESS_SECONDS = 30.0  # inputs longer than this log their progress
PROGRESS_STEP = 0.1


class RenderError(UserError, RuntimeError):
    """A render cannot run: an untrained unit, an unwritable output, a model that outputs NaN."""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m sd1job render``."""
    add_unit_options(parser, required=True)
    parser.add_argument("--input", metavar="WAV", required=True, help="the dry (DI) recording: mono WAV, any rate")
    parser.add_argument("--output", metavar="WAV", required=True, help="where to write the output (same rate)")
    parser.add_argument(
        "--method",
        choices=METHODS,
        default=DEFAULT_METHOD,
        help="how a unit runs at a rate other than its training rate (default delay; see the README)",
    )
    parser.add_argument(
        "--subtype", choices=OUTPUT_SUBTYPES, default="FLOAT", help="output sample format (default FLOAT: no clipping)"
    )


def run(args: argparse.Namespace, config: Config) -> int:
    """CLI entry: render the input through the one chosen unit."""
    units = chosen_units(args, config)
    if len(units) != 1:
        raise RenderError(f"render runs one unit, but the options chose {len(units)}: name one with --unit")
    dry = read_input(Path(args.input))
    output = Path(args.output)
    if not output.parent.is_dir():
        raise RenderError(f"{output}: folder {output.parent} does not exist")
    rendered = render_unit(open_store(config.store), config, units[0], dry, args.method)
    write_output(output, rendered, dry.sample_rate, args.subtype)
    return 0


def read_input(path: Path) -> Recording:
    """The input recording, checked like the data stage's (any rate); AudioError naming the file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise AudioError(f"{path}: file not found") from None
    except OSError as error:
        raise AudioError(f"{path}: cannot read ({error.strerror or error})") from None
    return decode_wav(data, str(path))


def load_unit_predictor(store: Store, config: Config, unit: Unit) -> Any:
    """The unit's fast predictor, from its model in the store (RenderError if it is not trained)."""
    from sd1job.infer.predictor import make_predictor  # TensorFlow: only once there is a model to read

    layout = RunLayout(config.run_id)
    key = layout.model(unit)
    try:
        model_data = store.read_bytes(key)
    except MissingObjectError:
        raise RenderError(f"{unit.name}: not trained (no {store.url(key)}); run the train stage first") from None
    return make_predictor(model_data, store.url(key), unit, config.eval.batch_size)


def render_unit(store: Store, config: Config, unit: Unit, dry: Recording, method: str) -> np.ndarray:
    """``dry`` through the unit at ``dry``'s rate by ``method`` (float32, same length); logs the real-time factor."""
    chosen = plan(unit.kind, method, config.recordings.sample_rate, dry.sample_rate)
    if chosen.note:
        log.warning("render %s: %s", unit.name, chosen.note)
    predictor = predictor_for(chosen, load_unit_predictor(store, config, unit))
    predictor.warm_up()
    started = time.perf_counter()
    output = process(predictor, dry.samples, chosen, progress=_progress_logger(unit, dry))
    seconds = time.perf_counter() - started
    if not np.all(np.isfinite(output)):
        raise RenderError(f"{unit.name}: the model outputs NaN or Inf on {dry.source}")
    log.info(
        "render %s: %s, %.1f s at %d Hz (%s), %.1fx real time",
        unit.name,
        dry.source,
        dry.seconds,
        dry.sample_rate,
        describe(chosen),
        dry.seconds / seconds if seconds > 0 else float("inf"),
    )
    return output


def describe(chosen: RatePlan) -> str:
    """How the unit ran, in words for the log."""
    if chosen.run_rate == chosen.training_rate:
        return "the training rate"
    if chosen.method == "delay":
        return f"delay line, M = {chosen.delay_factor:.4g}"
    if chosen.method == "resample":
        return f"resampled to {chosen.training_rate} Hz and back"
    return f"naive: as if at {chosen.training_rate} Hz"


def _progress_logger(unit: Unit, dry: Recording) -> Callable[[float], None] | None:
    """A progress callback logging each further 10 % done, for inputs longer than PROGRESS_SECONDS (else None)."""
    if dry.seconds <= PROGRESS_SECONDS:
        return None
    next_step = [PROGRESS_STEP]

    def report(fraction: float) -> None:
        if fraction >= next_step[0] - 1e-9:
            log.info("render %s: %3.0f %% done", unit.name, 100 * fraction)
            next_step[0] = (fraction // PROGRESS_STEP + 1) * PROGRESS_STEP

    return report


def write_output(path: Path, output: np.ndarray, sample_rate: int, subtype: str) -> None:
    """Write the output WAV; a PCM subtype clips samples beyond full scale, with a warning."""
    clipped = int(np.count_nonzero(np.abs(output) > 1.0))
    if subtype != "FLOAT" and clipped:
        log.warning(
            "render: %s: %d samples beyond full scale clipped in %s (use FLOAT to keep them)", path, clipped, subtype
        )
        output = np.clip(output, -1.0, 1.0)
    try:
        path.write_bytes(encode_wav(output, sample_rate, subtype))
    except OSError as error:
        raise RenderError(f"{path}: cannot write ({error.strerror or error})") from None
    peak = float(np.max(np.abs(output))) if len(output) else 0.0
    log.info("render: wrote %s (%s, peak %.3f)", path, subtype, peak)
