"""The eval stage: score every trained context on every test riff; write audio, results, plots, report.

For each configured context whose training finished (``models/c<N>/model.keras`` and
``history.json`` both exist) every riff in ``recordings.riffs`` is predicted whole: output sample
``t`` from ``dry[t-n+1 .. t]``, zero-padded at the start, so the output has the input's length and
lines up with the wet recording. Everything goes under ``runs/<run_id>/eval/``::

    audio/c<N>/o_<riff>.wav          each model's output (24-bit, the recordings' rate)
    audio/dry/d_<riff>.wav           the dry and wet riffs as scored, so the report's players
    audio/wet/w_<riff>.wav           work from this folder alone (e.g. downloaded from S3)
    results.csv, results.json        one row per (context, riff); the JSON adds the per-context
    summary.csv                      summary (mean over riffs) and the dry-vs-wet reference
    esr_vs_context.png, epoch_time_vs_context.png, loss_curves.png, waveforms.png, spectra.png
    report.html                      the page tying it together (written last)

Contexts without a finished model are named in a warning and in the report; if none has one,
the stage fails with a message listing what it looked for.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from sd1job import scores
from sd1job.audio import decode_wav, encode_wav
from sd1job.config import Config
from sd1job.data_stage import check_pair
from sd1job.errors import UserError
from sd1job.layout import RunLayout, layout_for, riff_dry_key, riff_wet_key
from sd1job.report import html, plots
from sd1job.store import MissingObjectError, Store, StoreError, open_store

log = logging.getLogger(__name__)

SCORE_COLUMNS = ("esr", "esr_pre", "mse", "mae", "stft")
TRAIN_COLUMNS = ("epochs_run", "best_epoch", "train_seconds", "seconds_per_epoch")
COLUMNS = ("context", "riff", *SCORE_COLUMNS, *TRAIN_COLUMNS, "infer_seconds", "realtime_factor")
SUMMARY_COLUMNS = ("context", "riffs", *SCORE_COLUMNS, *TRAIN_COLUMNS, "infer_seconds", "realtime_factor")
REFERENCE_COLUMNS = ("riff", "seconds", "esr_dry_vs_wet", "esr_pre_dry_vs_wet", "stft_dry_vs_wet")
# history.json fields the stage needs (the train stage writes them).
HISTORY_FIELDS = ("epochs_run", "best_epoch", "total_seconds", "seconds_per_epoch", "epochs")

PLOT_ESR = "esr_vs_context.png"
PLOT_EPOCH_TIME = "epoch_time_vs_context.png"
PLOT_LOSSES = "loss_curves.png"
PLOT_WAVEFORMS = "waveforms.png"
PLOT_SPECTRA = "spectra.png"
REPORT = "report.html"


class EvalError(UserError, RuntimeError):
    """The eval stage cannot run: no trained model, or an unusable model or history file."""


@dataclass
class TestRiff:
    """A test riff's dry and wet signals as scored (equal length)."""

    name: str
    dry: np.ndarray
    wet: np.ndarray
    sample_rate: int

    @property
    def seconds(self) -> float:
        return len(self.dry) / self.sample_rate


@dataclass
class Evaluation:
    """What the stage computed: the rows and what the plots need."""

    rows: list[dict[str, Any]]
    histories: dict[int, dict[str, Any]]
    compile_seconds: dict[int, float]
    waveform_predictions: dict[int, np.ndarray]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """The eval command has no options beyond --config: it evaluates every finished context."""
    parser.epilog = "Writes runs/<run_id>/eval/: output audio, results.csv/json, plots and report.html."


def run(args: argparse.Namespace, config: Config) -> int:
    """Evaluate the run the config names and write its results and report."""
    store = open_store(config.store)
    results = run_eval(config, store)
    layout = layout_for(config)
    log.info(
        "eval: %d context(s) x %d riff(s); report at %s",
        len(results["summary"]),
        len(config.recordings.riffs),
        store.url(layout.eval_file(REPORT)),
    )
    return 0


# ---------------------------------------------------------------- inputs


def dry_copy_key(layout: RunLayout, riff: str) -> str:
    """Where the eval stage keeps the dry riff it scored (beside the outputs, for the report)."""
    return layout.eval_file(f"audio/dry/d_{riff}.wav")


def wet_copy_key(layout: RunLayout, riff: str) -> str:
    """Where the eval stage keeps the wet riff it scored."""
    return layout.eval_file(f"audio/wet/w_{riff}.wav")


def find_trained(store: Store, layout: RunLayout, contexts: list[int]) -> tuple[list[int], list[str]]:
    """Contexts with a finished model, and a one-line reason for each context without one."""
    found, missing = [], []
    for context in contexts:
        absent = [key for key in (layout.model(context), layout.history(context)) if not store.exists(key)]
        if absent:
            missing.append(f"c{context}: no " + " and no ".join(store.url(key) for key in absent))
        else:
            found.append(context)
    return found, missing


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


