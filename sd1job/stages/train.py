"""The ``train`` stage: one unit (model kind, context, seed), resumable, instrumented.

``python -m sd1job train --config FILE --unit c440-s25`` (or ``--context 440 [--seed 25]``, or
``--kind stateful [--seed S]``; without ``--seed`` the matching seeds train in turn) reads what the
data stage wrote and trains the unit's model with Adam and the ESR loss, early stopping on the
validation loss with the best weights kept. Under ``runs/<run_id>/models/<unit>/`` it writes
``model.keras``, ``loss.png``, ``summary.json`` and, last, ``history.json``: the unit is trained once
the model and the history exist, and a trained unit is skipped unless ``--force``.

After every epoch one object, ``checkpoint.npz`` (weights, Adam state, best weights, early
stopping, history so far), replaces the last one atomically; rerunning the same command resumes
from it (the history's ``resumed_at_epochs`` lists where). Seeds: Python, numpy and TensorFlow
from the unit's seed; on CPU the same config gives the same weights.
"""

from __future__ import annotations

import argparse
import logging
import math
import platform
import sys
import time
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from sd1job import __version__, dataset
from sd1job.checkpoint import (
    CHECKPOINT_VERSION,
    Checkpoint,
    EarlyStopping,
    decode_checkpoint,
    encode_checkpoint,
    still_improving,
)
from sd1job.config import Config, ModelConfig, TrainConfig
from sd1job.errors import UserError
from sd1job.hashing import digest_arrays, fingerprint
from sd1job.health import (
    RECOVERY_LR_FACTOR,
    STOP_DIVERGED,
    Divergence,
    DivergenceGuard,
    outcome,
    recovery_record,
)
from sd1job.layout import RunLayout
from sd1job.model import flops_per_sample, recurrent_layer
from sd1job.report.plots import loss_curve
from sd1job.scores import ESR_EPSILON
from sd1job.stages.options import add_unit_options, chosen_units
from sd1job.store import Store, open_store
from sd1job.telemetry import TrainingMetrics, serve
from sd1job.training import StatefulFitter, WindowedFitter, configure_runtime, model_bytes, uses_xla
from sd1job.units import Unit
from sd1job.wavenet_presets import preset_spec
from sd1job.wavenet_training import WavenetFitter, wavenet_segments

log = logging.getLogger(__name__)

STOP_EARLY = "early_stopping"
STOP_MAX_EPOCHS = "max_epochs"
STOP_TIME_BUDGET = "time_budget"
# Settings that change how fast training runs or how long, not what an epoch computes: a
# checkpoint made with other values is still resumed (epochs and patience only extend or cut).
_SPEED_AND_LENGTH = {"epochs", "patience", "max_train_seconds", "max_recoveries", "jit_compile", "threads", "repeats"}


