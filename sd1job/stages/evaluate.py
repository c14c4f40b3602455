"""The ``eval`` stage: score one trained unit on every test riff.

``python -m sd1job eval --config FILE --unit c440-s25`` (or ``--context N [--seed S]``,
``--kind stateful``) predicts every riff in ``recordings.riffs`` whole with the unit's model and
writes under the unit's folder ``models/<unit>/eval/``: ``o_<riff>.wav`` (the output, 24-bit at
the recordings' rate) and, last, ``scores.json`` (one row per riff: ESR, pre-emphasis ESR, MSE,
MAE, STFT distance, the perceptual scores of ``sd1job.perceptual`` (A-weighted ESR, mel distance,
loudness difference), inference time and real-time factor; plus what the report needs of the
unit's training). Without a unit it scores every trained unit of the config not scored yet. A
unit whose model, training history, riffs and eval settings are unchanged since it was scored
is skipped; ``python -m sd1job report`` gathers the scores of every unit.

``--rate R --test-dir DIR [--method delay|resample|naive]`` scores the units on riffs recorded at
another rate R (the same riff names under DIR) instead, running them there as ``render`` does,
into ``models/<unit>/eval-<R>hz/`` (the report still reads the training rate's scores).

Alignment: output sample ``t`` comes from ``dry[..t]`` (the windowed model: ``dry[t-n+1 .. t]``,
zeros before the start; the stateful model: every sample up to t, from a zero state), so the
output has the input's length and lines up with the wet recording.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from sd1job import perceptual, scores
from sd1job.audio import CheckedPair, encode_wav, load_riffs
from sd1job.config import Config, EvalConfig, RecordingsConfig
from sd1job.errors import UserError
from sd1job.hashing import fingerprint, sha256_hex
from sd1job.health import outcome
from sd1job.infer.predictor import make_predictor
from sd1job.infer.rates import DEFAULT_METHOD, METHODS, plan, predictor_for, process
from sd1job.layout import RunLayout, riff_dry_key, riff_wet_key
from sd1job.model import flops_per_sample
from sd1job.stages.options import add_unit_options, chosen_units
from sd1job.store import MissingObjectError, Store, StoreError, open_store
from sd1job.units import Unit

log = logging.getLogger(__name__)

# history.json fields the stage reads (the train stage writes them).
HISTORY_FIELDS = ("epochs_run", "best_epoch", "best_val_loss", "total_seconds", "seconds_per_epoch", "epochs")


class EvalError(UserError, RuntimeError):
    """A unit cannot be scored: not trained, or an unusable model or history file."""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m sd1job eval``: which units (default: every trained unit not yet scored)."""
    add_unit_options(parser, required=False)
    parser.add_argument("--force", action="store_true", help="score again even if the scores are up to date")
    parser.add_argument("--rate", type=int, metavar="HZ", help="score on riffs recorded at this rate (with --test-dir)")
    parser.add_argument("--test-dir", metavar="DIR", help="where the riffs at --rate are (Dry/d_<riff>.wav, Wet/...)")
    parser.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD, help="how units run at --rate (render's)")


@dataclass(frozen=True)
class OtherRate:
    """Scoring at a rate other than the training rate: the riffs' rate, their folder, the method (``infer.rates``)."""

    sample_rate: int
    test_dir: str
    method: str


def other_rate_from(args: argparse.Namespace, config: Config) -> OtherRate | None:
    """The ``--rate``/``--test-dir``/``--method`` options (None: score at the training rate, as always)."""
    if args.rate is None or args.rate == config.recordings.sample_rate:
        return None
    if args.rate <= 0:
        raise EvalError(f"--rate {args.rate}: must be a positive number of Hz")
    if not args.test_dir:
        raise EvalError(f"--rate {args.rate} needs --test-dir: the folder of the riffs recorded at that rate")
    return OtherRate(args.rate, args.test_dir, args.method)


def run(args: argparse.Namespace, config: Config) -> int:
    """CLI entry: score the chosen units (every trained one by default)."""
    explicit = args.unit is not None or args.context is not None or args.kind is not None
    other = other_rate_from(args, config)
    units = chosen_units(args, config)
    score_units(config, open_store(config.store), units, explicit=explicit, force=args.force, other_rate=other)
    return 0


