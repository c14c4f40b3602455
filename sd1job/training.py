"""The TensorFlow side of training: the runtime, the input pipelines and the epoch loop of each model kind.

Both fitters run epochs ``start .. epochs-1`` and call ``on_epoch(epoch, logs, seconds,
train_seconds)`` after each (epochs counted from 1); it returns True to stop (early stopping).
The logs hold ``loss``, ``val_loss`` (ESR), ``mse``, ``mae``, ``val_mse`` and ``val_mae``. After
every update they call ``on_update(epoch, update, loss)`` (update counted from 1 within the
epoch) with that update's training loss; True abandons the epoch at once (a divergence: the
caller rolls back and calls ``fit`` again), and ``on_epoch`` is not called for it.
An epoch's batches depend only on (seed, epoch), never on where training (re)started, so a
resumed run sees exactly the batches an uninterrupted one would.

- Windowed: Keras ``fit`` on a tf.data pipeline that gathers ``dry[t-n+1 .. t]`` for a batch of
  stored positions from the one 1-D signal (memory does not grow with n); each epoch is a
  stateless shuffle seeded by ``(train.seed, epoch)``.
- Stateful: truncated backpropagation through time. A batch holds ``batch_size`` training
  segments; the LSTM starts each from a zero state, runs ``warmup_samples`` without scoring them,
  then the rest of the segment in steps of ``tbptt_samples``, one gradient update per step, the
  state carried from step to step (gradients stop at step boundaries). Validation runs the held-
  out stretch the same way (in segments, warm-ups unscored). Batches that would hold fewer
  segments than the others are dropped (their segments come round in other epochs' orders).
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from sd1job import dataset
from sd1job.config import ModelCell, StatefulConfig
from sd1job.health import trivial_esr
from sd1job.model import build_model, build_stateful_model, esr_loss, fused_stateful_call
from sd1job.scores import ESR_EPSILON

log = logging.getLogger(__name__)

OnEpoch = Callable[[int, dict[str, float], float, float], bool]
OnUpdate = Callable[[int, int, float], bool]


def learning_rate_at(epoch: int, learning_rate: float, decay: float) -> float:
    """The learning rate of 0-based epoch ``epoch``: ``learning_rate * decay**epoch`` (a pure function of the
    epoch, so a resumed run follows the same schedule)."""
    return learning_rate * decay**epoch


class Schedule:
    """A unit's learning rate per 0-based epoch: ``learning_rate_at`` times ``scale``, which each recovery from a
    divergence lowers (the train stage keeps it in the checkpoint, so a resumed run follows the same rates).

    With ``warmup_updates`` N > 0 the first N updates of the unit's training ramp linearly up to that
    rate (update k of them, 0-based, at (k + 1) / N of it): Adam's first steps, taken on moment
    estimates from a handful of batches, are the ones that threw a windowed LSTM at lr 0.02 into a
    state it never left (issue 19's measurement in configs/local.yaml). ``updates_per_epoch`` turns
    (epoch, update) into the count since training began, so a resumed unit continues the same ramp.
    """

    def __init__(self, learning_rate: float, decay: float, warmup_updates: int = 0, updates_per_epoch: int = 1) -> None:
        self.learning_rate = learning_rate
        self.decay = decay
        self.scale = 1.0
        self.warmup_updates = warmup_updates
        self.updates_per_epoch = max(updates_per_epoch, 1)

    def __call__(self, epoch: int) -> float:
        return learning_rate_at(epoch, self.learning_rate, self.decay) * self.scale

    def at_update(self, epoch: int, update: int) -> float:
        """The rate of 0-based update ``update`` of 0-based epoch ``epoch`` (the epoch's rate once warmed up)."""
        done = epoch * self.updates_per_epoch + update
        ramp = min(1.0, (done + 1) / self.warmup_updates) if self.warmup_updates else 1.0
        return self(epoch) * ramp

    def set_for_update(self, optimizer: Any, epoch: int, update: int) -> None:
        """Assign ``at_update`` to ``optimizer`` while the ramp lasts (and once after, to restore the epoch's rate)."""
        if epoch * self.updates_per_epoch + update <= self.warmup_updates:
            optimizer.learning_rate.assign(self.at_update(epoch, update))


def uses_xla(kind: str, jit_compile: bool) -> bool:
    """Whether a unit's training step is XLA-compiled: ``train.jit_compile`` for windowed units, never for
    stateful ones (``StatefulFitter`` takes no such switch). XLA speeds the windowed model's short
    window up, but the stateful model's long truncated-BPTT loop ran about 20x slower under it on CPU
    (its gradient over 2,048 steps; measured in the README's stateful section), and on a GPU it would
    lose cuDNN's LSTM kernel."""
    return jit_compile and kind == "windowed"


def configure_runtime(threads: int, jit_compile: bool) -> dict[str, Any]:
    """Apply thread settings and CPU determinism; call before TensorFlow creates its first op.

    ``threads`` 0: one intra-op and one inter-op thread on CPU (the most work per CPU-second with
    XLA; the local sweep runs one trainer per core), TF's defaults on a GPU; N > 0: N and N. If
    the runtime already started with other values (a second training in one process) the old
    values stay and a warning says so.

    Determinism on CPU: the input pipelines are deterministic by construction and XLA's compiled
    step is too; with ``jit_compile`` off, TF's op determinism is switched on (Keras refuses XLA
    under it). The stateful step (never XLA) uses only dense CPU kernels, which are deterministic for
    a fixed thread count, so it needs no switch (tests/test_train.py checks it bit for bit).
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


def model_bytes(model: keras.Model) -> bytes:
    """The model as ``.keras`` archive bytes."""
    with tempfile.TemporaryDirectory(prefix="sd1job-model-") as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        return path.read_bytes()


def _optimizer_variables(model: keras.Model, optimizer: keras.optimizers.Optimizer) -> list[Any]:
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    return list(optimizer.variables)


# --- windowed ----------------------------------------------------------------------------------


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
    ``(shuffle_seed, epoch)`` ending in its own (possibly short) batch.
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


class _EpochHook(keras.callbacks.Callback):
    """Sets each epoch's learning rate, hands every batch's loss to ``on_update`` and each epoch's logs (timed:
    training part and total) to ``on_epoch``; abandons the epoch when ``on_update`` says so.

    Keras reports the running mean of the epoch's loss after each batch (weighted by batch size);
    the batch's own loss is recovered from two consecutive means."""

    def __init__(
        self, on_epoch: OnEpoch, on_update: OnUpdate, schedule: Schedule, batch_size: int, targets: int
    ) -> None:
        super().__init__()
        self._on_epoch = on_epoch
        self._on_update = on_update
        self._schedule = schedule
        self._batch_size = batch_size
        self._targets = targets
        self._epoch = 0
        self._started = 0.0
        self._train_ended: float | None = None
        self._seen = 0
        self._mean = 0.0
        self._abandoned = False

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.model.optimizer.learning_rate.assign(self._schedule(epoch))
        self._epoch = epoch
        self._started = time.perf_counter()
        self._train_ended = None
        self._seen, self._mean, self._abandoned = 0, 0.0, False

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self._schedule.set_for_update(self.model.optimizer, self._epoch, batch)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        running = float((logs or {})["loss"])
        seen = min((batch + 1) * self._batch_size, self._targets)
        loss = (seen * running - self._seen * self._mean) / max(seen - self._seen, 1)
        self._seen, self._mean = seen, running
        if self._on_update(self._epoch + 1, batch + 1, loss):
            self._abandoned = True
            self.model.stop_training = True

    def on_test_begin(self, logs: dict | None = None) -> None:
        if self._train_ended is None:
            self._train_ended = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self._abandoned:
            return
        now = time.perf_counter()
        train_seconds = (self._train_ended or now) - self._started
        logs = {name: float(value) for name, value in (logs or {}).items()}
        if self._on_epoch(epoch + 1, logs, now - self._started, train_seconds):
            self.model.stop_training = True


class WindowedFitter:
    """The seed's model for one context, fitted with Keras on windows gathered on the fly."""

    def __init__(
        self,
        dry: np.ndarray,
        wet: np.ndarray,
        split: dataset.Split,
        context: int,
        *,
        units: int,
        learning_rate: float,
        lr_decay: float,
        clipnorm: float | None,
        batch_size: int,
        seed: int,
        jit_compile: bool,
        warmup_updates: int = 0,
        cell: ModelCell = "lstm",
    ) -> None:
        self.model = build_model(context, units, learning_rate, clipnorm, cell)
        self.schedule = Schedule(learning_rate, lr_decay, warmup_updates, math.ceil(len(split.train) / batch_size))
        self.model.jit_compile = jit_compile
        self.train_targets = len(split.train)
        self.val_targets = len(split.val)
        self.trivial_val_esr = trivial_esr(dry[split.val], wet[split.val])
        self._data = (dry, wet, split, context, batch_size, seed)

    def optimizer_variables(self) -> list[Any]:
        """The optimiser's variables (built if needed), in a fixed order: what a checkpoint keeps."""
        return _optimizer_variables(self.model, self.model.optimizer)

    def fit(self, start: int, epochs: int, on_epoch: OnEpoch, on_update: OnUpdate, progress_bar: bool = False) -> None:
        """Run epochs ``start+1 .. epochs``; stop when ``on_epoch`` says so, abandon one when ``on_update`` does."""
        dry, wet, split, context, batch_size, seed = self._data
        train_data = window_dataset(
            dry, wet, split.train, context, batch_size, shuffle_seed=seed, epochs=(start, epochs)
        )
        self.model.fit(
            train_data,
            epochs=epochs,
            initial_epoch=start,
            steps_per_epoch=math.ceil(len(split.train) / batch_size),
            validation_data=window_dataset(dry, wet, split.val, context, batch_size),
            callbacks=[_EpochHook(on_epoch, on_update, self.schedule, batch_size, len(split.train))],
            shuffle=False,  # the dataset shuffles, per epoch, statelessly
            verbose=1 if progress_bar else 0,
        )


# --- stateful ----------------------------------------------------------------------------------


def _pre_emphasis(signal: tf.Tensor, coefficient: float | None) -> tf.Tensor:
    """``x[t] - a x[t-1]`` along time within the chunk (the chunk's first sample keeps ``x[0]``)."""
    if coefficient is None:
        return signal
    return tf.concat([signal[:, :1], signal[:, 1:] - coefficient * signal[:, :-1]], axis=1)


def validation_logs(error_energy: float, energy: float, absolute: float, targets: int) -> dict[str, float]:
    """Validation ESR, MSE and MAE from the sums over every validation target (float64 accumulations)."""
    count = max(targets, 1)
    return {
        "val_loss": error_energy / (energy + ESR_EPSILON),
        "val_mse": error_energy / count,
        "val_mae": absolute / count,
    }


def run_epochs(fitter: Any, start: int, epochs: int, on_epoch: OnEpoch, on_update: OnUpdate) -> None:
    """The epoch loop of a fitter with ``optimizer``, ``schedule``, ``_train_epoch`` (None when an update's
    guard abandoned the epoch) and ``validate``: epochs ``start+1 .. epochs``, until ``on_epoch`` says stop."""
    for epoch in range(start, epochs):
        fitter.optimizer.learning_rate.assign(fitter.schedule(epoch))
        started = time.perf_counter()
        logs = fitter._train_epoch(epoch, on_update)
        if logs is None:
            return
        train_seconds = time.perf_counter() - started
        logs.update(fitter.validate())
        if on_epoch(epoch + 1, logs, time.perf_counter() - started, train_seconds):
            return


class StatefulFitter:
    """The stateful model fitted by truncated backpropagation through time on segments."""

    def __init__(
        self,
        dry: np.ndarray,
        wet: np.ndarray,
        segments: dataset.Segments,
        settings: StatefulConfig,
        *,
        units: int,
        learning_rate: float,
        lr_decay: float,
        clipnorm: float | None,
        seed: int,
        warmup_updates: int = 0,
        cell: ModelCell = "lstm",
    ) -> None:
        self.model = build_stateful_model(units, cell)
        self.cell = cell
        self.optimizer = keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=clipnorm)
        self.settings = settings
        self.units = units
        self.seed = seed
        self.segments = segments
        self.batch = min(settings.batch_size, len(segments.starts))
        self.batches_per_epoch = len(segments.starts) // self.batch
        updates_per_epoch = self.batches_per_epoch * len(self._steps(segments.length))
        self.schedule = Schedule(learning_rate, lr_decay, warmup_updates, updates_per_epoch)
        scored = segments.length - settings.warmup_samples
        self.train_targets = self.batches_per_epoch * self.batch * scored
        self._dry = np.asarray(dry, np.float32)
        self._wet = np.asarray(wet, np.float32)
        val_count = (len(dry) - segments.val_start) // segments.length
        if val_count >= 1:
            self._val_starts = segments.val_start + np.arange(val_count) * segments.length
            self._val_length = segments.length
        else:  # a short held-out stretch: one sequence, the whole of it
            self._val_starts = np.array([segments.val_start])
            self._val_length = len(dry) - segments.val_start
        self.val_targets = len(self._val_starts) * (self._val_length - settings.warmup_samples)
        self.trivial_val_esr = trivial_esr(self._dry[segments.val_start :], self._wet[segments.val_start :])
        # Off the GPU (where Keras picks cuDNN's LSTM) the fused CPU kernel runs the stretch (an LSTM's only:
        # TensorFlow has no fused kernel for Keras' GRU with the reset gate after the product).
        self._fused = cell == "lstm" and not tf.config.list_physical_devices("GPU")
        self._train_step = tf.function(self._train_step_eager, reduce_retracing=True)  # never XLA: see uses_xla
        self._run = tf.function(self._run_eager, reduce_retracing=True)

    def optimizer_variables(self) -> list[Any]:
        """The optimiser's variables (built if needed), in a fixed order: what a checkpoint keeps."""
        return _optimizer_variables(self.model, self.optimizer)

    def _loss_terms(self, y: tf.Tensor, prediction: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        from sd1job.losses import pre_emphasised_terms

        coefficient = self.settings.loss_pre_emphasis
        loss = esr_loss(_pre_emphasis(y, coefficient), _pre_emphasis(prediction, coefficient))
        if self.settings.pre_emphasis_weight or self.settings.mrstft_weight:  # NAM's extra terms (sd1job.losses)
            loss += pre_emphasised_terms(y, prediction, self.settings.pre_emphasis_weight, self.settings.mrstft_weight)
        error = y - prediction
        return loss, tf.reduce_mean(tf.square(error)), tf.reduce_mean(tf.abs(error))

    def _train_step_eager(
        self, x: tf.Tensor, y: tf.Tensor, h: tf.Tensor, c: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            prediction, h, c = self._call(x, h, c, training=True)
            loss, mse, mae = self._loss_terms(y, prediction)
        variables = self.model.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss, mse, mae, h, c

    def _run_eager(self, x: tf.Tensor, h: tf.Tensor, c: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        return self._call(x, h, c, training=False)

    def _call(self, x: tf.Tensor, h: tf.Tensor, c: tf.Tensor, training: bool) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        if self._fused:
            return fused_stateful_call(self.model, x, h, c)
        if self.cell == "gru":  # one state: c rides along unused, so the loops stay those of the LSTM
            prediction, h = self.model([x, h], training=training)
            return prediction, h, c
        prediction, h, c = self.model([x, h, c], training=training)
        return prediction, h, c

    def _segment_arrays(self, starts: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
        index = starts[:, None] + np.arange(length)[None, :]
        return self._dry[index][..., None], self._wet[index][..., None]

    def _steps(self, length: int) -> list[tuple[int, int]]:
        warmup, step = self.settings.warmup_samples, self.settings.tbptt_samples
        return [(begin, min(begin + step, length)) for begin in range(warmup, length, step)]

    def _warm_state(self, x: np.ndarray) -> tuple[tf.Tensor, tf.Tensor]:
        zeros = tf.zeros((len(x), self.units), tf.float32)
        if self.settings.warmup_samples == 0:
            return zeros, zeros
        _, h, c = self._run(tf.constant(x[:, : self.settings.warmup_samples]), zeros, zeros)
        return h, c

    def _train_epoch(self, epoch: int, on_update: OnUpdate) -> dict[str, float] | None:
        """One epoch's mean training loss, MSE and MAE; None when ``on_update`` abandoned it."""
        order = dataset.epoch_order(len(self.segments.starts), self.seed, epoch)
        totals = np.zeros(3)
        updates = 0
        for index in range(self.batches_per_epoch):
            chosen = self.segments.starts[order[index * self.batch : (index + 1) * self.batch]]
            x, y = self._segment_arrays(chosen, self.segments.length)
            h, c = self._warm_state(x)
            for begin, end in self._steps(self.segments.length):
                self.schedule.set_for_update(self.optimizer, epoch, updates)
                loss, mse, mae, h, c = self._train_step(
                    tf.constant(x[:, begin:end]), tf.constant(y[:, begin:end]), h, c
                )
                totals += (float(loss), float(mse), float(mae))
                updates += 1
                if on_update(epoch + 1, updates, float(loss)):
                    return None
        loss, mse, mae = totals / max(updates, 1)
        return {"loss": loss, "mse": mse, "mae": mae}

    def validate(self) -> dict[str, float]:
        """ESR, MSE and MAE over the held-out stretch (warm-ups unscored)."""
        x, y = self._segment_arrays(self._val_starts, self._val_length)
        h, c = self._warm_state(x)
        error_energy = energy = absolute = 0.0
        for begin, end in self._steps(self._val_length):
            prediction, h, c = self._run(tf.constant(x[:, begin:end]), h, c)
            error = y[:, begin:end] - prediction.numpy()
            error_energy += float(np.sum(np.square(error, dtype=np.float64)))
            energy += float(np.sum(np.square(y[:, begin:end], dtype=np.float64)))
            absolute += float(np.sum(np.abs(error), dtype=np.float64))
        return validation_logs(error_energy, energy, absolute, self.val_targets)

    def fit(self, start: int, epochs: int, on_epoch: OnEpoch, on_update: OnUpdate, progress_bar: bool = False) -> None:
        """Run epochs ``start+1 .. epochs``; stop when ``on_epoch`` says so, abandon one when ``on_update`` does."""
        run_epochs(self, start, epochs, on_epoch, on_update)
