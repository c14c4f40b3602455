"""The model kinds and the ESR loss.

Both kinds are one LSTM(u) feeding one linear Dense(1); the LSTM keeps Keras' defaults that make
it eligible for the cuDNN kernel on a GPU (tanh and sigmoid, no recurrent dropout, unroll False,
bias on). Layer names are fixed (``lstm``, ``wet_sample``): inference and export find the
weights by them. With ``model.cell: gru`` the LSTM is a GRU(u) instead, named ``gru`` (Keras'
cuDNN-eligible defaults as well: tanh and sigmoid, ``reset_after``; gates z, r, h), and the
stateful model carries its one state ``h``.

- ``windowed`` (the seed's): input ``(batch, n, 1)``, a window of n dry samples, the LSTM run from
  a zero state over it, its last step -> Dense -> one wet sample. n LSTM steps per output sample.
- ``stateful``: inputs ``(batch, time, 1)`` plus the LSTM state ``h, c`` (each ``(batch, u)``); every
  step -> Dense, so one LSTM step per output sample, and the returned state carries on into the
  next stretch of the signal (truncated backpropagation through time in training; streaming in
  inference and in a player's plugin). A GRU's: ``[dry, h] -> [wet, h]``.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from sd1job.config import ModelCell
from sd1job.scores import ESR_EPSILON  # one epsilon for the training loss and the scores
from sd1job.units import ModelKind

RECURRENT_LAYERS: tuple[ModelCell, ...] = ("lstm", "gru")  # the recurrent layer's name is its cell
GATES = {"lstm": 4, "gru": 3}


@keras.saving.register_keras_serializable(package="sd1job")
def esr_loss(y_true: Any, y_pred: Any) -> Any:
    """Error-to-signal ratio of a batch: sum((y - y_hat)^2) / (sum(y^2) + eps)."""
    # Reshape so (b,) targets against (b, 1) predictions compare sample by sample, not broadcast.
    y_true = ops.reshape(ops.cast(y_true, y_pred.dtype), ops.shape(y_pred))
    error = ops.sum(ops.square(y_true - y_pred))
    energy = ops.sum(ops.square(y_true))
    return error / (energy + ESR_EPSILON)


def _recurrent(units: int, *, sequences: bool, cell: ModelCell = "lstm") -> keras.layers.Layer:
    """The LSTM (or GRU) layer, named after its cell, with Keras' cuDNN-eligible settings."""
    settings: dict[str, Any] = {
        "activation": "tanh",
        "recurrent_activation": "sigmoid",
        "recurrent_dropout": 0.0,
        "unroll": False,
        "use_bias": True,
        "return_sequences": sequences,
        "return_state": sequences,
        "name": cell,
    }
    if cell == "gru":
        return keras.layers.GRU(units, reset_after=True, **settings)
    return keras.layers.LSTM(units, **settings)


def recurrent_layer(model: keras.Model) -> keras.layers.Layer | None:
    """The model's LSTM or GRU layer (found by its name), or None (a WaveNet)."""
    names = {layer.name for layer in model.layers}
    return next((model.get_layer(name) for name in RECURRENT_LAYERS if name in names), None)


def _head() -> keras.layers.Dense:
    return keras.layers.Dense(1, activation="linear", name="wet_sample")


def build_model(
    context: int,
    lstm_units: int = 64,
    learning_rate: float | None = None,
    clipnorm: float | None = None,
    cell: ModelCell = "lstm",
) -> keras.Model:
    """The windowed model for ``context`` samples; compiled (Adam, ESR, MSE and MAE) given a learning rate.

    ``clipnorm``: Adam clips each gradient to this norm (None: no clipping, the seed's).
    """
    inputs = keras.Input(shape=(context, 1), name="dry_window")
    outputs = _head()(_recurrent(lstm_units, sequences=False, cell=cell)(inputs))
    model = keras.Model(inputs, outputs, name=f"sd1_{cell}{lstm_units}_c{context}")
    if learning_rate is not None:
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=clipnorm),
            loss=esr_loss,
            metrics=[keras.metrics.MeanSquaredError(name="mse"), keras.metrics.MeanAbsoluteError(name="mae")],
        )
    return model


