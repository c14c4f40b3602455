"""Prometheus metrics of the job: one registry per process, served on ``metrics.port``, pushed to a Pushgateway.

The metric contract (shared with the Grafana dashboard and the Argo onExit step) is the
``sd1job_`` family below. Every series is labelled ``run`` (the config's run_id) and, for
training, by its unit: ``unit`` (``c440-s25``), ``kind`` (windowed | stateful), ``context`` (n, or
``none`` for a stateful unit) and ``seed``. Training pushes with ``pushadd`` under the grouping key
``{job="sd1job", run, unit}`` after every epoch and at the end; a Pushgateway that cannot
be reached only logs a warning (training goes on). The sweep's final status is pushed by the
``push-status`` command (sd1job/cluster/push_status.py, the Argo onExit step) under ``{job="sd1job-sweep",
run}``; there an unreachable Pushgateway is an error.

A pushed Counter or Histogram holds only what this process observed, so a resumed (or skipped)
training run replays the finished epochs of its history (``TrainingMetrics.replay``) before it pushes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, pushadd_to_gateway, start_http_server
from prometheus_client.metrics_core import Metric

from sd1job.errors import UserError
from sd1job.units import Unit

log = logging.getLogger(__name__)

TRAIN_JOB = "sd1job"
SWEEP_JOB = "sd1job-sweep"
SWEEP_STATUSES = ("Succeeded", "Failed", "Error")
PUSH_TIMEOUT_SECONDS = 10.0
# Epoch durations from half a second (a tiny CPU test) to half an hour (n=440 on a slow CPU).
EPOCH_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800)

# The one registry of this process: /metrics serves it, pushes send views of it.
REGISTRY = CollectorRegistry()
_TRAIN_LABELS = ("run", "unit", "arm", "kind", "context", "seed")

EPOCH_DURATION = Histogram(
    "sd1job_epoch_duration_seconds",
    "Wall time of one training epoch (training plus validation).",
    _TRAIN_LABELS,
    buckets=EPOCH_BUCKETS,
    registry=REGISTRY,
)
WINDOWS_PROCESSED = Counter(
    "sd1job_windows_processed",  # exposed as sd1job_windows_processed_total
    "Training targets seen: windows (windowed) or scored samples (stateful), all epochs, restored on resume.",
    _TRAIN_LABELS,
    registry=REGISTRY,
)
EPOCHS_COMPLETED = Gauge("sd1job_epochs_completed", "Epochs finished so far.", _TRAIN_LABELS, registry=REGISTRY)
EPOCHS_PLANNED = Gauge("sd1job_epochs_planned", "Maximum epochs (train.epochs).", _TRAIN_LABELS, registry=REGISTRY)
WINDOWS_PER_SECOND = Gauge(
    "sd1job_windows_per_second", "Training throughput of the last epoch.", _TRAIN_LABELS, registry=REGISTRY
)
TRAIN_ESR = Gauge("sd1job_train_esr", "Training ESR (loss) of the last epoch.", _TRAIN_LABELS, registry=REGISTRY)
VAL_ESR = Gauge("sd1job_val_esr", "Validation ESR of the last epoch.", _TRAIN_LABELS, registry=REGISTRY)
BEST_VAL_ESR = Gauge("sd1job_best_val_esr", "Best validation ESR so far.", _TRAIN_LABELS, registry=REGISTRY)
RECOVERIES = Counter(
    "sd1job_recoveries",  # exposed as sd1job_recoveries_total
    "Divergences recovered from: rolled back to the last epoch and retried at a lower learning rate.",
    _TRAIN_LABELS,
    registry=REGISTRY,
)
UNIT_FAILED = Gauge(
    "sd1job_unit_failed",
    "1 when the finished unit failed (outcome failed_to_learn or diverged), 0 when it learned.",
    (*_TRAIN_LABELS, "outcome"),
    registry=REGISTRY,
)
TRAIN_COMPLETED = Gauge(
    "sd1job_train_completed_timestamp_seconds",
    "Unix time at which this unit finished training.",
    _TRAIN_LABELS,
    registry=REGISTRY,
)
SWEEP_STATUS = Gauge("sd1job_sweep_status", "Final status of a sweep (value 1).", ("run", "status"), registry=REGISTRY)
SWEEP_FINISHED = Gauge(
    "sd1job_sweep_finished_timestamp_seconds", "Unix time at which the sweep ended.", ("run",), registry=REGISTRY
)

TRAIN_METRICS = (
    EPOCH_DURATION,
    WINDOWS_PROCESSED,
    EPOCHS_COMPLETED,
    EPOCHS_PLANNED,
    WINDOWS_PER_SECOND,
    TRAIN_ESR,
    VAL_ESR,
    BEST_VAL_ESR,
    RECOVERIES,
    UNIT_FAILED,
    TRAIN_COMPLETED,
)
SWEEP_METRICS = (SWEEP_STATUS, SWEEP_FINISHED)

_served_ports: set[int] = set()


class TelemetryError(UserError, RuntimeError):
    """The Pushgateway is not configured or cannot be reached (push-status only)."""


class _View:
    """The series of some metrics whose labels match, as a collector (what one push sends)."""

    def __init__(self, metrics: Iterable[Any], labels: dict[str, str]) -> None:
        self._metrics = tuple(metrics)
        self._labels = labels

    def collect(self) -> Iterator[Metric]:
        for metric in self._metrics:
            for family in metric.collect():
                samples = [s for s in family.samples if all(s.labels.get(k) == v for k, v in self._labels.items())]
                if samples:
                    selected = Metric(family.name, family.documentation, family.type, family.unit)
                    selected.samples = samples
                    yield selected


def serve(port: int) -> bool:
    """Serve the registry on ``http://0.0.0.0:<port>/metrics`` (once per process); False if it cannot bind."""
    if port == 0 or port in _served_ports:
        return port != 0
    try:
        start_http_server(port, registry=REGISTRY)
    except OSError as error:
        log.warning("metrics: cannot serve /metrics on port %d (%s); training goes on without it", port, error)
        return False
    _served_ports.add(port)
    log.info("metrics: serving /metrics on port %d", port)
    return True