def load_riffs(store: Store, config: Config) -> list[TestRiff]:
    """Every configured test riff, decoded and checked like the data stage checks recordings."""
    rate = config.recordings.sample_rate
    riffs = []
    for name in config.recordings.riffs:
        dry_key, wet_key = riff_dry_key(config, name), riff_wet_key(config, name)
        dry = decode_wav(store.read_bytes(dry_key), store.url(dry_key), rate)
        wet = decode_wav(store.read_bytes(wet_key), store.url(wet_key), rate)
        dry_samples, wet_samples, _ = check_pair(dry, wet, config)
        riffs.append(TestRiff(name, dry_samples, wet_samples, rate))
    return riffs


def read_manifest(store: Store, layout: RunLayout) -> dict[str, Any] | None:
    """The data stage's manifest, or None (with a warning) if it is absent or unreadable."""
    try:
        manifest = store.read_json(layout.manifest)
    except MissingObjectError:
        log.warning("eval: no data manifest at %s; the report shows no data checks", store.url(layout.manifest))
        return None
    except StoreError as error:
        log.warning("eval: %s", error)
        return None
    return manifest if isinstance(manifest, dict) else None


# ---------------------------------------------------------------- scoring


def reference_row(riff: TestRiff) -> dict[str, Any]:
    """How far the dry signal is from the wet: what a model that does nothing would score."""
    return {
        "riff": riff.name,
        "seconds": riff.seconds,
        "esr_dry_vs_wet": scores.esr(riff.wet, riff.dry),
        "esr_pre_dry_vs_wet": scores.esr_pre(riff.wet, riff.dry),
        "stft_dry_vs_wet": scores.stft_distance(riff.wet, riff.dry),
    }


def result_row(
    context: int,
    riff: TestRiff,
    prediction: np.ndarray,
    history: dict[str, Any],
    infer_seconds: float,
    pre_emphasis: float,
) -> dict[str, Any]:
    """One results row: the scores of a prediction, the model's training cost, the inference cost."""
    row: dict[str, Any] = {"context": context, "riff": riff.name}
    row.update(scores.score_all(riff.wet, prediction, pre_emphasis).as_dict())
    row.update(
        epochs_run=history["epochs_run"],
        best_epoch=history["best_epoch"],
        train_seconds=history["total_seconds"],
        seconds_per_epoch=history["seconds_per_epoch"],
        infer_seconds=infer_seconds,
        realtime_factor=riff.seconds / infer_seconds if infer_seconds > 0 else None,
    )
    return row


def summarize(rows: list[dict[str, Any]], riffs: list[TestRiff]) -> list[dict[str, Any]]:
    """One row per context: scores averaged over riffs, total inference time and its real-time factor."""
    audio_seconds = {riff.name: riff.seconds for riff in riffs}
    summary = []
    for context in sorted({row["context"] for row in rows}):
        mine = [row for row in rows if row["context"] == context]
        entry: dict[str, Any] = {"context": context, "riffs": len(mine)}
        entry.update({name: float(np.mean([row[name] for row in mine])) for name in SCORE_COLUMNS})
        entry.update({name: mine[0][name] for name in TRAIN_COLUMNS})
        infer_total = float(sum(row["infer_seconds"] for row in mine))
        entry["infer_seconds"] = infer_total
        entry["realtime_factor"] = (
            sum(audio_seconds[row["riff"]] for row in mine) / infer_total if infer_total else None
        )
        summary.append(entry)
    return summary


