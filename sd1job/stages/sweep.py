"""The local orchestrator: ``data -> train every unit -> eval every unit -> export -> report``.

The Argo DAG's steps on one machine: each step is the same function (or the same ``python -m
sd1job`` command) a pod runs, and each skips what is finished: the data stage when its manifest
matches the config and recordings, a unit whose model and history exist, a unit whose scores
cover its current model, the report when it covers the current scores. A rerun after a crash or
Ctrl-C picks up where it stopped (a unit interrupted mid-training resumes from its last epoch).
A unit that fails does not stop the others: the sweep scores and reports what trained, names the
failures and exits non-zero; a rerun retries them. This is the one module that calls the stages.

``--jobs N`` runs N units at once, each in its own ``python -m sd1job train --unit U`` (then
``eval --unit U``) process, as the cluster's pods do. On a CPU each trainer uses one thread by
default (``train.threads: 0``), so ``--jobs`` equal to the number of cores keeps every core busy.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sd1job.config import Config
from sd1job.errors import UserError
from sd1job.formatting import format_duration
from sd1job.layout import REPORT_HTML, RunLayout
from sd1job.stages import data, evaluate, export, report, train
from sd1job.store import Store, open_store
from sd1job.units import Unit, UnitError

log = logging.getLogger(__name__)


class SweepError(UserError, RuntimeError):
    """Some units of the sweep failed."""


@dataclass
class SweepProgress:
    """What the sweep has done, for the progress lines, the ETA and the final summary."""

    units: list[Unit]
    jobs: int = 1
    started: float = field(default_factory=time.monotonic)
    done: list[Unit] = field(default_factory=list)
    skipped: list[Unit] = field(default_factory=list)
    failed: dict[Unit, str] = field(default_factory=dict)
    seconds: dict[Unit, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def eta_seconds(self) -> float | None:
        """Remaining training time, per kind: a fixed cost plus a cost linear in n fitted to the units done."""
        finished = set(self.done) | set(self.skipped) | set(self.failed)
        remaining = [u for u in self.units if u not in finished]
        total = 0.0
        for kind in {u.kind for u in remaining}:
            measured = {u: s for u, s in self.seconds.items() if u.kind == kind}
            todo = [u for u in remaining if u.kind == kind]
            if not measured:
                others = list(self.seconds.values())
                if not others:
                    return None
                total += len(todo) * float(np.mean(others))
                continue
            total += _linear_estimate(measured, todo)
        return total / self.jobs

    def line(self, message: str) -> str:
        """A progress line: units finished, elapsed time, ETA, message."""
        finished = len(self.done) + len(self.skipped) + len(self.failed)
        eta = self.eta_seconds()
        left = f", ~{format_duration(eta)} of training left" if eta is not None and finished < len(self.units) else ""
        elapsed = format_duration(time.monotonic() - self.started)
        return f"[sweep {finished}/{len(self.units)} units, {elapsed} elapsed{left}] {message}"


def _linear_estimate(measured: dict[Unit, float], todo: list[Unit]) -> float:
    """Seconds for ``todo`` from the measured units of one kind: proportional to n, or a fitted a + b n."""
    sizes = np.array([u.context or 1 for u in measured], dtype=float)
    seconds = np.array(list(measured.values()))
    remaining = np.array([u.context or 1 for u in todo], dtype=float)
    estimates = remaining * float(seconds.sum() / sizes.sum())
    if len(set(sizes)) >= 3:
        slope, intercept = np.polyfit(sizes, seconds, 1)
        if slope > 0 and intercept >= 0:  # a fit from few noisy points can be nonsense
            estimates = intercept + slope * remaining
    return float(estimates.sum())


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m sd1job sweep``."""
    parser.add_argument(
        "--contexts",
        type=lambda text: [int(part) for part in text.split(",")],
        default=None,
        metavar="N,N,...",
        help="only the units of these context sizes (default: every unit of the config)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="units trained (and scored) at once, each in its own process (default 1; on CPU, the number of cores)",
    )


def run(args: argparse.Namespace, config: Config) -> int:
    """CLI entry: run the whole sweep."""
    if args.jobs < 1:
        raise SweepError(f"--jobs must be at least 1, got {args.jobs}")
    units = config.units()
    if args.contexts:
        unknown = sorted(set(args.contexts) - set(config.dataset.contexts))
        if unknown:
            raise UnitError(f"--contexts: {unknown} not in dataset.contexts {config.dataset.contexts}")
        units = [u for u in units if u.context in args.contexts]
    run_sweep(config, open_store(config.store), units, jobs=args.jobs)
    return 0