class TrainError(UserError, RuntimeError):
    """Training cannot start or went wrong in a way the user can fix (bad positions, divergence)."""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m sd1job train``."""
    add_unit_options(parser, required=True)
    parser.add_argument(
        "--force", action="store_true", help="retrain from scratch even if the unit is trained or checkpointed"
    )


def run(args: argparse.Namespace, config: Config) -> int:
    """CLI entry: train the chosen units in turn."""
    store = open_store(config.store)
    progress_bar = sys.stdout.isatty() and not args.quiet
    for unit in chosen_units(args, config):
        train_unit(config, store, unit, force=args.force, progress_bar=progress_bar)
    return 0


# --- what decides a unit's weights -------------------------------------------------------------


def stateful_lr_decay(train: TrainConfig, model: ModelConfig) -> float:
    """The stateful model's per-epoch learning-rate decay: its own if set, else the windowed model's."""
    return train.lr_decay if model.stateful.lr_decay is None else model.stateful.lr_decay


def trained_settings(unit: Unit, train: TrainConfig, model: ModelConfig) -> dict[str, Any]:
    """The settings that decide what an epoch computes (recorded in history.json, compared on a skip)."""
    settings = train.model_dump(exclude=_SPEED_AND_LENGTH)
    settings["seed"] = unit.seed
    if not settings["lr_warmup_updates"]:  # recorded only when used: older units keep their fingerprints
        settings.pop("lr_warmup_updates")
    if unit.kind == "stateful":
        # the decay it trains with is recorded as lr_decay: a unit's fingerprint does not depend on where it is set
        settings["stateful"] = model.stateful.model_dump(exclude={"lr_decay"})
        settings["lr_decay"] = stateful_lr_decay(train, model)
        settings.pop("batch_size")  # the windowed model's batch of windows
    if unit.kind == "wavenet":  # its own recipe replaces the LSTM's units, rate, decay and batch
        settings["wavenet"] = model.wavenet.model_dump(exclude={"presets"}) | {"preset": unit.preset}
        for name in ("lstm_units", "learning_rate", "lr_decay", "batch_size"):
            settings.pop(name)
    elif model.cell != "lstm":  # only when not the default: an LSTM unit's fingerprint is as before the option
        settings["cell"] = model.cell
    return settings


def check_positions(split: dataset.Split, context: int, length: int, source: str) -> None:
    """TrainError unless every position is a full window of ``context`` samples inside the audio."""
    for name, positions in (("train", split.train), ("val", split.val)):
        if positions.size == 0:
            raise TrainError(f"{source}: no {name} positions")
        low, high = int(positions.min()), int(positions.max())
        if low < context - 1 or high >= length:
            raise TrainError(
                f"{source}: {name} positions span {low}..{high}, outside {context - 1}..{length - 1} for "
                f"context {context}; rerun the data stage with this config"
            )


def is_finished(store: Store, layout: RunLayout, unit: Unit) -> bool:
    """Whether the unit is trained (history.json is written last, after model.keras)."""
    return store.exists(layout.history(unit)) and store.exists(layout.model(unit))


# --- one unit's training state ------------------------------------------------------------------


@dataclass
class UnitRun:
    """The state of one unit's training: history, early stopping, best weights, the divergence guard and its
    recoveries; checkpointed every epoch.

    A divergence (``sd1job.health``) abandons the epoch in flight: the model and the optimiser go back
    to the last finished epoch (what the checkpoint holds), the learning rate is halved, and the epoch
    is trained again, at most ``max_recoveries`` times; then the unit stops as ``diverged`` with the
    best weights it had."""

    unit: Unit
    fitter: WindowedFitter | StatefulFitter | WavenetFitter
    fingerprint: str
    patience: int
    epochs_planned: int
    time_budget: float | None
    max_recoveries: int
    metrics: TrainingMetrics
    store: Store
    checkpoint_key: str

    def __post_init__(self) -> None:
        self.history: list[dict[str, Any]] = []
        self.early = EarlyStopping(self.patience)
        self.best_weights: list[np.ndarray] = []
        self.resumed_at: list[int] = []
        self.guard = DivergenceGuard()
        self.recoveries: list[dict[str, Any]] = []
        self.diverged = False
        self.divergence: Divergence | None = None
        self.last_good = self.checkpoint()

    @property
    def epochs_done(self) -> int:
        """Epochs finished so far (including those before a resume)."""
        return len(self.history)

    @property
    def out_of_time(self) -> bool:
        """Whether the training time so far (every epoch with its validation, resumes included) has used the budget."""
        spent = sum(entry["seconds"] for entry in self.history)
        return self.time_budget is not None and spent >= self.time_budget

    @property
    def stop_reason(self) -> str:
        """Why training ended (or would end now)."""
        if self.diverged:
            return STOP_DIVERGED
        if self.early.should_stop:
            return STOP_EARLY
        return STOP_TIME_BUDGET if self.out_of_time else STOP_MAX_EPOCHS

    def resume(self, checkpoint: Checkpoint) -> None:
        """Continue from a checkpoint: weights, Adam state, early stopping, guard, history; replay the metrics."""
        self._restore(checkpoint)
        state = checkpoint.state
        self.history = list(state["history"])
        self.early = EarlyStopping.from_json(self.patience, state["early_stopping"])
        self.best_weights = checkpoint.best_weights
        self.resumed_at = [*state.get("resumed_at", []), self.epochs_done]
        self.guard = DivergenceGuard.from_json(state.get("guard"))
        self.recoveries = list(state.get("recoveries", []))
        self.fitter.schedule.scale = float(state.get("learning_rate_scale", 1.0))
        self.last_good = checkpoint
        self.metrics.replay(self.history, self.fitter.train_targets, self.epochs_planned, self.recoveries)

    def _restore(self, checkpoint: Checkpoint) -> None:
        """Put the checkpoint's weights and optimiser state into the model."""
        self.fitter.model.set_weights(checkpoint.weights)
        variables = self.fitter.optimizer_variables()
        if len(variables) != len(checkpoint.optimizer):
            raise TrainError("checkpoint optimizer state does not match the model; rerun with --force")
        for variable, value in zip(variables, checkpoint.optimizer, strict=True):
            variable.assign(value)

    def checkpoint(self) -> Checkpoint:
        """The state after the last finished epoch."""
        state = {
            "version": CHECKPOINT_VERSION,
            "fingerprint": self.fingerprint,
            "unit": self.unit.name,
            "epoch": self.epochs_done,
            "early_stopping": self.early.to_json(),
            "history": self.history,
            "resumed_at": self.resumed_at,
            "guard": self.guard.to_json(),
            "recoveries": self.recoveries,
            "learning_rate_scale": self.fitter.schedule.scale,
        }
        optimizer = [np.asarray(v.numpy()) for v in self.fitter.optimizer_variables()]
        return Checkpoint(state, self.fitter.model.get_weights(), optimizer, self.best_weights)

    def _save_checkpoint(self) -> None:
        self.last_good = self.checkpoint()
        self.store.write_bytes(self.checkpoint_key, encode_checkpoint(self.last_good))

    def train(self, progress_bar: bool = False) -> None:
        """Fit until early stopping, the epoch cap or the time budget; recover from divergences on the way."""
        while self.epochs_done < self.epochs_planned and self.stop_reason == STOP_MAX_EPOCHS:
            self.divergence = None
            self.fitter.fit(self.epochs_done, self.epochs_planned, self.on_epoch, self.on_update, progress_bar)
            if self.divergence is None or not self.recover(self.divergence):
                return

    def on_update(self, epoch: int, step: int, loss: float) -> bool:
        """Watch one update's loss; True (abandon the epoch) when the guard sees a divergence."""
        self.divergence = self.guard.observe(epoch, step, loss)
        return self.divergence is not None

    def recover(self, divergence: Divergence) -> bool:
        """Roll back to the last finished epoch at a lower learning rate; False (diverged) when out of recoveries."""
        self._restore(self.last_good)  # the weights in flight may be NaN
        self.guard.restart()
        if len(self.recoveries) >= self.max_recoveries:
            self.diverged = True
            log.error(
                "train %s: %s; no recovery left (train.max_recoveries %d): stopping as diverged",
                self.unit.name,
                divergence.describe(),
                self.max_recoveries,
            )
            return False
        self.fitter.schedule.scale *= RECOVERY_LR_FACTOR
        record = recovery_record(divergence, self.fitter.schedule.scale)
        record["learning_rate"] = self.fitter.schedule(divergence.epoch - 1)
        self.recoveries.append(record)
        self.metrics.record_recovery()
        self._save_checkpoint()
        self.metrics.push()
        log.warning(
            "train %s: %s; rolled back to epoch %d, learning rate x%g (%.3g), recovery %d of %d",
            self.unit.name,
            divergence.describe(),
            self.epochs_done,
            self.fitter.schedule.scale,
            record["learning_rate"],
            len(self.recoveries),
            self.max_recoveries,
        )
        return True

    def on_epoch(self, epoch: int, logs: dict[str, float], seconds: float, train_seconds: float) -> bool:
        """Record a finished epoch, checkpoint it, report it; True when training should stop here."""
        entry = {
            "epoch": epoch,
            **{name: float(logs[name]) for name in ("loss", "val_loss", "mse", "mae", "val_mse", "val_mae")},
            "seconds": round(seconds, 4),
            "train_seconds": round(train_seconds, 4),
            "windows_per_second": round(self.fitter.train_targets / max(train_seconds, 1e-9), 1),
            "learning_rate": self.fitter.schedule(epoch - 1),
        }
        if not (math.isfinite(entry["loss"]) and math.isfinite(entry["val_loss"])):
            # The last updates blew the weights up after the guard's last look: a divergence like any other.
            self.divergence = Divergence("non_finite", epoch, 0, None, None)
            return True
        self.divergence = self.guard.end_epoch(epoch)
        if self.divergence is not None:
            return True
        if self.early.update(epoch, entry["val_loss"]):
            self.best_weights = self.fitter.model.get_weights()
        self.history.append(entry)
        self.metrics.record_epoch(entry, self.fitter.train_targets, self.early.best_val_loss)
        self._save_checkpoint()
        log.info(
            "train %s epoch %d/%d: loss %.5f val_loss %.5f | %.1f s, %s targets/s | best %.5f (epoch %d)",
            self.unit.name,
            epoch,
            self.epochs_planned,
            entry["loss"],
            entry["val_loss"],
            entry["seconds"],
            f"{entry['windows_per_second']:,.0f}",
            self.early.best_val_loss,
            self.early.best_epoch,
        )
        self.metrics.push()
        return self.early.should_stop or self.out_of_time

    def final_history(self, settings: dict[str, Any]) -> dict[str, Any]:
        """history.json: per-epoch entries, the run's totals, its recoveries and whether it learned."""
        total = sum(e["seconds"] for e in self.history)
        best = self.early.best_val_loss if math.isfinite(self.early.best_val_loss) else None
        result = outcome(self.stop_reason, best, self.fitter.trivial_val_esr)
        return {
            "unit": self.unit.name,
            "kind": self.unit.kind,
            "context": self.unit.context,
            "seed": self.unit.seed,
            "parameter_count": int(self.fitter.model.count_params()),
            "lstm_units": _lstm_units(self.fitter.model),
            "cell": _cell(self.fitter.model),
            "preset": self.unit.preset,
            "train_windows": self.fitter.train_targets,
            "val_windows": self.fitter.val_targets,
            "epochs": self.history,
            "best_epoch": self.early.best_epoch,
            "best_val_loss": best,
            "epochs_run": self.epochs_done,
            "epochs_planned": self.epochs_planned,
            "total_seconds": round(total, 4),
            "seconds_per_epoch": round(total / max(self.epochs_done, 1), 4),
            "stop_reason": self.stop_reason,
            "still_improving": still_improving([e["val_loss"] for e in self.history], self.early.should_stop),
            "resumed_at_epochs": self.resumed_at,
            "recoveries": self.recoveries,
            "learning_rate_scale": self.fitter.schedule.scale,
            "reference_val_esr": self.fitter.trivial_val_esr,
            "outcome": result,
            "failed_to_learn": result != "learned",
            "fingerprint": self.fingerprint,
            "train_settings": settings,
            "finished_at": time.time(),
        }


