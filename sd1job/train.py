"""The ``train`` stage: the seed's LSTM for one context size, resumable, instrumented and fast.

``python -m sd1job train --config FILE --context N`` reads the training audio and the window
positions the data stage wrote, trains ``build_model`` (LSTM -> Dense, ESR loss, Adam) with
early stopping on the validation loss, and writes under ``runs/<run_id>/models/c<N>/``:
``model.keras`` (the best weights), ``loss.png``, ``summary.json`` and, last, ``history.json``;
a context counts as finished once ``model.keras`` and ``history.json`` exist, and a finished
context is skipped unless ``--force``.

Windows are built on the fly: a tf.data pipeline gathers ``dry[t-n+1 .. t]`` for a batch of
positions from the one 1-D signal, so memory does not grow with n. Each epoch's order is a
stateless shuffle seeded by ``(train.seed, epoch)``, so a resumed run sees exactly the batches an
uninterrupted run would have seen. After every epoch one object, ``checkpoint/checkpoint.npz``
(weights, Adam state, best weights, and a JSON state: epoch, early-stopping state, history so
far), is written atomically; rerunning the same command resumes from it.

Speed: XLA (``train.jit_compile``) and, on CPU, one intra-op and one inter-op thread
(``train.threads: 0``) are about twice as fast as Keras' defaults at n=440 on two cores
(bench/bench_train.py). Thread settings only take effect before TensorFlow starts its runtime,
so ``configure_runtime`` runs before any TensorFlow op is created.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from sd1job import __version__, dataset
from sd1job.config import Config
from sd1job.data_stage import load_split, load_training_audio
from sd1job.errors import UserError
from sd1job.layout import RunLayout, layout_for
from sd1job.model import ESR_EPSILON, build_model
from sd1job.report.loss_plot import plot_loss_curve
from sd1job.store import Store, join_key, open_store
from sd1job.telemetry import TrainingMetrics, serve

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.npz"
CHECKPOINT_VERSION = 1
STOP_EARLY = "early_stopping"
STOP_MAX_EPOCHS = "max_epochs"
# Settings that change what training computes (not how fast): a checkpoint made with other
# values is not resumed. epochs and patience may change between runs: the prefix is the same.
_FINGERPRINT_EXCLUDES = {"epochs", "patience", "jit_compile", "threads"}


class TrainError(UserError, RuntimeError):
    """Training cannot start or went wrong in a way the user can fix (missing data, divergence)."""


# ---------------------------------------------------------------------------------------------
# CLI


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m sd1job train``."""
    parser.add_argument("--context", type=int, required=True, metavar="N", help="context size (window length)")
    parser.add_argument(
        "--force", action="store_true", help="retrain from scratch even if this context is finished or checkpointed"
    )


def run(args: argparse.Namespace, config: Config) -> int:
    """CLI entry: train one context."""
    if args.context <= 0:
        raise TrainError(f"--context {args.context}: must be a positive number of samples")
    store = open_store(config.store)
    progress_bar = sys.stdout.isatty() and not args.quiet
    train_context(config, store, args.context, force=args.force, progress_bar=progress_bar)
    return 0


# ---------------------------------------------------------------------------------------------
# Pure pieces: early stopping, checkpoint encoding, fingerprints


@dataclass
class EarlyStopping:
    """Keras' EarlyStopping(monitor="val_loss", patience, min_delta=0) as explicit, checkpointable state."""

    patience: int
    best_val_loss: float = math.inf
    best_epoch: int = 0
    wait: int = 0

    def update(self, epoch: int, val_loss: float) -> bool:
        """Account one epoch's validation loss; True if it is a new best (NaN never is)."""
        if val_loss < self.best_val_loss:
            self.best_val_loss, self.best_epoch, self.wait = float(val_loss), epoch, 0
            return True
        self.wait += 1
        return False

    @property
    def should_stop(self) -> bool:
        """Whether ``patience`` epochs in a row brought no improvement."""
        return self.wait >= self.patience

    def to_json(self) -> dict[str, Any]:
        """State for the checkpoint (JSON has no inf: no best yet is None)."""
        best = self.best_val_loss if math.isfinite(self.best_val_loss) else None
        return {"best_val_loss": best, "best_epoch": self.best_epoch, "wait": self.wait}

    @classmethod
    def from_json(cls, patience: int, state: dict[str, Any]) -> EarlyStopping:
        """Restore from ``to_json`` output (the current patience applies)."""
        best = state.get("best_val_loss")
        return cls(patience, math.inf if best is None else float(best), int(state["best_epoch"]), int(state["wait"]))


