"""The ``report`` stage: gather every unit's scores into results, statistics, plots and one page.

``python -m sd1job report --config FILE`` reads ``models/<unit>/eval/scores.json`` of every unit
of the config and writes ``runs/<run_id>/eval/``::

    results.csv      one row per (unit, riff): context, context_ms, seed, kind, outcome (learned,
                     failed_to_learn, diverged), scores, recoveries, costs
    summary.csv      one row per arm (a context, or the stateful model): units (learned of them,
                     the failed and the outliers by name), mean test ESR over the units that learned with
                     its 95 % interval, pre-emphasis ESR, STFT distance, validation ESR, seconds per
                     epoch with its spread, the test against the best arm
    results.json     all of it, plus the statistics (intervals, tests, the fitted curve, the verdict)
    *.png            the figures; report.html (written last), the page that ties it together
    audio/, exports/ copies of what the page links (one seed per arm, the dry and wet riffs, the
                     exported .nam files), so the folder stands alone (e.g. downloaded from S3)

Units not scored yet are listed on the page; no scored unit at all is an error. The stage is
skipped when results.json already covers exactly the current scores and exports.
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
from datetime import UTC, datetime
from typing import Any

import numpy as np

from sd1job import scores, stats
from sd1job.audio import CheckedPair, decode_wav, load_riffs
from sd1job.config import Config
from sd1job.errors import UserError
from sd1job.hashing import fingerprint, sha256_hex
from sd1job.health import failure_text, outcome
from sd1job.layout import REPORT_HTML, RESULTS_CSV, RESULTS_JSON, SUMMARY_CSV, RunLayout
from sd1job.listen.report import listening_keys, listening_section
from sd1job.perceptual import PERCEPTUAL_NAMES
from sd1job.report import figures, html
from sd1job.store import MissingObjectError, Store, StoreError, open_store
from sd1job.units import Unit

log = logging.getLogger(__name__)

ROW_COLUMNS = (
    "unit",
    "kind",
    "context",
    "context_ms",
    "seed",
    "outcome",
    "riff",
    "esr",
    "esr_pre",
    "mse",
    "mae",
    "stft",
    *PERCEPTUAL_NAMES,
    "epochs_run",
    "best_epoch",
    "recoveries",
    "train_seconds",
    "seconds_per_epoch",
    "infer_seconds",
    "realtime_factor",
    "flops_per_sample",
)
SUMMARY_COLUMNS = (
    "arm",
    "kind",
    "context",
    "context_ms",
    "units",
    "units_learned",
    "failed",
    "outliers",
    "esr",
    "esr_gmean",
    "esr_low",
    "esr_high",
    "esr_pre",
    "stft",
    *PERCEPTUAL_NAMES,
    "mse",
    "mae",
    "val_esr",
    "test_over_val",
    "p_worse_than_best",
    "p_holm",
    "significantly_worse",
    "seconds_per_epoch",
    "seconds_per_epoch_sd",
    "epochs_run",
    "still_improving",
    "realtime_factor",
    "flops_per_sample",
)
REFERENCE_COLUMNS = ("riff", "seconds", "esr_dry_vs_wet", "esr_pre_dry_vs_wet", "stft_dry_vs_wet")
AVERAGED = ("esr_pre", "stft", "mse", "mae")


class ReportError(UserError, RuntimeError):
    """The report cannot be made: no unit is scored, or a scores file is unusable."""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m sd1job report``."""
    parser.add_argument("--force", action="store_true", help="write the report even if it is up to date")


def run(args: argparse.Namespace, config: Config) -> int:
    """CLI entry: gather the scores and write the report."""
    store = open_store(config.store)
    write_report(config, store, force=args.force)
    log.info("report: %s", store.url(RunLayout(config.run_id).eval_file(REPORT_HTML)))
    return 0


# --- gathering -----------------------------------------------------------------------------------