# --- the stage ---------------------------------------------------------------------------------


def train_unit(
    config: Config, store: Store, unit: Unit, *, force: bool = False, progress_bar: bool = False
) -> dict[str, Any]:
    """Train one unit: skip it if trained, else resume or start, fit, write its outputs; return history.json.

    The unit trains with its arm's settings (``config.for_unit``) on its arm's dataset."""
    layout = RunLayout(config.run_id, config.data_variant(unit))
    config = config.for_unit(unit)
    train = config.train
    settings = trained_settings(unit, train, config.model)
    metrics = TrainingMetrics(config.run_id, unit, config.metrics.pushgateway)
    if config.metrics.port:
        serve(config.metrics.port)
    if force:
        clear_unit(store, layout, unit)
    elif is_finished(store, layout, unit):
        return skip_trained(store, layout, unit, settings, metrics, train.epochs)

    # Op determinism follows the configured switch, not the unit's kind, so that one process training
    # a stateful then a windowed unit gives the windowed unit the XLA step it gets in its own pod.
    runtime = configure_runtime(train.threads, train.jit_compile)  # before the first TensorFlow op
    xla = uses_xla(unit.kind, train.jit_compile)
    keras.utils.set_random_seed(unit.seed)
    fitter, data_digest = build_fitter(store, layout, unit, train, config.model, config.recordings.sample_rate)
    unit_fingerprint = fingerprint(
        {"unit": unit.name, "train": settings, "data": data_digest, "checkpoint_version": CHECKPOINT_VERSION}
    )
    state = UnitRun(
        unit,
        fitter,
        unit_fingerprint,
        train.patience,
        train.epochs,
        train.max_train_seconds,
        train.max_recoveries,
        metrics,
        store,
        layout.checkpoint(unit),
    )
    metrics.start(train.epochs)
    checkpoint = load_checkpoint(store, layout.checkpoint(unit), unit_fingerprint)
    if checkpoint is not None:
        state.resume(checkpoint)
        log.info(
            "train %s: resuming after epoch %d (best val_loss %.5f at epoch %d)",
            unit.name,
            state.epochs_done,
            state.early.best_val_loss,
            state.early.best_epoch,
        )
    log.info(
        "train %s: %d training / %d validation targets, %d parameters, %s, %d/%d threads, XLA %s",
        unit.name,
        fitter.train_targets,
        fitter.val_targets,
        fitter.model.count_params(),
        runtime["device"],
        runtime["intra_op_threads"],
        runtime["inter_op_threads"],
        "on" if xla else "off",
    )

    state.train(progress_bar)
    if state.best_weights:
        fitter.model.set_weights(state.best_weights)
    history = state.final_history(settings)
    runtime["jit_compile"] = xla
    write_outputs(store, layout, unit, fitter, history, runtime, config.model_dump(mode="json"))
    metrics.completed(history["finished_at"], history["outcome"])
    metrics.push()
    log.log(
        logging.INFO if history["outcome"] == "learned" else logging.WARNING,
        "train %s: done, %d epochs (%s), best val_loss %s at epoch %d, %.1f s/epoch, %s -> %s",
        unit.name,
        history["epochs_run"],
        history["stop_reason"],
        _loss_text(history["best_val_loss"]),
        history["best_epoch"],
        history["seconds_per_epoch"],
        outcome_text(history),
        store.url(layout.unit_dir(unit)),
    )
    return history