@dataclass
class Checkpoint:
    """Everything needed to continue training exactly where an epoch ended."""

    state: dict[str, Any]
    weights: list[np.ndarray]
    optimizer: list[np.ndarray]
    best_weights: list[np.ndarray] = field(default_factory=list)


def encode_checkpoint(checkpoint: Checkpoint) -> bytes:
    """One ``.npz`` object: the arrays plus the JSON state as bytes (so it is never torn across objects)."""
    arrays: dict[str, np.ndarray] = {
        "state": np.frombuffer(json.dumps(checkpoint.state, allow_nan=False).encode(), dtype=np.uint8)
    }
    for prefix, group in (("weights", checkpoint.weights), ("optimizer", checkpoint.optimizer)):
        arrays.update({f"{prefix}_{i:04d}": np.asarray(a) for i, a in enumerate(group)})
    arrays.update({f"best_{i:04d}": np.asarray(a) for i, a in enumerate(checkpoint.best_weights)})
    return dataset.encode_arrays(**arrays)


def decode_checkpoint(data: bytes, source: str) -> Checkpoint:
    """Inverse of ``encode_checkpoint``; DatasetError (a UserError) if the bytes are not a checkpoint."""
    arrays = dataset.decode_arrays(data, source)
    if "state" not in arrays:
        raise dataset.DatasetError(f"{source}: not a checkpoint (no state)")

    def group(prefix: str) -> list[np.ndarray]:
        return [arrays[name] for name in sorted(n for n in arrays if n.startswith(prefix + "_"))]

    state = json.loads(arrays["state"].tobytes().decode())
    return Checkpoint(state, group("weights"), group("optimizer"), group("best"))