def read_scores(store: Store, layout: RunLayout, units: list[Unit]) -> tuple[dict[Unit, dict[str, Any]], list[str]]:
    """The scores.json of every scored unit, and a one-line reason for each unit without one."""
    found: dict[Unit, dict[str, Any]] = {}
    missing = []
    for unit in units:
        key = layout.scores(unit)
        try:
            document = store.read_json(key)
        except MissingObjectError:
            trained = store.exists(layout.history(unit))
            missing.append(f"{unit.name}: {'trained but not scored' if trained else 'not trained'}")
            continue
        except StoreError as error:
            raise ReportError(str(error)) from None
        if not isinstance(document, dict) or not isinstance(document.get("rows"), list) or not document["rows"]:
            raise ReportError(f"{store.url(key)}: not a scores file (no rows)")
        found[unit] = document
    return found, missing


def context_ms(context: int | None, sample_rate: int) -> float | None:
    """A context size in milliseconds at the recordings' rate."""
    return None if context is None else round(1000.0 * context / sample_rate, 4)


def result_rows(scored: dict[Unit, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (unit, riff), in unit order."""
    rows = []
    for unit, document in sorted(scored.items()):
        training = document["training"]
        for entry in document["rows"]:
            rows.append(
                {
                    "unit": unit.name,
                    "arm": unit.arm,
                    "tag": unit.tag,
                    **dict(unit.grid),
                    "kind": unit.kind,
                    "context": unit.context,
                    "preset": unit.preset,
                    "context_ms": context_ms(unit.context, document["sample_rate"]),
                    "seed": unit.seed,
                    "outcome": unit_outcome(document),
                    **{name: entry[name] for name in ("riff", *scores.SCORE_NAMES)},
                    **{name: entry.get(name) for name in PERCEPTUAL_NAMES},  # absent in older scores
                    "epochs_run": training["epochs_run"],
                    "best_epoch": training["best_epoch"],
                    "recoveries": len(training.get("recoveries") or []),
                    "train_seconds": training["train_seconds"],
                    "seconds_per_epoch": training["seconds_per_epoch"],
                    "infer_seconds": entry["infer_seconds"],
                    "realtime_factor": entry["realtime_factor"],
                    "flops_per_sample": document["flops_per_sample"],
                }
            )
    return rows


def unit_outcome(document: dict[str, Any]) -> str:
    """learned, failed_to_learn or diverged: as eval recorded it, or by the one rule for older scores files."""
    training = document["training"]
    return training.get("outcome") or outcome(
        training.get("stop_reason"), training.get("best_val_loss"), training.get("reference_val_esr")
    )


def unit_statistics_input(unit: Unit, document: dict[str, Any]) -> dict[str, Any]:
    """What the statistics need to know of a unit beyond its scores: validation ESR, training state, outcome."""
    training = document["training"]
    result = unit_outcome(document)
    return {
        "val_esr": training["best_val_loss"],
        "still_improving": training["still_improving"],
        "stop_reason": training.get("stop_reason"),
        "outcome": result,
        "failure": None
        if result == "learned"
        else failure_text(
            unit.name,
            result,
            {
                "best_val_esr": training.get("best_val_loss"),
                "reference_esr": training.get("reference_val_esr"),
                "recoveries": training.get("recoveries"),
            },
        ),
    }


def arms_of(scored: dict[Unit, dict[str, Any]]) -> dict[str, list[Unit]]:
    """The scored units grouped by arm (``c<N>`` in order of n, then ``stateful``), seeds in order; a grid's
    combinations in the config's order (``scored`` is in the config's unit order)."""
    combination = {tag: index for index, tag in enumerate(dict.fromkeys(u.tag for u in scored))}
    arms: dict[str, list[Unit]] = {}
    for unit in sorted(scored, key=lambda u: (combination[u.tag], u.kind != "windowed", u.context or 0, u.seed)):
        arms.setdefault(unit.arm, []).append(unit)
    return arms


def summary_rows(
    scored: dict[Unit, dict[str, Any]], rows: list[dict[str, Any]], analysis: dict[str, Any]
) -> list[dict[str, Any]]:
    """One row per arm: means over its units and riffs, the interval and test from the analysis, costs."""
    by_arm = {entry["arm"]: entry for entry in analysis["arms"]}
    summary = []
    for arm, units in arms_of(scored).items():
        mine_all = [row for row in rows if row["unit"] in {u.name for u in units}]
        learned_units = [u for u in units if unit_outcome(scored[u]) == "learned"]
        # The averages cover the units that learned, as the interval does; an arm with none keeps its failures'.
        counted = learned_units or units
        mine = [row for row in mine_all if row["unit"] in {u.name for u in counted}]
        documents = [scored[u] for u in counted]
        epoch_means = [d["training"]["seconds_per_epoch"] for d in documents]
        stat = by_arm.get(arm, {})
        interval = stat.get("interval") or {}
        comparison = stat.get("comparison") or {}
        first = units[0]
        infer_seconds = sum(d["infer_seconds"] for d in documents)
        audio_seconds = sum(d["audio_seconds"] for d in documents)
        summary.append(
            {
                "arm": arm,
                **dict(units[0].grid),
                "kind": first.kind,
                "context": first.context,
                "context_ms": mine[0]["context_ms"],
                "units": len(units),
                "units_learned": len(learned_units),
                "failed": " ".join(u.name for u in units if u not in learned_units),
                "outliers": " ".join(o["unit"] for o in analysis.get("outliers", []) if o["arm"] == arm),
                "esr": float(np.mean([row["esr"] for row in mine])),
                "esr_gmean": interval.get("mean"),
                "esr_low": interval.get("low"),
                "esr_high": interval.get("high"),
                **{name: float(np.mean([row[name] for row in mine])) for name in AVERAGED},
                **{name: _mean_or_none([row.get(name) for row in mine]) for name in PERCEPTUAL_NAMES},
                "val_esr": _mean_or_none([d["training"]["best_val_loss"] for d in documents]),
                "test_over_val": (stat.get("gap") or {}).get("ratio"),
                "p_worse_than_best": comparison.get("p_value"),
                "p_holm": comparison.get("p_holm"),
                "significantly_worse": comparison.get("significant"),
                "seconds_per_epoch": float(np.mean(epoch_means)),
                "seconds_per_epoch_sd": float(np.std(epoch_means, ddof=1)) if len(epoch_means) > 1 else None,
                "epochs_run": float(np.mean([d["training"]["epochs_run"] for d in documents])),
                "still_improving": sum(bool(d["training"]["still_improving"]) for d in documents),
                "realtime_factor": audio_seconds / infer_seconds if infer_seconds > 0 else None,
                "flops_per_sample": documents[0]["flops_per_sample"],
            }
        )
    return summary


def _mean_or_none(values: list[Any]) -> float | None:
    """The mean of the values that are known, or None if none is (older scores files lack newer columns)."""
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else None


def reference_row(riff: CheckedPair) -> dict[str, Any]:
    """How far the dry signal is from the wet: what a model that does nothing would score."""
    return {
        "riff": riff.name,
        "seconds": riff.seconds,
        "esr_dry_vs_wet": scores.esr(riff.wet, riff.dry),
        "esr_pre_dry_vs_wet": scores.esr_pre(riff.wet, riff.dry),
        "stft_dry_vs_wet": scores.stft_distance(riff.wet, riff.dry),
    }


def to_csv(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    """Rows as CSV text with a header line (floats at full precision, None as empty)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({name: ("" if row.get(name) is None else row.get(name)) for name in columns})
    return buffer.getvalue()


def exported_files(store: Store, layout: RunLayout, units: list[Unit]) -> list[tuple[Unit, str]]:
    """(unit, store key) of every exported model of the config's units that exists."""
    return [(unit, layout.export(unit)) for unit in units if store.exists(layout.export(unit))]


def inputs_digest(store: Store, layout: RunLayout, config: Config, units: list[Unit]) -> str:
    """What the report depends on: every unit's scores and exports, and the settings it shows."""
    keys = [layout.scores(u) for u in units if store.exists(layout.scores(u))]
    keys += [key for _, key in exported_files(store, layout, units)]
    keys += listening_keys(store, layout)
    return fingerprint(
        {"config": config.model_dump(mode="json"), "objects": {k: sha256_hex(store.read_bytes(k)) for k in keys}}
    )


def is_finished(store: Store, layout: RunLayout, config: Config) -> bool:
    """Whether results.json and report.html already cover exactly the current scores and exports."""
    if not (store.exists(layout.eval_file(RESULTS_JSON)) and store.exists(layout.eval_file(REPORT_HTML))):
        return False
    recorded = store.read_json(layout.eval_file(RESULTS_JSON)).get("inputs")
    return recorded == inputs_digest(store, layout, config, config.units())


# --- the stage ---------------------------------------------------------------------------------


def write_report(config: Config, store: Store, *, force: bool = False) -> dict[str, Any] | None:
    """Gather, analyse, draw and write the report; return results.json's content (None when up to date)."""
    layout = RunLayout(config.run_id)
    units = config.units()
    if not force and is_finished(store, layout, config):
        log.info("report: up to date at %s", store.url(layout.eval_file(REPORT_HTML)))
        return None
    scored, missing = read_scores(store, layout, units)
    if not scored:
        raise ReportError(
            f"no scored unit in {store.url(layout.root)}: " + "; ".join(missing) + " (run the train and eval stages)"
        )
    for reason in missing:
        log.warning("report: %s", reason)
    riffs_by_set = {name: load_riffs(store, config.recordings_of_set(name)) for name in config.recording_sets_used()}
    rows = result_rows(scored)
    axes = list(config.sweep.grid)
    unit_inputs = {u.name: unit_statistics_input(u, d) for u, d in scored.items()}
    if axes:
        from sd1job.grid_stats import analyse_grid

        analysis = analyse_grid(
            rows, unit_inputs, axes, alpha=config.eval.alpha, sample_rate=config.recordings.sample_rate
        )
    else:
        analysis = stats.analyse(rows, unit_inputs, alpha=config.eval.alpha, sample_rate=config.recordings.sample_rate)
    factorial_result = analysis.pop("_factorial_result", None)
    row_columns = (*ROW_COLUMNS[:1], *axes, *ROW_COLUMNS[1:])
    summary_columns = (*SUMMARY_COLUMNS[:1], *axes, *SUMMARY_COLUMNS[1:])
    summary = summary_rows(scored, rows, analysis)
    listening_test = listening_section(store, config, rows)
    if listening_test is not None:
        analysis["verdict"] += listening_test["verdict"]
    reference = [
        ({"recording_set": name} if name is not None else {}) | reference_row(riff)
        for name, riffs in riffs_by_set.items()
        for riff in riffs
    ]
    results = {
        "run_id": config.run_id,
        "sample_rate": config.recordings.sample_rate,
        "pre_emphasis": config.eval.pre_emphasis,
        "stft_resolutions": [vars(r) for r in scores.STFT_RESOLUTIONS],
        "columns": list(row_columns),
        "rows": rows,
        "summary": summary,
        "statistics": analysis,
        "listening_test": listening_test,
        "reference": reference,
        "missing": missing,
        "inputs": inputs_digest(store, layout, config, units),
    }
    store.write_text(layout.eval_file(RESULTS_CSV), to_csv(rows, row_columns))
    store.write_text(layout.eval_file(SUMMARY_CSV), to_csv(summary, summary_columns))

    listening = [
        row
        for name, riffs in riffs_by_set.items()
        for row in _copy_listening(
            store, layout, {u: d for u, d in scored.items() if config.recording_set_of(u) == name}, riffs, name
        )
    ]
    exports = _copy_exports(store, layout, units)
    # The context figure and the waveforms show the grid's first combination (draw_all), so its recording set.
    figure_set = config.recording_set_of(min(scored, key=lambda unit: unit.tag))
    figure_riffs = riffs_by_set[figure_set]
    waveform_riff = config.eval.waveform_riff or figure_riffs[-1].name
    figure_list = figures.draw_all(
        store,
        layout,
        scored,
        rows,
        summary,
        analysis,
        [reference_row(riff) for riff in figure_riffs],
        next(r for r in figure_riffs if r.name == waveform_riff),
        _waveform_predictions(
            store,
            layout,
            {u: d for u, d in scored.items() if config.recording_set_of(u) == figure_set},
            waveform_riff,
        ),
        factorial_result,
    )
    store.write_json(layout.eval_file(RESULTS_JSON), results)
    page = html.ReportPage(
        run_id=config.run_id,
        store_url=store.url(layout.root),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        config_yaml=config.to_yaml(),
        columns=list(row_columns),
        rows=rows,
        summary=summary,
        summary_columns=list(summary_columns),
        reference=reference,
        statistics=analysis,
        listening_test=listening_test,
        figures=figure_list,
        listening=listening,
        exports=exports,
        missing=missing,
        **_data_manifests(store, config),
        notes={
            "pre_emphasis": config.eval.pre_emphasis,
            "sample_rate": config.recordings.sample_rate,
            "alpha": config.eval.alpha,
            "stft": "; ".join(f"FFT {r.fft_size}, hop {r.hop}, Hann {r.window}" for r in scores.STFT_RESOLUTIONS),
        },
    )
    store.write_text(layout.eval_file(REPORT_HTML), html.render_report(page))
    return results


def _data_manifests(store: Store, config: Config) -> dict[str, Any]:
    """The page's ``manifest`` (the run's dataset, or a grid's first) and ``variant_manifests`` (every dataset by
    tag, when a grid has several)."""
    tags = [tag for tag, _ in config.data_variants()]
    manifests = {tag: _read_manifest(store, RunLayout(config.run_id, tag)) for tag in tags}
    first = manifests.pop(tags[0])
    labelled = {tag: manifest for tag, manifest in manifests.items() if manifest is not None}
    return {"manifest": first, "variant_manifests": ({tags[0]: first} | labelled) if first and labelled else {}}


def _read_manifest(store: Store, layout: RunLayout) -> dict[str, Any] | None:
    """The data stage's manifest, or None (with a warning) if it is absent or unreadable."""
    try:
        manifest = store.read_json(layout.manifest)
    except (MissingObjectError, StoreError) as error:
        log.warning("report: no data manifest (%s); the page shows no data checks", error)
        return None
    return manifest if isinstance(manifest, dict) else None


def _listening_units(scored: dict[Unit, dict[str, Any]]) -> list[Unit]:
    """One unit per arm for the players: its first seed."""
    return [units[0] for units in arms_of(scored).values()]


def _copy_listening(
    store: Store,
    layout: RunLayout,
    scored: dict[Unit, dict[str, Any]],
    riffs: list[CheckedPair],
    recording_set: str | None = None,
) -> list[html.ListeningRow]:
    """Copy the riffs of one recording set and one seed's output per arm of that set (``scored``) under
    eval/audio/, and return the page's players."""
    from sd1job.audio import encode_wav

    chosen = _listening_units(scored)
    rows = []
    for riff in riffs:
        dry_copy, wet_copy = layout.report_dry(riff.name, recording_set), layout.report_wet(riff.name, recording_set)
        store.write_bytes(layout.eval_file(dry_copy), encode_wav(riff.dry, riff.sample_rate))
        store.write_bytes(layout.eval_file(wet_copy), encode_wav(riff.wet, riff.sample_rate))
        clips = [
            html.Clip("dry (input)", html.relative_href(dry_copy)),
            html.Clip("wet (true pedal output)", html.relative_href(wet_copy)),
        ]
        for unit in chosen:
            copy = layout.report_output(unit, riff.name)
            store.write_bytes(layout.eval_file(copy), store.read_bytes(layout.unit_output(unit, riff.name)))
            clips.append(html.Clip(f"model {unit.name}", html.relative_href(copy)))
        rows.append(html.ListeningRow(riff.name if recording_set is None else f"{riff.name} ({recording_set})", clips))
    return rows


def _copy_exports(store: Store, layout: RunLayout, units: list[Unit]) -> list[html.ExportedFile]:
    """Copy every exported model under eval/exports/ and list it with its size."""
    listed = []
    for unit, key in exported_files(store, layout, units):
        data = store.read_bytes(key)
        copy = layout.report_export(unit)
        store.write_bytes(layout.eval_file(copy), data)
        listed.append(html.ExportedFile(unit.name, html.relative_href(copy), len(data)))
    return listed


def _waveform_predictions(
    store: Store, layout: RunLayout, scored: dict[Unit, dict[str, Any]], riff: str
) -> dict[str, np.ndarray]:
    """The outputs on the waveform riff of the smallest and largest context and the stateful model (first seeds)."""
    chosen = _listening_units(scored)
    windowed = [u for u in chosen if u.kind == "windowed"]
    shown = ([windowed[0], windowed[-1]] if len(windowed) > 1 else windowed) + [
        u for u in chosen if u.kind != "windowed"
    ]
    predictions = {}
    for unit in shown:
        key = layout.unit_output(unit, riff)
        predictions[unit.arm] = decode_wav(store.read_bytes(key), store.url(key)).samples
    return predictions