def to_csv(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    """Rows as CSV text with a header line (floats at full precision)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({name: ("" if row.get(name) is None else row.get(name)) for name in columns})
    return buffer.getvalue()


def _output_wav(prediction: np.ndarray, sample_rate: int, source: str) -> bytes:
    clipped = int(np.count_nonzero(np.abs(prediction) > 1.0))
    if clipped:
        log.warning(
            "eval: %s: %d samples beyond full scale, clipped in the WAV (scores use the raw output)", source, clipped
        )
    return encode_wav(np.clip(prediction, -1.0, 1.0), sample_rate)


def evaluate_contexts(
    store: Store, config: Config, contexts: list[int], riffs: list[TestRiff], waveform_riff: str
) -> Evaluation:
    """Predict and score every riff with every context's model; write each output WAV as it is made."""
    from sd1job.infer import weights as infer_weights  # TensorFlow: imported only when there is a model to run
    from sd1job.infer import windowed as infer_windowed

    layout = layout_for(config)
    evaluation = Evaluation(rows=[], histories={}, compile_seconds={}, waveform_predictions={})
    keep = {min(contexts), max(contexts)}
    for context in contexts:
        history = read_history(store, layout.history(context))
        model_key = layout.model(context)
        model_url = store.url(model_key)
        weights = infer_weights.load_weights(store.read_bytes(model_key), model_url, context)
        predictor = infer_windowed.SlidingWindowPredictor(weights, context, config.eval.batch_size)
        started = time.perf_counter()
        predictor.warm_up()
        evaluation.compile_seconds[context] = time.perf_counter() - started
        evaluation.histories[context] = history
        for riff in riffs:
            started = time.perf_counter()
            prediction = predictor.predict(riff.dry)
            infer_seconds = time.perf_counter() - started
            if not np.all(np.isfinite(prediction)):
                raise EvalError(f"{model_url}: the model outputs NaN or Inf on riff {riff.name!r}")
            output_key = layout.output_audio(context, riff.name)
            store.write_bytes(output_key, _output_wav(prediction, riff.sample_rate, store.url(output_key)))
            row = result_row(context, riff, prediction, history, infer_seconds, config.eval.pre_emphasis)
            evaluation.rows.append(row)
            log.info(
                "eval: c%d %s: ESR %.4g, pre-emphasis ESR %.4g, %.1fx real time",
                context,
                riff.name,
                row["esr"],
                row["esr_pre"],
                row["realtime_factor"] or 0.0,
            )
            if riff.name == waveform_riff and context in keep:
                evaluation.waveform_predictions[context] = prediction
    return evaluation


# ---------------------------------------------------------------- the stage


def inputs_digest(config: Config, store: Store, contexts: list[int]) -> str:
    """A hash of everything the results depend on: eval settings, riffs, and each model's history.

    history.json is written last by the train stage and changes whenever its model does, so it
    stands for the model.
    """
    layout = layout_for(config)
    digest = hashlib.sha256(json.dumps(config.eval.model_dump(), sort_keys=True).encode())
    keys = [layout.history(context) for context in contexts]
    for riff in config.recordings.riffs:
        keys += [riff_dry_key(config, riff), riff_wet_key(config, riff)]
    for key in keys:
        digest.update(key.encode())
        digest.update(hashlib.sha256(store.read_bytes(key)).digest())
    return digest.hexdigest()[:16]


def is_done(config: Config, store: Store) -> bool:
    """Whether eval/results.json and the report already cover exactly the models finished now."""
    layout = layout_for(config)
    if not (store.exists(layout.eval_file("results.json")) and store.exists(layout.eval_file(REPORT))):
        return False
    contexts, _ = find_trained(store, layout, config.dataset.contexts)
    if not contexts:
        return False
    return store.read_json(layout.eval_file("results.json")).get("inputs") == inputs_digest(config, store, contexts)


def run_eval(config: Config, store: Store) -> dict[str, Any]:
    """Run the eval stage; return the results document (also written to eval/results.json)."""
    layout = layout_for(config)
    contexts, missing = find_trained(store, layout, config.dataset.contexts)
    if not contexts:
        raise EvalError(
            f"no trained model to evaluate in {store.url(layout.root)}: "
            + "; ".join(missing)
            + " (run the train stage first)"
        )
    for reason in missing:
        log.warning("eval: skipping %s", reason)
    riffs = load_riffs(store, config)
    waveform_riff = config.eval.waveform_riff or config.recordings.riffs[-1]
    evaluation = evaluate_contexts(store, config, contexts, riffs, waveform_riff)
    for riff in riffs:
        store.write_bytes(dry_copy_key(layout, riff.name), encode_wav(riff.dry, riff.sample_rate))
        store.write_bytes(wet_copy_key(layout, riff.name), encode_wav(riff.wet, riff.sample_rate))

    summary = summarize(evaluation.rows, riffs)
    for entry in summary:
        entry["compile_seconds"] = evaluation.compile_seconds[entry["context"]]
    reference = [reference_row(riff) for riff in riffs]
    results = {
        "run_id": config.run_id,
        "sample_rate": config.recordings.sample_rate,
        "pre_emphasis": config.eval.pre_emphasis,
        "stft_resolutions": [vars(r) for r in scores.STFT_RESOLUTIONS],
        "columns": list(COLUMNS),
        "rows": evaluation.rows,
        "summary": summary,
        "reference": reference,
        "missing": missing,
        "inputs": inputs_digest(config, store, contexts),
    }
    store.write_text(layout.eval_file("results.csv"), to_csv(evaluation.rows, COLUMNS))
    store.write_text(layout.eval_file("summary.csv"), to_csv(summary, (*SUMMARY_COLUMNS, "compile_seconds")))
    store.write_json(layout.eval_file("results.json"), results)

    riff_by_name = {riff.name: riff for riff in riffs}
    figures = write_plots(store, layout, evaluation, summary, reference, riff_by_name[waveform_riff])
    page = html.ReportPage(
        run_id=config.run_id,
        store_url=store.url(layout.root),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        config_yaml=config.to_yaml(),
        columns=list(COLUMNS),
        rows=evaluation.rows,
        summary=summary,
        reference=reference,
        figures=figures,
        listening=listening_rows(layout, riffs, contexts),
        missing=missing,
        manifest=read_manifest(store, layout),
        notes={
            "pre_emphasis": config.eval.pre_emphasis,
            "sample_rate": config.recordings.sample_rate,
            "stft": "; ".join(f"FFT {r.fft_size}, hop {r.hop}, Hann {r.window}" for r in scores.STFT_RESOLUTIONS)
            + ": spectral convergence plus mean |log-magnitude difference|, averaged",
        },
    )
    store.write_text(layout.eval_file(REPORT), html.render_report(page))
    return results


def _relative(layout: RunLayout, key: str) -> str:
    """The key as a URL relative to eval/report.html."""
    return html.relative_href(key[len(layout.eval_dir) + 1 :])


def listening_rows(layout: RunLayout, riffs: list[TestRiff], contexts: list[int]) -> list[html.ListeningRow]:
    """The report's players: per riff, dry, true wet, then each context's output."""
    rows = []
    for riff in riffs:
        clips = [
            html.Clip("dry (input)", _relative(layout, dry_copy_key(layout, riff.name))),
            html.Clip("wet (true pedal output)", _relative(layout, wet_copy_key(layout, riff.name))),
        ]
        clips += [html.Clip(f"model c{c}", _relative(layout, layout.output_audio(c, riff.name))) for c in contexts]
        rows.append(html.ListeningRow(riff.name, clips))
    return rows


def write_plots(
    store: Store,
    layout: RunLayout,
    evaluation: Evaluation,
    summary: list[dict[str, Any]],
    reference: list[dict[str, Any]],
    waveform_riff: TestRiff,
) -> list[html.Figure]:
    """Draw every figure into eval/ and return them for the report, in reading order."""
    per_riff: dict[str, dict[int, float]] = {}
    for row in evaluation.rows:
        per_riff.setdefault(row["riff"], {})[row["context"]] = row["esr"]
    mean = {entry["context"]: entry["esr"] for entry in summary}
    reference_esr = float(np.mean([entry["esr_dry_vs_wet"] for entry in reference]))
    epoch_times = {entry["context"]: float(entry["seconds_per_epoch"]) for entry in summary}
    fit = plots.linear_fit(list(epoch_times), list(epoch_times.values()))
    fit_text = f"Least-squares fit: {fit[0]:.4g} s per sample of context + {fit[1]:.3g} s." if fit else ""
    shown = sorted(evaluation.waveform_predictions)
    figures = [
        (
            PLOT_ESR,
            plots.esr_vs_context(per_riff, mean, reference_esr),
            "Test ESR against context size",
            "One line per riff, the mean in black (log scale). Dashed red: the ESR of the dry signal "
            f"against the wet (mean {reference_esr:.3g}), what a model that passes the input through scores.",
        ),
        (
            PLOT_EPOCH_TIME,
            plots.epoch_time_vs_context(epoch_times),
            "Training time per epoch against context size",
            f"From each model's history.json (total training seconds / epochs run). {fit_text}",
        ),
        (
            PLOT_LOSSES,
            plots.loss_grid(evaluation.histories),
            "Training and validation loss of every model",
            "ESR per epoch (log scale); the dotted line marks the epoch whose weights were kept.",
        ),
        (
            PLOT_WAVEFORMS,
            plots.waveform_overlay(
                waveform_riff.name,
                waveform_riff.dry,
                waveform_riff.wet,
                evaluation.waveform_predictions,
                waveform_riff.sample_rate,
            ),
            f"Waveforms of {waveform_riff.name}",
            f"Input, true output and prediction at context {' and '.join(map(str, shown))}, zoomed to "
            f"{plots.ZOOM_MS:g} ms where the predictions differ most from the true output.",
        ),
        (
            PLOT_SPECTRA,
            plots.spectrum_comparison(
                waveform_riff.name, waveform_riff.wet, evaluation.waveform_predictions, waveform_riff.sample_rate
            ),
            f"Spectra of {waveform_riff.name}",
            "Average power spectrum of the true output and of the predictions at the smallest and largest "
            "context (top), and each prediction's difference from the true output in dB (bottom).",
        ),
    ]
    result = []
    for name, png, title, caption in figures:
        store.write_bytes(layout.eval_file(name), png)
        result.append(html.Figure(html.relative_href(name), title, caption))
    return result