def _loss_text(value: float | None) -> str:
    return "none" if value is None else f"{value:.5f}"


def outcome_text(history: dict[str, Any]) -> str:
    """``learned`` or what went wrong, with the recoveries it took (for logs and the loss plot's title)."""
    recoveries = len(history.get("recoveries", []))
    after = f" after {recoveries} recover{'y' if recoveries == 1 else 'ies'}" if recoveries else ""
    reference = history.get("reference_val_esr")
    if history.get("outcome") == "failed_to_learn" and reference is not None:
        return f"FAILED TO LEARN (trivial model: val ESR {reference:.3g}){after}"
    return {"diverged": "DIVERGED", "failed_to_learn": "FAILED TO LEARN"}.get(
        history.get("outcome", ""), "learned"
    ) + after


def skip_trained(
    store: Store,
    layout: RunLayout,
    unit: Unit,
    settings: dict[str, Any],
    metrics: TrainingMetrics,
    epochs_planned: int,
) -> dict[str, Any]:
    """A trained unit: say so, warn if it was trained with other settings, re-push its final metrics."""
    history = store.read_json(layout.history(unit))
    log.info(
        "train %s: already trained (%d epochs, best val_loss %s at epoch %d) at %s; use --force to retrain",
        unit.name,
        history.get("epochs_run", 0),
        _loss_text(history.get("best_val_loss")),
        history.get("best_epoch", 0),
        store.url(layout.unit_dir(unit)),
    )
    recorded = history.get("train_settings", {})
    if "cell" in settings or "cell" in recorded:  # absent: the LSTM
        settings, recorded = {"cell": "lstm", **settings}, {"cell": "lstm", **recorded}
    changed = sorted(k for k, v in settings.items() if k in recorded and recorded[k] != v)
    if changed:
        log.warning(
            "train %s: trained with other settings (%s differ from the config); use --force to retrain",
            unit.name,
            ", ".join(changed),
        )
    metrics.replay(
        history.get("epochs", []), int(history.get("train_windows", 0)), epochs_planned, history.get("recoveries")
    )
    metrics.completed(history.get("finished_at"), history.get("outcome", "learned"))
    metrics.push()
    return history