def training_fingerprint(config: Config, context: int, data_digest: str) -> str:
    """A hash of everything that decides the trained weights: the data, the context, the training settings."""
    relevant = {
        "context": context,
        "train": trained_settings(config),
        "data": data_digest,
        "checkpoint_version": CHECKPOINT_VERSION,
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def trained_settings(config: Config) -> dict[str, Any]:
    """The training settings that decide the weights (recorded in history.json, compared on a skip)."""
    return config.train.model_dump(exclude=_FINGERPRINT_EXCLUDES)


def data_digest(*arrays: np.ndarray) -> str:
    """SHA-256 over the arrays' bytes (identifies the training data a checkpoint belongs to)."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


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


def flops_per_window(context: int, units: int, training: bool = True) -> float:
    """Gate matrix-product FLOPs of one window: n steps x 2 x (1 + units) x 4 units, x3 when training."""
    return context * 2.0 * (1 + units) * 4 * units * (3 if training else 1)


# ---------------------------------------------------------------------------------------------
# TensorFlow runtime and the input pipeline


def configure_runtime(threads: int, jit_compile: bool) -> dict[str, Any]:
    """Apply thread settings and CPU determinism; call before TensorFlow creates its first op.

    ``threads`` 0: one intra-op and one inter-op thread on CPU (fastest measured with XLA), TF's
    defaults on a GPU; N > 0: N and N. If the runtime already started with other values (a second
    training in one process) the old values stay and a warning says so.

    Determinism on CPU: the input pipeline is deterministic by construction and XLA's compiled
    step is too; without XLA, TF's op determinism is switched on (Keras refuses XLA under it).
    """
    gpus = tf.config.list_physical_devices("GPU")
    wanted = threads if threads > 0 else (None if gpus else 1)
    if wanted is not None:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(wanted)
            tf.config.threading.set_inter_op_parallelism_threads(wanted)
        except RuntimeError:
            current = tf.config.threading.get_intra_op_parallelism_threads()
            if current != wanted:
                log.warning(
                    "TensorFlow already runs with %d intra-op threads; train.threads takes effect in a new process",
                    current,
                )
    op_determinism = not gpus and not jit_compile
    if op_determinism:
        tf.config.experimental.enable_op_determinism()
    return {
        "device": "GPU" if gpus else "CPU",
        "gpus": [gpu.name for gpu in gpus],
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "op_determinism": op_determinism,
    }


def window_dataset(
    dry: np.ndarray | tf.Tensor,
    wet: np.ndarray | tf.Tensor,
    positions: np.ndarray,
    context: int,
    batch_size: int,
    *,
    shuffle_seed: int | None = None,
    epochs: tuple[int, int] = (0, 1),
) -> tf.data.Dataset:
    """Batches ``(x, y)``: x = dry windows (batch, n, 1) gathered on the fly, y = wet targets (batch, 1).

    Without ``shuffle_seed``: the positions once, in order (validation). With it: the epochs
    ``epochs[0] .. epochs[1]-1`` back to back, each a stateless shuffle seeded by
    ``(shuffle_seed, epoch)`` ending in its own (possibly short) batch, so epoch k's batches do
    not depend on where training started.
    """
    dry_t = tf.convert_to_tensor(dry, dtype=tf.float32)
    wet_t = tf.convert_to_tensor(wet, dtype=tf.float32)
    positions_t = tf.convert_to_tensor(positions, dtype=tf.int64)
    offsets = tf.range(-context + 1, 1, dtype=tf.int64)

    def windows(batch: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x = tf.gather(dry_t, batch[:, None] + offsets[None, :])[..., None]
        y = tf.gather(wet_t, batch)[:, None]
        return x, y

    if shuffle_seed is None:
        batches = tf.data.Dataset.from_tensor_slices(positions_t).batch(batch_size)
    else:

        def epoch_batches(epoch: tf.Tensor) -> tf.data.Dataset:
            seed = tf.stack([tf.constant(shuffle_seed, tf.int64), epoch])
            order = tf.random.experimental.stateless_shuffle(positions_t, seed=seed)
            return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

        batches = tf.data.Dataset.range(epochs[0], epochs[1]).flat_map(epoch_batches)
    return batches.map(windows, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)


def compiled_model(context: int, units: int, learning_rate: float, jit_compile: bool) -> keras.Model:
    """``build_model`` compiled for training, with XLA as configured."""
    model = build_model(context, units, learning_rate)
    model.jit_compile = jit_compile
    return model


def model_bytes(model: keras.Model) -> bytes:
    """The model as ``.keras`` archive bytes."""
    with tempfile.TemporaryDirectory(prefix="sd1job-model-") as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        return path.read_bytes()


def _optimizer_variables(model: keras.Model) -> list[Any]:
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    return list(optimizer.variables)


# ---------------------------------------------------------------------------------------------
# The stage


def checkpoint_key(layout: RunLayout, context: int) -> str:
    """The one checkpoint object of a context."""
    return join_key(layout.checkpoint_dir(context), CHECKPOINT_FILE)


def is_finished(store: Store, layout: RunLayout, context: int) -> bool:
    """Whether the context finished (history.json is written last, after model.keras)."""
    return store.exists(layout.history(context)) and store.exists(layout.model(context))


def clear_context(store: Store, layout: RunLayout, context: int) -> None:
    """Remove a context's outputs, history.json first (so it stops counting as finished at once)."""
    store.delete(layout.history(context))
    store.delete_prefix(layout.model_dir(context))


class _EpochHook(keras.callbacks.Callback):
    """Times each epoch (training part and total) and hands the logs to ``on_epoch``."""

    def __init__(self, on_epoch: Any) -> None:
        super().__init__()
        self._on_epoch = on_epoch
        self._started = 0.0
        self._train_ended: float | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._started = time.perf_counter()
        self._train_ended = None

    def on_test_begin(self, logs: dict | None = None) -> None:
        if self._train_ended is None:
            self._train_ended = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        now = time.perf_counter()
        train_seconds = (self._train_ended or now) - self._started
        if self._on_epoch(epoch + 1, dict(logs or {}), now - self._started, train_seconds):
            self.model.stop_training = True


class _ContextRun:
    """The state of one context's training: history, early stopping, best weights, checkpointing, metrics."""

    def __init__(
        self,
        config: Config,
        store: Store,
        context: int,
        model: keras.Model,
        fingerprint: str,
        train_windows: int,
        metrics: TrainingMetrics,
    ) -> None:
        self.config = config
        self.store = store
        self.context = context
        self.layout = layout_for(config)
        self.model = model
        self.fingerprint = fingerprint
        self.train_windows = train_windows
        self.metrics = metrics
        self.history: list[dict[str, Any]] = []
        self.early = EarlyStopping(config.train.patience)
        self.best_weights: list[np.ndarray] = []
        self.resumed_at: list[int] = []

    @property
    def epochs_done(self) -> int:
        return len(self.history)

    def restore(self, checkpoint: Checkpoint) -> None:
        """Continue from a checkpoint: weights, Adam state, early stopping, history."""
        self.model.set_weights(checkpoint.weights)
        variables = _optimizer_variables(self.model)
        if len(variables) != len(checkpoint.optimizer):
            raise TrainError("checkpoint optimizer state does not match the model; rerun with --force")
        for variable, value in zip(variables, checkpoint.optimizer, strict=True):
            variable.assign(value)
        state = checkpoint.state
        self.history = list(state["history"])
        self.early = EarlyStopping.from_json(self.config.train.patience, state["early_stopping"])
        self.best_weights = checkpoint.best_weights
        self.resumed_at = [*state.get("resumed_at", []), self.epochs_done]

    def checkpoint(self) -> Checkpoint:
        """The state after the last finished epoch."""
        state = {
            "version": CHECKPOINT_VERSION,
            "fingerprint": self.fingerprint,
            "context": self.context,
            "epoch": self.epochs_done,
            "early_stopping": self.early.to_json(),
            "history": self.history,
            "resumed_at": self.resumed_at,
            # Epoch k's order is stateless_shuffle(train positions, seed=(train.seed, k)): no RNG state to keep.
            "shuffle": {"kind": "stateless_shuffle", "seed": self.config.train.seed},
        }
        optimizer = [np.asarray(v.numpy()) for v in _optimizer_variables(self.model)]
        return Checkpoint(state, self.model.get_weights(), optimizer, self.best_weights)

    def on_epoch(self, epoch: int, logs: dict[str, Any], seconds: float, train_seconds: float) -> bool:
        """Record a finished epoch, checkpoint it, report it; True when early stopping says stop."""
        entry = {
            "epoch": epoch,
            "loss": float(logs["loss"]),
            "val_loss": float(logs["val_loss"]),
            "mse": float(logs["mse"]),
            "mae": float(logs["mae"]),
            "val_mse": float(logs["val_mse"]),
            "val_mae": float(logs["val_mae"]),
            "seconds": round(seconds, 4),
            "train_seconds": round(train_seconds, 4),
            "windows_per_second": round(self.train_windows / max(train_seconds, 1e-9), 1),
        }
        if not (math.isfinite(entry["loss"]) and math.isfinite(entry["val_loss"])):
            raise TrainError(
                f"context {self.context}: training diverged at epoch {epoch} (loss {entry['loss']}, val_loss "
                f"{entry['val_loss']}); lower train.learning_rate"
            )
        if self.early.update(epoch, entry["val_loss"]):
            self.best_weights = self.model.get_weights()
        self.history.append(entry)
        self.report(entry)  # metrics first: a scrape that sees the checkpoint sees the epoch
        self.store.write_bytes(checkpoint_key(self.layout, self.context), encode_checkpoint(self.checkpoint()))
        self.log_epoch(entry)
        self.metrics.push()
        return self.early.should_stop

    def report(self, entry: dict[str, Any]) -> None:
        """Account a finished epoch in the metrics (live, or replayed from a checkpoint)."""
        record_epoch_metrics(self.metrics, self.history[: entry["epoch"]], self.train_windows)

    def log_epoch(self, entry: dict[str, Any]) -> None:
        """The epoch's progress line."""
        log.info(
            "train c%d epoch %d/%d: loss %.5f val_loss %.5f | %.1f s, %s windows/s | best %.5f (epoch %d)",
            self.context,
            entry["epoch"],
            self.config.train.epochs,
            entry["loss"],
            entry["val_loss"],
            entry["seconds"],
            f"{entry['windows_per_second']:,.0f}",
            self.early.best_val_loss,
            self.early.best_epoch,
        )

    def final_history(self, val_windows: int) -> dict[str, Any]:
        """history.json: per-epoch entries and the run's totals."""
        total = sum(e["seconds"] for e in self.history)
        return {
            "context": self.context,
            "parameter_count": int(self.model.count_params()),
            "lstm_units": self.config.train.lstm_units,
            "train_windows": self.train_windows,
            "val_windows": val_windows,
            "epochs": self.history,
            "best_epoch": self.early.best_epoch,
            "best_val_loss": self.early.best_val_loss,
            "epochs_run": self.epochs_done,
            "epochs_planned": self.config.train.epochs,
            "total_seconds": round(total, 4),
            "seconds_per_epoch": round(total / max(self.epochs_done, 1), 4),
            "stop_reason": STOP_EARLY if self.early.should_stop else STOP_MAX_EPOCHS,
            "resumed_at_epochs": self.resumed_at,
            "fingerprint": self.fingerprint,
            "train_settings": trained_settings(self.config),
            "finished_at": time.time(),
        }


def _versions() -> dict[str, str]:
    return {
        "sd1job": __version__,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
    }


def _load_checkpoint(store: Store, key: str, fingerprint: str) -> Checkpoint | None:
    if not store.exists(key):
        return None
    try:
        checkpoint = decode_checkpoint(store.read_bytes(key), store.url(key))
    except (UserError, ValueError, KeyError) as error:
        log.warning("ignoring an unreadable checkpoint %s (%s); starting over", store.url(key), error)
        return None
    if checkpoint.state.get("fingerprint") != fingerprint:
        log.warning(
            "ignoring checkpoint %s: it was made with other data or training settings; starting over", store.url(key)
        )
        return None
    return checkpoint


def record_epoch_metrics(metrics: TrainingMetrics, epochs: list[dict[str, Any]], train_windows: int) -> None:
    """Account the last of ``epochs`` (history entries so far) in the metrics."""
    entry = epochs[-1]
    metrics.record_epoch(
        epoch=entry["epoch"],
        seconds=entry["seconds"],
        windows=train_windows,
        windows_per_second=entry["windows_per_second"],
        train_esr=entry["loss"],
        val_esr=entry["val_loss"],
        best_val_esr=min(e["val_loss"] for e in epochs),
    )


def _report_finished(history: dict[str, Any], metrics: TrainingMetrics, epochs_planned: int) -> None:
    """Push a finished context's final metrics (an idempotent rerun still shows it done)."""
    metrics.start(epochs_planned)
    epochs = history.get("epochs", [])
    for index in range(len(epochs)):
        record_epoch_metrics(metrics, epochs[: index + 1], int(history.get("train_windows", 0)))
    metrics.completed(history.get("finished_at"))
    metrics.push()


def train_context(
    config: Config, store: Store, context: int, *, force: bool = False, progress_bar: bool = False
) -> dict[str, Any]:
    """Train (or resume, or skip) one context; return its history.json content."""
    layout = layout_for(config)
    settings = config.train
    metrics = TrainingMetrics(config.run_id, context, config.metrics.pushgateway)
    if config.metrics.port:
        serve(config.metrics.port)
    if force:
        clear_context(store, layout, context)
    elif is_finished(store, layout, context):
        history = store.read_json(layout.history(context))
        log.info(
            "train c%d: already finished (%d epochs, best val_loss %.5f at epoch %d) at %s; use --force to retrain",
            context,
            history.get("epochs_run", 0),
            history.get("best_val_loss", math.nan),
            history.get("best_epoch", 0),
            store.url(layout.model_dir(context)),
        )
        recorded = history.get("train_settings", {})
        changed = sorted(k for k, v in trained_settings(config).items() if k in recorded and recorded[k] != v)
        if changed:
            log.warning(
                "train c%d: finished with other train settings (%s differ from the config); use --force to retrain",
                context,
                ", ".join(changed),
            )
        _report_finished(history, metrics, settings.epochs)
        return history

    runtime = configure_runtime(settings.threads, settings.jit_compile)  # before the first TensorFlow op
    dry, wet = load_training_audio(store, layout)
    split = load_split(store, layout, context)
    check_positions(split, context, len(dry), store.url(layout.positions(context)))
    fingerprint = training_fingerprint(config, context, data_digest(dry, wet, split.train, split.val))

    keras.utils.set_random_seed(settings.seed)
    model = compiled_model(context, settings.lstm_units, settings.learning_rate, settings.jit_compile)
    state = _ContextRun(config, store, context, model, fingerprint, len(split.train), metrics)
    metrics.start(settings.epochs)
    checkpoint = _load_checkpoint(store, checkpoint_key(layout, context), fingerprint)
    if checkpoint is not None:
        state.restore(checkpoint)
        for entry in state.history:
            state.report(entry)
        log.info(
            "train c%d: resuming after epoch %d (best val_loss %.5f at epoch %d)",
            context,
            state.epochs_done,
            state.early.best_val_loss,
            state.early.best_epoch,
        )
    log.info(
        "train c%d: %d training / %d validation windows, %d parameters, %s, %d/%d threads, XLA %s",
        context,
        len(split.train),
        len(split.val),
        model.count_params(),
        runtime["device"],
        runtime["intra_op_threads"],
        runtime["inter_op_threads"],
        "on" if model.jit_compile else "off",
    )

    start = state.epochs_done
    if start < settings.epochs and not state.early.should_stop:
        train_data = window_dataset(
            dry,
            wet,
            split.train,
            context,
            settings.batch_size,
            shuffle_seed=settings.seed,
            epochs=(start, settings.epochs),
        )
        val_data = window_dataset(dry, wet, split.val, context, settings.batch_size)
        model.fit(
            train_data,
            epochs=settings.epochs,
            initial_epoch=start,
            steps_per_epoch=math.ceil(len(split.train) / settings.batch_size),
            validation_data=val_data,
            callbacks=[_EpochHook(state.on_epoch)],
            shuffle=False,  # the dataset shuffles, per epoch, statelessly
            verbose=1 if progress_bar else 0,
        )
    if state.best_weights:
        model.set_weights(state.best_weights)
    history = state.final_history(len(split.val))
    _write_outputs(store, layout, config, context, model, history, runtime)
    metrics.completed(history["finished_at"])
    metrics.push()
    log.info(
        "train c%d: done, %d epochs (%s), best val_loss %.5f at epoch %d, %.1f s/epoch -> %s",
        context,
        history["epochs_run"],
        history["stop_reason"],
        history["best_val_loss"],
        history["best_epoch"],
        history["seconds_per_epoch"],
        store.url(layout.model_dir(context)),
    )
    return history


def _write_outputs(
    store: Store,
    layout: RunLayout,
    config: Config,
    context: int,
    model: keras.Model,
    history: dict[str, Any],
    runtime: dict[str, Any],
) -> None:
    """Write model.keras, loss.png, summary.json, then history.json (the 'finished' mark), then drop the checkpoint."""
    store.write_bytes(layout.model(context), model_bytes(model))
    title = f"context {context}: best val ESR {history['best_val_loss']:.4g} at epoch {history['best_epoch']}"
    store.write_bytes(layout.loss_plot(context), plot_loss_curve(history, title))
    summary = {
        "context": context,
        "parameter_count": history["parameter_count"],
        "lstm_units": config.train.lstm_units,
        "esr_epsilon": ESR_EPSILON,
        "train_windows": history["train_windows"],
        "val_windows": history["val_windows"],
        "flops_per_window_training": flops_per_window(context, config.train.lstm_units),
        "runtime": {**runtime, "jit_compile": bool(model.jit_compile)},
        "config": config.model_dump(mode="json"),
        "versions": _versions(),
    }
    store.write_json(layout.summary(context), summary)
    store.write_json(layout.history(context), history)
    store.delete(checkpoint_key(layout, context))
