"""The local orchestrator: ``data -> train for every context -> eval``, the steps of the Argo DAG.

Each step is the same function the cluster's pods run, and each skips what is already finished:
the data stage when its manifest matches the config and recordings, a context whose model and
history exist, and the eval stage when its results cover exactly the finished models. A rerun
after a crash or Ctrl-C therefore picks up where it stopped (a context interrupted mid-training
resumes from its last epoch checkpoint). A context that fails does not stop the others; the
sweep evaluates what trained, reports the failures and exits non-zero, and a rerun retries them.

``--jobs N`` trains N contexts at once, each in its own ``python -m sd1job train`` process (as
the cluster's pods do). On a CPU each trainer uses one thread by default (``train.threads: 0``),
so on a 2-core machine ``--jobs 2`` keeps both cores busy: one single-threaded trainer does more
work per CPU-second than one trainer spread over two cores (``bench/bench_train.py``).
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sd1job.config import Config
from sd1job.errors import UserError
from sd1job.layout import layout_for
from sd1job.store import Store, open_store

log = logging.getLogger(__name__)


class SweepError(UserError, RuntimeError):
    """Some contexts of the sweep failed."""


@dataclass
class SweepProgress:
    """What the sweep has done, for the progress lines and the final summary."""

    contexts: list[int]
    jobs: int = 1
    started: float = field(default_factory=time.monotonic)
    done: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    train_seconds: dict[int, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def eta_seconds(self) -> float | None:
        """Remaining training time: a fixed cost plus a cost linear in n, fitted to the contexts done."""
        if not self.train_seconds:
            return None
        sizes = np.array(list(self.train_seconds), dtype=float)
        seconds = np.array(list(self.train_seconds.values()))
        finished = set(self.done) | set(self.skipped) | set(self.failed)
        remaining = np.array([n for n in self.contexts if n not in finished], dtype=float)
        estimates = remaining * float(seconds.sum() / sizes.sum())  # proportional to n
        if len(sizes) >= 3 and np.ptp(sizes) > 0:
            slope, intercept = np.polyfit(sizes, seconds, 1)
            if slope > 0 and intercept >= 0:  # a fit from few noisy points can be nonsense
                estimates = intercept + slope * remaining
        return float(estimates.sum()) / self.jobs

    def line(self, message: str) -> str:
        """A progress line: contexts finished, elapsed time, ETA, message."""
        finished = len(self.done) + len(self.skipped) + len(self.failed)
        elapsed = time.monotonic() - self.started
        eta = self.eta_seconds()
        eta_text = f", ~{_duration(eta)} of training left" if eta is not None and finished < len(self.contexts) else ""
        return f"[sweep {finished}/{len(self.contexts)} contexts, {_duration(elapsed)} elapsed{eta_text}] {message}"


def _duration(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60}m{whole % 60:02d}s" if whole >= 60 else f"{whole}s"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m sd1job sweep``."""
    parser.add_argument(
        "--contexts",
        type=lambda text: [int(part) for part in text.split(",")],
        default=None,
        metavar="N,N,...",
        help="train only these context sizes (default: dataset.contexts)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="contexts trained at once, each in its own process (default 1; on CPU, the number of cores)",
    )


def run(args: argparse.Namespace, config: Config) -> int:
    """CLI entry: run the whole sweep."""
    if args.contexts:
        unknown = sorted(set(args.contexts) - set(config.dataset.contexts))
        if unknown:
            raise SweepError(f"--contexts: {unknown} not in dataset.contexts {config.dataset.contexts}")
    if args.jobs < 1:
        raise SweepError(f"--jobs must be at least 1, got {args.jobs}")
    run_sweep(config, open_store(config.store), contexts=args.contexts, jobs=args.jobs)
    return 0


def run_sweep(config: Config, store: Store, contexts: list[int] | None = None, jobs: int = 1) -> SweepProgress:
    """Run data, every context's training, then eval; skip finished work; return what happened."""
    from sd1job import data_stage, evaluate, train

    progress = SweepProgress(contexts or list(config.dataset.contexts), jobs=jobs)
    layout = layout_for(config)
    log.info(progress.line(f"data: checking recordings in {store.url()}"))
    data_stage.run_data(config, store)
    pending = []
    for context in progress.contexts:
        if train.is_finished(store, layout, context):
            progress.skipped.append(context)
            log.info(progress.line(f"train c{context}: already finished, skipped"))
        else:
            pending.append(context)
    if jobs == 1:
        for context in pending:
            _train_in_process(config, store, context, progress)
    else:
        _train_in_subprocesses(config, pending, progress, jobs)

    if evaluate.is_done(config, store):
        log.info(progress.line("eval: results already cover every finished model, skipped"))
    else:
        log.info(progress.line("eval: scoring every finished context"))
        evaluate.run_eval(config, store)
    report = store.url(layout.eval_file("report.html"))
    if progress.failed:
        failed = ", ".join(f"c{n} ({reason})" for n, reason in sorted(progress.failed.items()))
        raise SweepError(f"sweep finished with failed contexts: {failed}; rerun the sweep to retry them")
    log.info(progress.line(f"finished; report: {report}"))
    print(f"report: {report}")
    return progress


def _train_in_process(config: Config, store: Store, context: int, progress: SweepProgress) -> None:
    from sd1job import train

    log.info(progress.line(f"train c{context}: starting"))
    started = time.monotonic()
    try:
        history = train.train_context(config, store, context)
    except UserError:
        raise
    except Exception as error:  # one context's failure must not cost the others
        log.exception("train c%d failed", context)
        progress.failed[context] = f"{type(error).__name__}: {error}"
        return
    _finished(progress, context, time.monotonic() - started, history)


def _finished(progress: SweepProgress, context: int, seconds: float, history: dict) -> None:
    with progress.lock:
        progress.train_seconds[context] = seconds
        progress.done.append(context)
        log.info(
            progress.line(
                f"train c{context}: done, {history.get('epochs_run')} epochs, "
                f"best val ESR {history.get('best_val_loss', float('nan')):.4f}"
            )
        )


def _train_in_subprocesses(config: Config, contexts: list[int], progress: SweepProgress, jobs: int) -> None:
    """Train ``contexts`` with up to ``jobs`` `python -m sd1job train` processes at a time."""
    store = open_store(config.store)
    layout = layout_for(config)
    with tempfile.TemporaryDirectory(prefix="sd1job-sweep-") as tmp:
        config_file = Path(tmp) / "config.yaml"
        config_file.write_text(config.to_yaml())  # the effective config, environment overrides included

        def one(context: int) -> None:
            with progress.lock:
                log.info(progress.line(f"train c{context}: starting (own process)"))
            started = time.monotonic()
            command = [sys.executable, "-m", "sd1job", "train", "--config", str(config_file), "--context", str(context)]
            status = subprocess.call(command, env=os.environ.copy())
            if status != 0:
                with progress.lock:
                    progress.failed[context] = f"train exited with status {status}"
                    log.error(progress.line(f"train c{context}: failed (exit status {status})"))
                return
            _finished(progress, context, time.monotonic() - started, store.read_json(layout.history(context)))

        # Largest first: the longest jobs start early, so the pool ends evenly.
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(one, sorted(contexts, reverse=True)))