def build_stateful_model(lstm_units: int = 64, cell: ModelCell = "lstm") -> keras.Model:
    """The stateful model: ``[dry (b, t, 1), h (b, u), c (b, u)] -> [wet (b, t, 1), h, c]`` (not compiled);
    a GRU's ``[dry, h] -> [wet, h]``."""
    dry = keras.Input(shape=(None, 1), name="dry")
    hidden = keras.Input(shape=(lstm_units,), name="h")
    if cell == "gru":
        sequence, last_hidden = _recurrent(lstm_units, sequences=True, cell="gru")(dry, initial_state=[hidden])
        return keras.Model([dry, hidden], [_head()(sequence), last_hidden], name=f"sd1_stateful_gru{lstm_units}")
    cell_state = keras.Input(shape=(lstm_units,), name="c")
    sequence, last_hidden, last_cell = _recurrent(lstm_units, sequences=True)(dry, initial_state=[hidden, cell_state])
    wet = _head()(sequence)
    return keras.Model([dry, hidden, cell_state], [wet, last_hidden, last_cell], name=f"sd1_stateful_lstm{lstm_units}")


def fused_stateful_call(model: keras.Model, dry: Any, hidden: Any, cell: Any) -> tuple[Any, Any, Any]:
    """What ``model([dry, hidden, cell])`` computes, through TensorFlow's fused CPU LSTM kernel.

    Keras runs an LSTM off the GPU as a loop of small ops, one iteration per sample; ``BlockLSTM``
    runs the whole stretch in one C++ kernel (and its gradient in another), about twice as fast
    forward and backward. It reads the stateful model's own variables, so training through it
    updates the Keras model. ``BlockLSTM`` wants the gate columns as i, c, f, o (Keras: i, f, c, o)
    and adds no forget bias here. (Not ``BlockLSTMV2``: its forward takes i, f, c, o but TensorFlow
    registers V1's gradient for it, which assumes i, c, f, o, so its gradients are wrong.)
    """
    import tensorflow as tf

    lstm_cell = model.get_layer("lstm").cell
    units = lstm_cell.units

    def as_icfo(matrix: Any) -> Any:
        i, f, c, o = (matrix[..., k * units : (k + 1) * units] for k in range(4))
        return tf.concat([i, c, f, o], axis=-1)

    no_peephole = tf.zeros((units,), lstm_cell.kernel.dtype)
    steps = tf.transpose(dry, [1, 0, 2])
    _, cells, _, _, _, _, hiddens = tf.raw_ops.BlockLSTM(
        seq_len_max=tf.cast(tf.shape(steps)[0], tf.int64),
        x=steps,
        cs_prev=cell,
        h_prev=hidden,
        w=as_icfo(tf.concat([lstm_cell.kernel, lstm_cell.recurrent_kernel], axis=0)),
        wci=no_peephole,
        wcf=no_peephole,
        wco=no_peephole,
        b=as_icfo(lstm_cell.bias),
        forget_bias=0.0,  # Keras' forget bias is in the bias vector
        cell_clip=-1.0,  # no clipping, as in Keras
        use_peephole=False,
    )
    wet = model.get_layer("wet_sample")(tf.transpose(hiddens, [1, 0, 2]))
    return wet, hiddens[-1], cells[-1]


def lstm_step_flops(units: int, cell: ModelCell = "lstm") -> float:
    """Gate matrix-product FLOPs of one LSTM step with one input feature: 2 x (1 + u) x 4u (a GRU's: 3 gates)."""
    return 2.0 * (1 + units) * GATES[cell] * units


def flops_per_sample(
    kind: ModelKind,
    context: int | None,
    units: int | None,
    training: bool = False,
    preset: str | None = None,
    cell: ModelCell = "lstm",
) -> float:
    """Matrix-product FLOPs per output sample: n steps for a windowed model, one for a stateful one, every
    convolution once for a WaveNet of ``preset`` (x3 training); ``cell`` gru: three gates, not four."""
    if kind == "wavenet":
        from sd1job.wavenet_presets import macs_per_sample, preset_spec

        return 2.0 * macs_per_sample(preset_spec(preset or "standard")) * (3 if training else 1)
    steps = 1 if kind == "stateful" else int(context or 0)
    return steps * lstm_step_flops(int(units or 0), cell) * (3 if training else 1)
