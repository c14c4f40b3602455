"""The seed's model: input (n, 1) -> LSTM(units), last step -> Dense(1), linear; and the ESR loss.

The LSTM keeps Keras' defaults that make it eligible for the cuDNN kernel on a GPU (tanh and
sigmoid activations, no recurrent dropout, unroll False, bias on).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from sd1job.scores import ESR_EPSILON  # one epsilon for the training loss and the scores


@keras.saving.register_keras_serializable(package="sd1job")
def esr_loss(y_true: Any, y_pred: Any) -> Any:
    """Error-to-signal ratio of a batch: sum((y - y_hat)^2) / (sum(y^2) + eps)."""
    # Reshape so (b,) targets against (b, 1) predictions compare sample by sample, not broadcast.
    y_true = ops.reshape(ops.cast(y_true, y_pred.dtype), ops.shape(y_pred))
    error = ops.sum(ops.square(y_true - y_pred))
    energy = ops.sum(ops.square(y_true))
    return error / (energy + ESR_EPSILON)


def build_model(context: int, lstm_units: int = 64, learning_rate: float | None = None) -> keras.Model:
    """Build (and, given a learning rate, compile) the seed's LSTM -> Dense model for ``context`` samples."""
    inputs = keras.Input(shape=(context, 1), name="dry_window")
    hidden = keras.layers.LSTM(
        lstm_units,
        activation="tanh",
        recurrent_activation="sigmoid",
        recurrent_dropout=0.0,
        unroll=False,
        use_bias=True,
        return_sequences=False,
        name="lstm",
    )(inputs)
    outputs = keras.layers.Dense(1, activation="linear", name="wet_sample")(hidden)
    model = keras.Model(inputs, outputs, name=f"sd1_lstm{lstm_units}_c{context}")
    if learning_rate is not None:
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
            loss=esr_loss,
            metrics=[keras.metrics.MeanSquaredError(name="mse"), keras.metrics.MeanAbsoluteError(name="mae")],
        )
    return model


def parameter_count(lstm_units: int) -> int:
    """Trainable parameters of the model: 4 gates x (input + recurrent + bias) plus the Dense layer."""
    return 4 * lstm_units * (1 + lstm_units + 1) + lstm_units + 1
