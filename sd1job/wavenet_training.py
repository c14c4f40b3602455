"""Training NAM's WaveNet on segments of the training pair (the ``wavenet`` kind's fitter).

The recording is cut the blocked way (the held-out fraction at the end, as for the stateful kind).
The training stretch is tiled into segments of ``S`` scored output samples each (NAM's ``ny``),
``wavenet_segments``: segment i reads ``dry[s_i .. s_i + S + R - 2]`` (R the receptive field) and is
scored on ``wet[s_i + R - 1 .. s_i + R + S - 2]``, ``s_i = i S``, so every training target has its
whole receptive field of real input. An epoch visits the segments in the order ``epoch_order``
draws from (seed, epoch), ``batch_size`` at a time (a short last batch is dropped), one update per
batch with the recipe loss (``sd1job.losses``). Validation scores every sample of the held-out
stretch as eval would, reading the R - 1 dry samples before the stretch as context (zeros if the
recording is shorter), in chunks; ``val_loss`` is the plain ESR.

Same contract as the fitters of ``sd1job.training``: ``fit(start, epochs, on_epoch, on_update)``
with ``on_update`` after every update (True abandons the epoch), ``on_epoch`` after every finished
one (True stops), a ``Schedule`` per epoch, ``optimizer_variables`` for the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from sd1job import dataset
from sd1job.config import WavenetConfig
from sd1job.health import trivial_esr
from sd1job.losses import recipe_loss
from sd1job.training import OnEpoch, OnUpdate, Schedule, _optimizer_variables, run_epochs, validation_logs
from sd1job.wavenet_model import build_wavenet
from sd1job.wavenet_presets import WavenetSpec

VALIDATION_CHUNK = 1 << 15  # scored samples per validation call


@dataclass(frozen=True)
class WavenetSegments:
    """Training segment starts (each reads ``scored + R - 1`` dry samples) and the held-out stretch's start."""

    starts: np.ndarray
    scored: int
    receptive_field: int
    val_start: int


def wavenet_segments(length: int, scored: int, receptive_field: int, val_fraction: float) -> WavenetSegments:
    """Tile the training stretch (before the blocked cut) into segments; DatasetError if none fits."""
    cut = round(length * (1.0 - val_fraction))
    span = scored + receptive_field - 1
    count = (cut - receptive_field + 1) // scored if cut >= span else 0
    if count < 1:
        raise dataset.DatasetError(
            f"model.wavenet.segment_samples: one segment ({scored} samples plus the receptive field of "
            f"{receptive_field}) is longer than the training stretch ({cut} samples before the held-out "
            f"{val_fraction:.0%}); lower segment_samples or record more"
        )
    if length - cut < 1:
        raise dataset.DatasetError("the validation stretch of the recording is empty")
    return WavenetSegments(np.arange(count, dtype=np.int64) * scored, scored, receptive_field, cut)


class WavenetFitter:
    """NAM's WaveNet fitted on segments with Adam and the recipe loss."""

    def __init__(
        self,
        dry: np.ndarray,
        wet: np.ndarray,
        segments: WavenetSegments,
        spec: WavenetSpec,
        settings: WavenetConfig,
        *,
        seed: int,
        clipnorm: float | None = None,
        warmup_updates: int = 0,
    ) -> None:
        self.model = build_wavenet(spec)
        self.spec = spec
        self.settings = settings
        self.optimizer = keras.optimizers.Adam(learning_rate=settings.learning_rate, clipnorm=clipnorm)
        self.seed = seed
        self.segments = segments
        self.batch = min(settings.batch_size, len(segments.starts))
        self.batches_per_epoch = len(segments.starts) // self.batch
        self.schedule = Schedule(settings.learning_rate, settings.lr_decay, warmup_updates, self.batches_per_epoch)
        self.train_targets = self.batches_per_epoch * self.batch * segments.scored
        self._dry = np.asarray(dry, np.float32)
        self._wet = np.asarray(wet, np.float32)
        self.val_targets = len(dry) - segments.val_start
        self.trivial_val_esr = trivial_esr(self._dry[segments.val_start :], self._wet[segments.val_start :])
        self._train_step = tf.function(self._train_step_eager, reduce_retracing=True)
        self._run = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)

    def optimizer_variables(self) -> list[Any]:
        """The optimiser's variables (built if needed), in a fixed order: what a checkpoint keeps."""
        return _optimizer_variables(self.model, self.optimizer)

    def _train_step_eager(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            prediction = self.model(x, training=True)
            loss = recipe_loss(y, prediction, self.settings.pre_emphasis_weight, self.settings.mrstft_weight)
        variables = self.model.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        error = y - prediction
        return loss, tf.reduce_mean(tf.square(error)), tf.reduce_mean(tf.abs(error))

    def _batch_arrays(self, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        span = self.segments.scored + self.segments.receptive_field - 1
        inputs = self._dry[starts[:, None] + np.arange(span)[None, :]]
        first = starts + self.segments.receptive_field - 1
        targets = self._wet[first[:, None] + np.arange(self.segments.scored)[None, :]]
        return inputs[..., None], targets[..., None]

    def _train_epoch(self, epoch: int, on_update: OnUpdate) -> dict[str, float] | None:
        """One epoch's mean training loss, MSE and MAE; None when ``on_update`` abandoned it."""
        order = dataset.epoch_order(len(self.segments.starts), self.seed, epoch)
        totals = np.zeros(3)
        for index in range(self.batches_per_epoch):
            chosen = self.segments.starts[order[index * self.batch : (index + 1) * self.batch]]
            x, y = self._batch_arrays(chosen)
            self.schedule.set_for_update(self.optimizer, epoch, index)
            loss, mse, mae = self._train_step(tf.constant(x), tf.constant(y))
            totals += (float(loss), float(mse), float(mae))
            if on_update(epoch + 1, index + 1, float(loss)):
                return None
        loss, mse, mae = totals / max(self.batches_per_epoch, 1)
        return {"loss": loss, "mse": mse, "mae": mae}

    def validate(self) -> dict[str, float]:
        """ESR, MSE and MAE over every sample of the held-out stretch."""
        context = self.segments.receptive_field - 1
        start = self.segments.val_start
        before = self._dry[max(start - context, 0) : start]
        padded = np.concatenate([np.zeros(context - len(before), np.float32), before, self._dry[start:]])
        target = self._wet[start:]
        error_energy = energy = absolute = 0.0
        for begin in range(0, len(target), VALIDATION_CHUNK):
            end = min(begin + VALIDATION_CHUNK, len(target))
            prediction = self._run(tf.constant(padded[begin : end + context][None, :, None])).numpy()[0, :, 0]
            error = target[begin:end] - prediction
            error_energy += float(np.sum(np.square(error, dtype=np.float64)))
            energy += float(np.sum(np.square(target[begin:end], dtype=np.float64)))
            absolute += float(np.sum(np.abs(error), dtype=np.float64))
        return validation_logs(error_energy, energy, absolute, self.val_targets)

    def fit(self, start: int, epochs: int, on_epoch: OnEpoch, on_update: OnUpdate, progress_bar: bool = False) -> None:
        """Run epochs ``start+1 .. epochs``; stop when ``on_epoch`` says so, abandon one when ``on_update`` does."""
        run_epochs(self, start, epochs, on_epoch, on_update)