def score_units(
    config: Config,
    store: Store,
    units: list[Unit],
    *,
    explicit: bool,
    force: bool = False,
    other_rate: OtherRate | None = None,
) -> list[Unit]:
    """Score every trained unit of ``units`` whose scores are not up to date; return those scored.

    ``other_rate``: score on the riffs recorded at that rate instead, into ``eval-<rate>hz/``.

    ``explicit``: the units were asked for by name, so an untrained one is an error (otherwise a
    warning); no trained unit at all is always an error.
    """
    layout = RunLayout(config.run_id)
    trained = [unit for unit in units if is_trained(store, layout, unit)]
    untrained = [unit for unit in units if unit not in trained]
    if explicit and untrained:
        raise EvalError(
            f"{', '.join(u.name for u in untrained)}: not trained (no {store.url(layout.history(untrained[0]))}); "
            "run the train stage first"
        )
    if not trained:
        raise EvalError(f"no trained unit to score in {store.url(layout.root)} (run the train stage first)")
    riffs_by_set: dict[str, list[CheckedPair]] = {}  # each recording set's riffs, loaded once
    scored = []
    for unit in trained:
        recordings = config.for_unit(unit).recordings
        if other_rate is not None:
            recordings = recordings.model_copy(
                update={"sample_rate": other_rate.sample_rate, "test_dir": other_rate.test_dir}
            )
        if not force and is_finished(store, layout, unit, config.eval, recordings, other_rate):
            rate = other_rate.sample_rate if other_rate else None
            log.info("eval %s: scores are up to date at %s", unit.name, store.url(layout.scores(unit, rate)))
            continue
        if recordings.test_dir not in riffs_by_set:
            riffs_by_set[recordings.test_dir] = load_riffs(store, recordings)
        evaluate_unit(
            store,
            layout,
            unit,
            riffs_by_set[recordings.test_dir],
            config.eval,
            recordings.test_dir,
            other_rate,
            config.recordings.sample_rate,
        )
        scored.append(unit)
    for unit in untrained:  # after the scoring: a unit that fails to score prints only its error
        log.warning("eval: %s is not trained yet; skipped", unit.name)
    return scored


def is_trained(store: Store, layout: RunLayout, unit: Unit) -> bool:
    """Whether the unit has a model and its history (what the train stage writes last)."""
    return store.exists(layout.history(unit)) and store.exists(layout.model(unit))


def inputs_digest(
    store: Store,
    layout: RunLayout,
    unit: Unit,
    settings: EvalConfig,
    riffs: list[str],
    test_dir: str,
    other_rate: OtherRate | None = None,
) -> str:
    """What a unit's scores depend on: its history (which changes whenever its model does), the riffs, eval settings."""
    keys = [layout.history(unit)]
    for riff in riffs:
        keys += [riff_dry_key(test_dir, riff), riff_wet_key(test_dir, riff)]
    inputs: dict[str, Any] = {
        "eval": settings.model_dump(exclude={"waveform_riff", "alpha"}),
        "metrics": perceptual.METRICS_VERSION,
        "objects": {key: sha256_hex(store.read_bytes(key)) for key in keys},
    }
    if other_rate is not None:
        inputs["other_rate"] = asdict(other_rate)
    return fingerprint(inputs)


def is_finished(
    store: Store,
    layout: RunLayout,
    unit: Unit,
    settings: EvalConfig,
    recordings: RecordingsConfig,
    other_rate: OtherRate | None = None,
) -> bool:
    """Whether the unit's scores.json exists and covers exactly its current model, riffs and settings."""
    key = layout.scores(unit, other_rate.sample_rate if other_rate else None)
    if not store.exists(key):
        return False
    recorded = store.read_json(key).get("inputs")
    try:
        digest = inputs_digest(store, layout, unit, settings, recordings.riffs, recordings.test_dir, other_rate)
        return recorded == digest
    except MissingObjectError:
        return False


def read_history(store: Store, key: str) -> dict[str, Any]:
    """A train-stage history.json, checked for the fields the stage uses."""
    try:
        history = store.read_json(key)
    except MissingObjectError:
        raise EvalError(f"{store.url(key)}: history file disappeared") from None
    except StoreError as error:
        raise EvalError(str(error)) from None
    if not isinstance(history, dict):
        raise EvalError(f"{store.url(key)}: history must be a JSON object")
    absent = [name for name in HISTORY_FIELDS if name not in history]
    if absent:
        raise EvalError(f"{store.url(key)}: history lacks field(s) {', '.join(absent)}")
    if not isinstance(history["epochs"], list) or not all(isinstance(e, dict) for e in history["epochs"]):
        raise EvalError(f"{store.url(key)}: history field 'epochs' must be a list of objects")
    return history


def output_wav(prediction: np.ndarray, sample_rate: int, source: str) -> bytes:
    """The output as a 24-bit WAV, clipped to full scale with a warning (the scores use the raw output)."""
    clipped = int(np.count_nonzero(np.abs(prediction) > 1.0))
    if clipped:
        log.warning(
            "eval: %s: %d samples beyond full scale, clipped in the WAV (scores use the raw output)", source, clipped
        )
    return encode_wav(np.clip(prediction, -1.0, 1.0), sample_rate)


def score_row(unit: Unit, riff: CheckedPair, prediction: np.ndarray, infer_seconds: float, pre_emphasis: float) -> dict:
    """One riff's scores and inference cost."""
    row: dict[str, Any] = {"riff": riff.name}
    row.update(scores.score_all(riff.wet, prediction, pre_emphasis).as_dict())
    row.update(perceptual.perceptual_scores(riff.wet, prediction, riff.sample_rate))
    row["infer_seconds"] = infer_seconds
    row["realtime_factor"] = riff.seconds / infer_seconds if infer_seconds > 0 else None
    return row