def run_sweep(config: Config, store: Store, units: list[Unit] | None = None, jobs: int = 1) -> SweepProgress:
    """Run data, every unit's training and scoring, exports and the report; skip finished work."""
    layout = RunLayout(config.run_id)
    progress = SweepProgress(units if units is not None else config.units(), jobs=jobs)
    log.info(progress.line(f"data: checking recordings in {store.url()}"))
    data.build_datasets(config, store)

    pending = []
    for unit in progress.units:
        if train.is_finished(store, layout, unit):
            progress.skipped.append(unit)
        else:
            pending.append(unit)
    if progress.skipped:
        log.info(progress.line(f"train: {len(progress.skipped)} unit(s) already trained, skipped"))
    # Longest first, so the pool ends evenly: stateful units, then windowed by context size.
    pending.sort(key=lambda u: (u.kind == "windowed", -(u.context or 0), u.seed))
    _run_units(config, pending, jobs, progress, "train", lambda u: train.train_unit(config, store, u))

    trained = [u for u in progress.units if u not in progress.failed and train.is_finished(store, layout, u)]
    to_score = [
        u for u in trained if not evaluate.is_finished(store, layout, u, config.eval, config.for_unit(u).recordings)
    ]
    if to_score:
        log.info(progress.line(f"eval: scoring {len(to_score)} unit(s)"))
        eval_failures = _run_units(
            config, to_score, jobs, None, "eval", lambda u: evaluate.score_units(config, store, [u], explicit=True)
        )
        progress.failed.update(eval_failures)
    for unit in trained:
        if export.exportable(config, unit) and unit not in progress.failed and not store.exists(layout.export(unit)):
            export.export_unit(store, layout, unit, config.recordings.sample_rate, config.run_id)

    if any(store.exists(layout.scores(u)) for u in progress.units):
        report.write_report(config, store)
    page = store.url(layout.eval_file(REPORT_HTML))
    if progress.failed:
        failed = ", ".join(f"{u.name} ({reason})" for u, reason in sorted(progress.failed.items()))
        raise SweepError(f"sweep finished with failed units: {failed}; rerun the sweep to retry them")
    log.info(progress.line(f"finished; report: {page}"))
    print(f"report: {page}", flush=True)
    return progress


def _run_units(
    config: Config,
    units: list[Unit],
    jobs: int,
    progress: SweepProgress | None,
    command: str,
    in_process: Callable[[Unit], object],
) -> dict[Unit, str]:
    """Run ``command`` for every unit (in this process, or ``jobs`` subprocesses at a time); return failures."""
    failures: dict[Unit, str] = {}
    lock = progress.lock if progress else threading.Lock()

    def say(message: str, level: int = logging.INFO) -> None:
        log.log(level, progress.line(message) if progress else message)

    def finished(unit: Unit, started: float, error: str | None) -> None:
        with lock:
            if error is not None:
                failures[unit] = error
                if progress:
                    progress.failed[unit] = error
            elif progress:
                progress.seconds[unit] = time.monotonic() - started
                progress.done.append(unit)
            state = f"failed ({error})" if error else "done"
            say(f"{command} {unit.name}: {state}", logging.ERROR if error else logging.INFO)

    if jobs == 1:
        for unit in units:
            started = time.monotonic()
            say(f"{command} {unit.name}: starting")
            try:
                in_process(unit)
            except UserError:
                raise
            except Exception as error:  # one unit's failure must not cost the others
                log.exception("%s %s failed", command, unit.name)
                finished(unit, started, f"{type(error).__name__}: {error}")
                continue
            finished(unit, started, None)
        return failures

    with tempfile.TemporaryDirectory(prefix="sd1job-sweep-") as tmp:
        config_file = Path(tmp) / "config.yaml"
        config_file.write_text(config.to_yaml())  # the effective config, environment overrides included

        def one(unit: Unit) -> None:
            started = time.monotonic()
            with lock:
                say(f"{command} {unit.name}: starting (own process)")
            arguments = [command, "--config", str(config_file), "--unit", unit.name]
            status = subprocess.call([sys.executable, "-m", "sd1job", *arguments], env=os.environ.copy())
            finished(unit, started, None if status == 0 else f"{command} exited with status {status}")

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(one, units))
    return failures
