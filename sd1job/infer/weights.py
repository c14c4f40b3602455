"""A trained model's LSTM (or GRU) and Dense weights, read from its ``.keras`` file and checked.

Both model kinds are one LSTM(u) (Keras gate order: input, forget, cell candidate, output; tanh
and sigmoid) feeding one linear Dense(1); they differ in how the LSTM is run. With ``model.cell:
gru`` the LSTM is a Keras GRU(u) with ``reset_after`` (gate order: update z, reset r, candidate
h; an input and a recurrent bias), read as ``GruWeights``. The windowed model
takes input ``(batch, n, 1)`` and keeps the last step; the stateful model takes ``(batch, time, 1)``
plus its initial state and returns every step.
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from sd1job.errors import UserError


class ModelFileError(UserError, ValueError):
    """A model file is unreadable or is not the model the unit needs; the message names the file."""


@dataclass(frozen=True)
class LstmWeights:
    """The weights of LSTM(u) -> Dense(1), in Keras' gate order (input, forget, cell, output)."""

    kernel: np.ndarray  # (4u,): the input weights of the one input feature
    recurrent: np.ndarray  # (u, 4u)
    bias: np.ndarray  # (4u,)
    dense_kernel: np.ndarray  # (u,)
    dense_bias: float

    @property
    def units(self) -> int:
        """The LSTM's hidden size u."""
        return int(self.recurrent.shape[0])


@dataclass(frozen=True)
class GruWeights:
    """The weights of GRU(u) -> Dense(1) with the reset gate after the product (Keras' ``reset_after``), gate
    order z, r, h: ``z, r = sigmoid(x W + b + h U + b'), candidate = tanh(x W_h + b_h + r (h U_h + b'_h))``,
    ``h' = z h + (1 - z) candidate``."""

    kernel: np.ndarray  # (3u,): the input weights of the one input feature
    recurrent: np.ndarray  # (u, 3u)
    bias: np.ndarray  # (3u,): the input bias
    recurrent_bias: np.ndarray  # (3u,): the bias added to h U (inside the reset gate's product for h)
    dense_kernel: np.ndarray  # (u,)
    dense_bias: float

    @property
    def units(self) -> int:
        """The GRU's hidden size u."""
        return int(self.recurrent.shape[0])


RecurrentWeights = LstmWeights | GruWeights


def load_model_bytes(data: bytes, source: str) -> Any:
    """Load a ``.keras`` file's bytes (read from the store) into a Keras model; ModelFileError if unreadable."""
    import keras

    from sd1job import model as _model  # noqa: F401  (registers esr_loss for load_model)

    if not data:
        raise ModelFileError(f"{source}: model file is empty (0 bytes)")
    handle, path = tempfile.mkstemp(suffix=".keras")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises ValueError, OSError, zipfile errors, KeyError...
        # Keras names the temp file it was given; the user knows the model by its store key.
        detail = " ".join(str(error).replace(path, "the file").split())[:200] or type(error).__name__
        if not zipfile.is_zipfile(io.BytesIO(data)):
            detail = "not a .keras zip archive"
        raise ModelFileError(f"{source}: not a readable Keras model file ({detail})") from None
    finally:
        os.unlink(path)


def _first_input_shape(model: Any) -> tuple[Any, ...] | None:
    shape = model.input_shape
    if isinstance(shape, list):
        shape = shape[0] if shape else None
    return tuple(shape) if shape is not None else None


def weights_from_model(model: Any, context: int | None, source: str) -> RecurrentWeights:
    """Check the model is sd1job's LSTM -> Dense (or GRU -> Dense) and take its weights.

    ``context`` n: the windowed model for n samples (input ``(None, n, 1)``, last step only);
    None: the stateful model (input ``(None, None, 1)``, every step returned).
    """
    import keras

    stateful = context is None
    expected = (None, None, 1) if stateful else (None, context, 1)
    shape = _first_input_shape(model)
    if shape is None or shape != expected:
        raise ModelFileError(f"{source}: model input shape is {model.input_shape}, expected {expected}")
    lstms = [layer for layer in model.layers if isinstance(layer, keras.layers.LSTM | keras.layers.GRU)]
    denses = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if len(lstms) != 1 or len(denses) != 1:
        raise ModelFileError(
            f"{source}: expected one LSTM and one Dense layer (or a GRU), found {len(lstms)} and {len(denses)}"
        )
    lstm, dense = lstms[0], denses[0]
    config = lstm.get_config()
    if (
        config.get("activation") != "tanh"
        or config.get("recurrent_activation") != "sigmoid"
        or not config.get("use_bias", True)
        or bool(config.get("return_sequences")) != stateful
        or config.get("go_backwards")
        or dense.get_config().get("activation") != "linear"
    ):
        raise ModelFileError(f"{source}: the LSTM/Dense settings differ from the model sd1job builds")
    if isinstance(lstm, keras.layers.GRU):
        return _gru_weights(lstm, dense, source)
    kernel, recurrent, bias = (np.asarray(w, dtype=np.float32) for w in lstm.get_weights())
    dense_kernel, dense_bias = (np.asarray(w, dtype=np.float32) for w in dense.get_weights())
    units = recurrent.shape[0]
    if kernel.shape != (1, 4 * units) or recurrent.shape != (units, 4 * units) or dense_kernel.shape != (units, 1):
        raise ModelFileError(f"{source}: unexpected weight shapes {kernel.shape}, {recurrent.shape}")
    return LstmWeights(kernel[0], recurrent, bias, dense_kernel[:, 0], float(dense_bias[0]))


def _gru_weights(gru: Any, dense: Any, source: str) -> GruWeights:
    """A checked GRU's weights: reset after the product (Keras' default), so a bias of shape (2, 3u)."""
    if not gru.get_config().get("reset_after", False):
        raise ModelFileError(f"{source}: the GRU resets before its recurrent product; sd1job builds reset_after=True")
    kernel, recurrent, bias = (np.asarray(w, dtype=np.float32) for w in gru.get_weights())
    dense_kernel, dense_bias = (np.asarray(w, dtype=np.float32) for w in dense.get_weights())
    units = recurrent.shape[0]
    if (
        kernel.shape != (1, 3 * units)
        or recurrent.shape != (units, 3 * units)
        or bias.shape != (2, 3 * units)
        or dense_kernel.shape != (units, 1)
    ):
        raise ModelFileError(f"{source}: unexpected GRU weight shapes {kernel.shape}, {recurrent.shape}, {bias.shape}")
    return GruWeights(kernel[0], recurrent, bias[0], bias[1], dense_kernel[:, 0], float(dense_bias[0]))


def load_weights(data: bytes, source: str, context: int | None) -> RecurrentWeights:
    """The checked weights of a ``.keras`` file's bytes (``context`` None: the stateful model)."""
    return weights_from_model(load_model_bytes(data, source), context, source)