def evaluate_unit(
    store: Store,
    layout: RunLayout,
    unit: Unit,
    riffs: list[CheckedPair],
    settings: EvalConfig,
    test_dir: str,
    other_rate: OtherRate | None = None,
    training_rate: int | None = None,
) -> dict[str, Any]:
    """Predict and score every riff with the unit's model; write each output, then scores.json; return it.

    ``other_rate`` (with the unit's ``training_rate``): the riffs are at that rate and the unit runs
    there by ``other_rate.method`` (``sd1job.infer.rates``); keys under ``eval-<rate>hz/``.
    """
    rate_key = other_rate.sample_rate if other_rate else None
    history = read_history(store, layout.history(unit))
    model_key = layout.model(unit)
    try:
        model_data = store.read_bytes(model_key)
    except MissingObjectError:
        raise EvalError(f"{store.url(model_key)}: model file disappeared") from None
    predictor = make_predictor(model_data, store.url(model_key), unit, settings.batch_size)
    chosen = None
    if other_rate is not None and training_rate is not None:
        chosen = plan(unit.kind, other_rate.method, training_rate, other_rate.sample_rate)
        if chosen.note:
            log.warning("eval %s: %s", unit.name, chosen.note)
        predictor = predictor_for(chosen, predictor)
    started = time.perf_counter()
    predictor.warm_up()
    compile_seconds = time.perf_counter() - started
    rows = []
    for riff in riffs:
        started = time.perf_counter()
        prediction = predictor.predict(riff.dry) if chosen is None else process(predictor, riff.dry, chosen)
        infer_seconds = time.perf_counter() - started
        if not np.all(np.isfinite(prediction)):
            raise EvalError(f"{store.url(model_key)}: the model outputs NaN or Inf on riff {riff.name!r}")
        output_key = layout.unit_output(unit, riff.name, rate_key)
        store.write_bytes(output_key, output_wav(prediction, riff.sample_rate, store.url(output_key)))
        row = score_row(unit, riff, prediction, infer_seconds, settings.pre_emphasis)
        rows.append(row)
        log.info(
            "eval %s %s: ESR %.4g, pre-emphasis ESR %.4g, %.1fx real time",
            unit.name,
            riff.name,
            row["esr"],
            row["esr_pre"],
            row["realtime_factor"] or 0.0,
        )
    units = int(history.get("lstm_units") or 0)
    unit_outcome = history.get("outcome") or outcome(
        history.get("stop_reason"), history["best_val_loss"], history.get("reference_val_esr")
    )
    document = {
        "unit": unit.name,
        "kind": unit.kind,
        "context": unit.context,
        "seed": unit.seed,
        "sample_rate": riffs[0].sample_rate,
        "pre_emphasis": settings.pre_emphasis,
        "test_dir": test_dir,
        "rows": rows,
        "training": {
            "epochs_run": history["epochs_run"],
            "best_epoch": history["best_epoch"],
            "best_val_loss": history["best_val_loss"],
            "still_improving": bool(history.get("still_improving", history["best_epoch"] == history["epochs_run"])),
            "stop_reason": history.get("stop_reason"),
            "reference_val_esr": history.get("reference_val_esr"),
            "outcome": unit_outcome,
            "failed_to_learn": unit_outcome != "learned",
            "recoveries": history.get("recoveries", []),
            "train_seconds": history["total_seconds"],
            "seconds_per_epoch": history["seconds_per_epoch"],
            "epoch_seconds": [entry["seconds"] for entry in history["epochs"]],
            "parameter_count": history.get("parameter_count"),
            "lstm_units": units,
        },
        "flops_per_sample": flops_per_sample(
            unit.kind, unit.context, units, preset=unit.preset, cell=history.get("cell") or "lstm"
        ),
        "audio_seconds": sum(riff.seconds for riff in riffs),
        "infer_seconds": sum(row["infer_seconds"] for row in rows),
        "realtime_factor": _realtime_factor(riffs, rows),
        "compile_seconds": compile_seconds,
        "inputs": inputs_digest(store, layout, unit, settings, [r.name for r in riffs], test_dir, other_rate),
    }
    if chosen is not None:
        document.update({"training_rate": training_rate, "method": chosen.method})
    store.write_json(layout.scores(unit, rate_key), document)
    return document


def _realtime_factor(riffs: list[CheckedPair], rows: list[dict[str, Any]]) -> float | None:
    """Audio seconds per inference second over every riff (the one-off compile excluded)."""
    seconds = sum(row["infer_seconds"] for row in rows)
    return sum(riff.seconds for riff in riffs) / seconds if seconds > 0 else None
