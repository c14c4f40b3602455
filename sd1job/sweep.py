"""The local orchestrator: ``data -> train for every context -> eval``, the steps of the Argo DAG.

Each step is the same function the cluster's pods run, called in this process, and each skips
what is already finished: the data stage when its manifest matches the config and recordings,
a context whose model and history exist, and the eval stage when its results cover exactly the
finished models. A rerun after a crash or Ctrl-C therefore picks up where it stopped (a context
interrupted mid-training resumes from its last epoch checkpoint). A context that fails does not
stop the others; the sweep reports it and exits non-zero, and rerunning retries it.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass, field

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
    started: float = field(default_factory=time.monotonic)
    done: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    train_seconds: dict[int, float] = field(default_factory=dict)

    def eta_seconds(self) -> float | None:
        """Remaining training time, assuming time grows linearly with the context size."""
        if not self.train_seconds:
            return None
        per_sample = sum(self.train_seconds.values()) / sum(self.train_seconds)
        finished = set(self.done) | set(self.skipped) | set(self.failed)
        return per_sample * sum(n for n in self.contexts if n not in finished)

    def line(self, message: str) -> str:
        """A progress line: step count, elapsed time, ETA, message."""
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


def run(args: argparse.Namespace, config: Config) -> int:
    """CLI entry: run the whole sweep."""
    if args.contexts:
        unknown = sorted(set(args.contexts) - set(config.dataset.contexts))
        if unknown:
            raise SweepError(f"--contexts: {unknown} not in dataset.contexts {config.dataset.contexts}")
    run_sweep(config, open_store(config.store), contexts=args.contexts)
    return 0


def run_sweep(config: Config, store: Store, contexts: list[int] | None = None) -> SweepProgress:
    """Run data, every context's training, then eval; skip finished work; return what happened."""
    from sd1job import data_stage, evaluate, train

    contexts = contexts or list(config.dataset.contexts)
    progress = SweepProgress(contexts)
    layout = layout_for(config)
    log.info(progress.line(f"data: checking recordings in {store.url()}"))
    data_stage.run_data(config, store)
    for context in contexts:
        if train.is_finished(store, layout, context):
            progress.skipped.append(context)
            log.info(progress.line(f"train c{context}: already finished, skipped"))
            continue
        log.info(progress.line(f"train c{context}: starting"))
        started = time.monotonic()
        try:
            history = train.train_context(config, store, context)
        except UserError:
            raise
        except Exception as error:  # one context's failure must not cost the others
            log.exception("train c%d failed", context)
            progress.failed[context] = f"{type(error).__name__}: {error}"
            continue
        progress.train_seconds[context] = time.monotonic() - started
        progress.done.append(context)
        log.info(
            progress.line(
                f"train c{context}: done, {history.get('epochs_run')} epochs, "
                f"best val ESR {history.get('best_val_loss', float('nan')):.4f}"
            )
        )
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