def _push(gateway: str, job: str, grouping_key: dict[str, str], view: _View) -> None:
    pushadd_to_gateway(gateway, job=job, registry=view, grouping_key=grouping_key, timeout=PUSH_TIMEOUT_SECONDS)


class TrainingMetrics:
    """The training series of one unit of one run, with push after every update."""

    def __init__(self, run: str, unit: Unit, pushgateway: str | None = None) -> None:
        self.run = run
        self.unit = unit
        self.pushgateway = pushgateway
        context = str(unit.context) if unit.context is not None else "none"
        self._labels = (run, unit.name, unit.arm, unit.kind, context, str(unit.seed))
        self._push_failed = False

    @property
    def grouping_key(self) -> dict[str, str]:
        """The Pushgateway group of this unit."""
        return {"run": self.run, "unit": self.unit.name}

    def start(self, epochs_planned: int) -> None:
        """Reset this unit's series (a fresh start; a resume or a skip replays its epochs next)."""
        for metric in TRAIN_METRICS:
            metric.remove_by_labels(dict(zip(_TRAIN_LABELS, self._labels, strict=True)))
        EPOCHS_PLANNED.labels(*self._labels).set(epochs_planned)
        EPOCHS_COMPLETED.labels(*self._labels).set(0)
        WINDOWS_PROCESSED.labels(*self._labels).inc(0)
        RECOVERIES.labels(*self._labels).inc(0)

    def record_epoch(self, entry: dict[str, Any], targets: int, best_val_esr: float) -> None:
        """Account one finished epoch from its history entry (``epoch``, ``seconds``, ``loss``, ``val_loss``,
        ``windows_per_second``); ``targets`` trained per epoch; the best validation ESR so far."""
        labels = self._labels
        EPOCH_DURATION.labels(*labels).observe(entry["seconds"])
        WINDOWS_PROCESSED.labels(*labels).inc(targets)
        EPOCHS_COMPLETED.labels(*labels).set(entry["epoch"])
        WINDOWS_PER_SECOND.labels(*labels).set(entry["windows_per_second"])
        TRAIN_ESR.labels(*labels).set(entry["loss"])
        VAL_ESR.labels(*labels).set(entry["val_loss"])
        BEST_VAL_ESR.labels(*labels).set(best_val_esr)

    def record_recovery(self) -> None:
        """Account one recovery from a divergence."""
        RECOVERIES.labels(*self._labels).inc()

    def replay(
        self, epochs: list[dict[str, Any]], targets: int, epochs_planned: int, recoveries: list[Any] | None = None
    ) -> None:
        """Start over and account every epoch and recovery of a history (what a resumed or skipped unit did before)."""
        self.start(epochs_planned)
        best = math.inf
        for entry in epochs:
            best = min(best, entry["val_loss"])
            self.record_epoch(entry, targets, best)
        RECOVERIES.labels(*self._labels).inc(len(recoveries or []))

    def completed(self, timestamp: float | None = None, outcome: str = "learned") -> None:
        """Mark this unit finished, with its outcome (learned, failed_to_learn or diverged)."""
        TRAIN_COMPLETED.labels(*self._labels).set(time.time() if timestamp is None else timestamp)
        UNIT_FAILED.labels(*self._labels, outcome).set(0 if outcome == "learned" else 1)

    def push(self) -> bool:
        """Pushadd this unit's series if a Pushgateway is set; on failure warn (once per outage) and go on."""
        if not self.pushgateway:
            return False
        view = _View(TRAIN_METRICS, {"run": self.run, "unit": self.unit.name})
        try:
            _push(self.pushgateway, TRAIN_JOB, self.grouping_key, view)
        except (OSError, ValueError) as error:
            if not self._push_failed:
                log.warning("metrics: cannot push to %s (%s); training goes on", self.pushgateway, error)
            self._push_failed = True
            return False
        if self._push_failed:
            log.info("metrics: pushing to %s works again", self.pushgateway)
        self._push_failed = False
        return True


def push_sweep_status(pushgateway: str, run: str, status: str, timestamp: float | None = None) -> None:
    """Push a sweep's final status and end time under ``{job="sd1job-sweep", run}``; TelemetryError on failure."""
    if status not in SWEEP_STATUSES:
        raise TelemetryError(f"sweep status {status!r} is not one of {', '.join(SWEEP_STATUSES)}")
    for other in SWEEP_STATUSES:
        with contextlib.suppress(KeyError):
            SWEEP_STATUS.remove(run, other)
    SWEEP_STATUS.labels(run, status).set(1)
    SWEEP_FINISHED.labels(run).set(time.time() if timestamp is None else timestamp)
    try:
        _push(pushgateway, SWEEP_JOB, {"run": run}, _View(SWEEP_METRICS, {"run": run}))
    except (OSError, ValueError) as error:
        raise TelemetryError(f"cannot push the sweep status to the Pushgateway at {pushgateway}: {error}") from None