def _lstm_units(model: keras.Model) -> int | None:
    """The LSTM's (or GRU's) size, or None for a model without one (the WaveNet)."""
    layer = recurrent_layer(model)
    return int(layer.units) if layer is not None else None


def _cell(model: keras.Model) -> str | None:
    """``lstm`` or ``gru``, or None for a model without a recurrent layer (the WaveNet)."""
    layer = recurrent_layer(model)
    return layer.name if layer is not None else None


def build_fitter(
    store: Store, layout: RunLayout, unit: Unit, train: TrainConfig, model: ModelConfig, sample_rate: int
) -> tuple[WindowedFitter | StatefulFitter | WavenetFitter, str]:
    """The unit's fitter on the data stage's outputs, and a digest of the data it trains on."""
    dry, wet = dataset.load_training_audio(store, layout)
    stateful = model.stateful
    if unit.kind == "wavenet":
        assert unit.preset is not None
        spec = preset_spec(unit.preset)
        pieces = wavenet_segments(
            len(dry), model.wavenet.segment_samples, spec.receptive_field, _validation_fraction(store, layout)
        )
        wavenet = WavenetFitter(
            dry,
            wet,
            pieces,
            spec,
            model.wavenet,
            seed=unit.seed,
            clipnorm=train.clipnorm,
            warmup_updates=train.lr_warmup_updates,
        )
        return wavenet, digest_arrays([dry, wet, pieces.starts, np.array([pieces.val_start])])
    common = {
        "units": train.lstm_units,
        "learning_rate": train.learning_rate,
        "lr_decay": train.lr_decay,
        "clipnorm": train.clipnorm,
        "warmup_updates": train.lr_warmup_updates,
        "cell": model.cell,
    }
    if unit.kind == "stateful":
        common["lr_decay"] = stateful_lr_decay(train, model)
        segments = dataset.stateful_segments(
            len(dry),
            round(stateful.segment_seconds * sample_rate),
            _validation_fraction(store, layout),
            stateful.warmup_samples,
        )
        fitter: WindowedFitter | StatefulFitter = StatefulFitter(dry, wet, segments, stateful, seed=unit.seed, **common)
        return fitter, digest_arrays([dry, wet, segments.starts, np.array([segments.val_start])])
    assert unit.context is not None
    split = dataset.load_split(store, layout, unit.context)
    check_positions(split, unit.context, len(dry), store.url(layout.positions(unit.context)))
    fitter = WindowedFitter(
        dry,
        wet,
        split,
        unit.context,
        batch_size=train.batch_size,
        seed=unit.seed,
        jit_compile=train.jit_compile,
        **common,
    )
    return fitter, digest_arrays([dry, wet, split.train, split.val])


