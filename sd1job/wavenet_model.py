"""NAM's WaveNet built in Keras: dilated causal Conv1D layer arrays, as ``sd1job.wavenet_presets`` describes.

The model maps dry ``(batch, T, 1)`` to wet ``(batch, T - R + 1, 1)`` (R the receptive field) with
valid (unpadded) convolutions: output j is the wet sample at input position ``j + R - 1``, from
``dry[j .. j + R - 1]``. Every convolution is a Keras ``Conv1D`` (dilated for the layers' kernels;
a GPU runs them as cuDNN convolutions); the residual and head paths are cropped at the front to
the length that is left, as NAM slices ``[..., -length:]``.

To score a whole signal from its first sample, NAM pads ``R - 1`` zeros in front of it (its
``pad_start``); ``predict_signal`` does the same, so output t is a function of ``dry[t-R+1 .. t]``
with zeros before the start, the alignment the other kinds use.

Layer names (inference and export read the weights by them), for array a and layer l:
``a{a}_rechannel``, ``a{a}_l{l}_conv``, ``a{a}_l{l}_mixer``, ``a{a}_l{l}_1x1``, ``a{a}_head``, and
``head_scale``. The last array's last layer has no ``_1x1``: its residual output feeds nothing
(NAM stores its weights anyway; the export writes zeros there).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from sd1job.wavenet_presets import WavenetSpec

# predict_signal scores this many outputs per call (bounds the activations held at once).
PREDICT_CHUNK = 1 << 16


def _crop(tensor: Any, samples: int, name: str) -> Any:
    return tensor if samples == 0 else keras.layers.Cropping1D((samples, 0), name=name)(tensor)


def build_wavenet(spec: WavenetSpec, name: str = "sd1_wavenet") -> keras.Model:
    """The WaveNet of ``spec`` (not compiled): ``(batch, T, 1) -> (batch, T - R + 1, 1)``."""
    dry = keras.Input(shape=(None, 1), name="dry")
    x, head = dry, None
    consumed = 0  # samples lost so far by valid convolutions
    last = len(spec.arrays) - 1
    for a, array in enumerate(spec.arrays):
        array_end = consumed + array.receptive_field - 1
        if head is not None:  # the previous array's head output, cropped to this array's output length
            head = _crop(head, array_end - consumed, f"a{a}_head_in_crop")
        x = keras.layers.Conv1D(array.channels, 1, use_bias=False, name=f"a{a}_rechannel")(x)
        for index, dilation in enumerate(array.dilations):
            lost = (array.kernel_size - 1) * dilation
            prefix = f"a{a}_l{index}"
            z = keras.layers.Conv1D(array.channels, array.kernel_size, dilation_rate=dilation, name=f"{prefix}_conv")(x)
            consumed += lost
            condition = _crop(dry, consumed, f"{prefix}_dry_crop")
            mixed = keras.layers.Conv1D(array.channels, 1, use_bias=False, name=f"{prefix}_mixer")(condition)
            activation = keras.layers.Activation("tanh", name=f"{prefix}_tanh")(keras.layers.Add()([z, mixed]))
            term = _crop(activation, array_end - consumed, f"{prefix}_head_crop")
            head = term if head is None else keras.layers.Add(name=f"{prefix}_head_sum")([head, term])
            if a == last and index == len(array.dilations) - 1:
                continue
            residual = keras.layers.Conv1D(array.channels, 1, name=f"{prefix}_1x1")(activation)
            x = keras.layers.Add(name=f"{prefix}_residual")([_crop(x, lost, f"{prefix}_x_crop"), residual])
        head = keras.layers.Conv1D(array.head_size, 1, use_bias=array.head_bias, name=f"a{a}_head")(head)
    wet = keras.layers.Rescaling(spec.head_scale, name="head_scale")(head)
    return keras.Model(dry, wet, name=name)


def receptive_field_of(model: keras.Model) -> int:
    """R of a built WaveNet: how many input samples its valid convolutions consume, plus one."""
    probe = 1 << 14
    return probe - int(model.compute_output_shape((1, probe, 1))[1]) + 1


def predict_signal(model: keras.Model, dry: np.ndarray, receptive_field: int, chunk: int = PREDICT_CHUNK) -> np.ndarray:
    """The reference output for every sample of ``dry`` (R - 1 zeros in front, NAM's pad_start), by Keras predict."""
    signal = np.asarray(dry, dtype=np.float32).ravel()
    padded = np.concatenate([np.zeros(receptive_field - 1, np.float32), signal])
    out = np.empty(len(signal), np.float32)
    for start in range(0, len(signal), chunk):
        stop = min(start + chunk, len(signal))
        piece = padded[start : stop + receptive_field - 1][None, :, None]
        out[start:stop] = np.asarray(model.predict(piece, batch_size=1, verbose=0))[0, :, 0]
    return out