def _validation_fraction(store: Store, layout: RunLayout) -> float:
    """The held-out fraction the data stage recorded (the stateful model's blocked split uses it)."""
    manifest = store.read_json(layout.manifest)
    return float(manifest["val_fraction"])


def load_checkpoint(store: Store, key: str, expected_fingerprint: str) -> Checkpoint | None:
    """The unit's checkpoint if it exists, is readable and was made with the same data and settings."""
    if not store.exists(key):
        return None
    try:
        checkpoint = decode_checkpoint(store.read_bytes(key), store.url(key))
    except (UserError, ValueError, KeyError) as error:
        log.warning("ignoring an unreadable checkpoint %s (%s); starting over", store.url(key), error)
        return None
    if checkpoint.state.get("fingerprint") != expected_fingerprint:
        log.warning(
            "ignoring checkpoint %s: it was made with other data or training settings; starting over", store.url(key)
        )
        return None
    return checkpoint


def clear_unit(store: Store, layout: RunLayout, unit: Unit) -> None:
    """Remove a unit's outputs, history.json first (so it stops counting as trained at once)."""
    store.delete(layout.history(unit))
    store.delete_prefix(layout.unit_dir(unit))


def _versions() -> dict[str, str]:
    return {
        "sd1job": __version__,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
    }


def write_outputs(
    store: Store,
    layout: RunLayout,
    unit: Unit,
    fitter: WindowedFitter | StatefulFitter | WavenetFitter,
    history: dict[str, Any],
    runtime: dict[str, Any],
    config_record: dict[str, Any],
) -> None:
    """Write model.keras, loss.png, summary.json, then history.json (the 'trained' mark), then drop the checkpoint."""
    store.write_bytes(layout.model(unit), model_bytes(fitter.model))
    title = f"{unit.name}: best val ESR {_loss_text(history['best_val_loss'])} at epoch {history['best_epoch']}"
    if history["outcome"] != "learned" or history["recoveries"]:
        title += f"\n{outcome_text(history)}"
    store.write_bytes(layout.loss_plot(unit), loss_curve(history, title))
    units = history["lstm_units"]
    cell = history["cell"] or "lstm"
    summary = {
        "unit": unit.name,
        "parameter_count": history["parameter_count"],
        "lstm_units": units,
        "esr_epsilon": ESR_EPSILON,
        "train_windows": history["train_windows"],
        "val_windows": history["val_windows"],
        "flops_per_sample_training": flops_per_sample(unit.kind, unit.context, units, True, unit.preset, cell),
        "flops_per_sample_inference": flops_per_sample(unit.kind, unit.context, units, preset=unit.preset, cell=cell),
        "runtime": runtime,
        "config": config_record,
        "versions": _versions(),
    }
    store.write_json(layout.summary(unit), summary)
    store.write_json(layout.history(unit), history)
    store.delete(layout.checkpoint(unit))
