"""The WaveNet as a Neural Amp Modeler ``.nam`` file (architecture ``"WaveNet"``).

The document is NAM's (``docs/source/model-file.rst``; ``sd1job.export`` has the common fields):
``config`` is what NAM's ``_WaveNet.export_config`` writes, ``{"layers": [one object per layer
array: input_size, condition_size, head_size, channels, kernel_size, dilations, activation,
gated, head_bias, and head = {out_channels, kernel_size 1, bias}], "head": null, "head_scale":
0.02}`` (``head`` is how neural-amp-modeler 0.13 spells head_size and head_bias; the file carries
both spellings, and each loader ignores the keys it does not know), and ``weights`` is NAM's
``export_weights`` order, which its loader and C++ core read back in the same order. Per array:

1. the input re-channel 1x1 (channels x input_size), no bias;
2. per layer: the dilated convolution's weight (out x in x kernel, PyTorch's layout, row-major),
   its bias; the dry mixer (channels x 1), no bias; the residual 1x1 (channels x channels) and its
   bias;
3. the head re-channel 1x1 (head_size x channels), then its bias if ``head_bias``;

then ``head_scale`` as the last number. Keras keeps a Conv1D kernel as (kernel, in, out): PyTorch's
weight is its transpose (out, in, kernel), and both convolve the same way (tap ``kernel - 1`` on the
newest sample). sd1job's model has no residual 1x1 in the last array's last layer (it feeds
nothing); its place in the file holds zeros.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sd1job.export import NAM_FILE_VERSION, NamFileError, NamMetadata, _check_metadata, _check_version, _is_number
from sd1job.infer.wavenet import WavenetWeights
from sd1job.wavenet_presets import LayerArray, WavenetSpec

ARCHITECTURE = "WaveNet"
_ARRAY_KEYS = (
    "input_size",
    "condition_size",
    "head_size",
    "head",
    "channels",
    "kernel_size",
    "dilations",
    "activation",
    "gated",
    "head_bias",
)


def wavenet_nam_config(spec: WavenetSpec) -> dict[str, Any]:
    """The ``config`` object of the file (NAM's ``export_config``)."""
    return {"layers": [array.nam_config() for array in spec.arrays], "head": None, "head_scale": spec.head_scale}


def wavenet_nam_weights(weights: WavenetWeights) -> np.ndarray:
    """The flat float32 weight list in NAM's order (module docstring)."""
    parts: list[Any] = []
    for array, values in zip(weights.spec.arrays, weights.arrays, strict=True):
        c = array.channels
        parts.append(values.rechannel.T)
        for layer in values.layers:
            parts += [layer.conv.transpose(2, 1, 0), layer.conv_bias, layer.mixer]
            out = layer.out if layer.out is not None else np.zeros((c, c), np.float32)
            out_bias = layer.out_bias if layer.out_bias is not None else np.zeros(c, np.float32)
            parts += [out.T, out_bias]
        parts.append(values.head.T)
        if array.head_bias:
            parts.append(values.head_bias)
    parts.append([weights.spec.head_scale])
    return np.concatenate([np.asarray(part, dtype=np.float32).ravel() for part in parts])


def build_wavenet_nam(weights: WavenetWeights, sample_rate: float, metadata: NamMetadata) -> dict[str, Any]:
    """The ``.nam`` document of a WaveNet (checked, JSON-ready)."""
    if not (math.isfinite(sample_rate) and sample_rate > 0):
        raise NamFileError(f"sample rate {sample_rate!r} is not a positive number of Hz")
    document = {
        "version": NAM_FILE_VERSION,
        "metadata": metadata.to_json(),
        "architecture": ARCHITECTURE,
        "config": wavenet_nam_config(weights.spec),
        "weights": wavenet_nam_weights(weights).astype(np.float64).tolist(),
        "sample_rate": float(sample_rate),
    }
    check_wavenet_nam(document, "the exported model")
    return document


def spec_from_nam_config(config: Any, source: str) -> WavenetSpec:
    """The architecture a WaveNet file's ``config`` describes; NamFileError if sd1job cannot read it."""
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list) or not config["layers"]:
        raise NamFileError(f"{source}: config.layers is not a non-empty list of layer arrays")
    if config.get("head") is not None:
        raise NamFileError(f"{source}: config.head is set; sd1job's WaveNet has no head network")
    arrays = []
    for index, entry in enumerate(config["layers"]):
        if not isinstance(entry, dict) or set(entry) != set(_ARRAY_KEYS):
            raise NamFileError(f"{source}: config.layers[{index}] does not have exactly the keys {list(_ARRAY_KEYS)}")
        if entry["activation"] != "Tanh" or entry["gated"] is not False or entry["condition_size"] != 1:
            raise NamFileError(f"{source}: config.layers[{index}] is not an ungated tanh array on one input")
        arrays.append(
            LayerArray(
                entry["input_size"],
                entry["channels"],
                entry["head_size"],
                tuple(entry["dilations"]),
                bool(entry["head_bias"]),
                entry["kernel_size"],
            )
        )
    if not _is_number(config.get("head_scale")):
        raise NamFileError(f"{source}: config.head_scale is not a finite number")
    try:
        return WavenetSpec(tuple(arrays), float(config["head_scale"]))
    except ValueError as error:
        raise NamFileError(f"{source}: config.layers: {error}") from None


def check_wavenet_nam(document: Any, source: str) -> None:
    """Check a parsed WaveNet ``.nam`` document; NamFileError (one line) at the first fault."""
    if not isinstance(document, dict):
        raise NamFileError(f"{source}: not a JSON object")
    for key in ("version", "architecture", "config", "weights"):
        if key not in document:
            raise NamFileError(f"{source}: missing field {key!r}")
    _check_version(document["version"], source)
    if document["architecture"] != ARCHITECTURE:
        raise NamFileError(f"{source}: architecture {document['architecture']!r} is not {ARCHITECTURE!r}")
    spec = spec_from_nam_config(document["config"], source)
    weights = document["weights"]
    expected = spec.parameter_count() + 1
    if not isinstance(weights, list) or len(weights) != expected:
        count = len(weights) if isinstance(weights, list) else "no"
        raise NamFileError(f"{source}: weights has {count} numbers, this WaveNet config reads {expected}")
    bad = next((i for i, value in enumerate(weights) if not _is_number(value)), None)
    if bad is not None:
        raise NamFileError(f"{source}: weights[{bad}] is {weights[bad]!r}, not a finite number")
    if "sample_rate" in document and not (_is_number(document["sample_rate"]) and document["sample_rate"] > 0):
        raise NamFileError(f"{source}: sample_rate is {document['sample_rate']!r}, not a positive number of Hz")
    if "metadata" in document:
        _check_metadata(document["metadata"], source)


def wavenet_weights_from_nam(document: dict[str, Any], source: str) -> WavenetWeights:
    """The weights a checked WaveNet ``.nam`` document holds, read back in NAM's order (the inverse of the export)."""
    from sd1job.infer.wavenet import ArrayWeights, LayerWeights

    check_wavenet_nam(document, source)
    spec = spec_from_nam_config(document["config"], source)
    flat = np.asarray(document["weights"], np.float32)
    position = 0

    def take(*shape: int) -> np.ndarray:
        nonlocal position
        size = int(np.prod(shape))
        part = flat[position : position + size].reshape(shape)
        position += size
        return part

    arrays = []
    last = len(spec.arrays) - 1
    for a, array in enumerate(spec.arrays):
        c, k = array.channels, array.kernel_size
        rechannel = take(c, array.input_size).T
        layers = []
        for index, dilation in enumerate(array.dilations):
            conv = np.ascontiguousarray(take(c, c, k).transpose(2, 1, 0))
            conv_bias, mixer = take(c), take(c)
            out, out_bias = np.ascontiguousarray(take(c, c).T), take(c)
            final = a == last and index == len(array.dilations) - 1
            layers.append(
                LayerWeights(conv, conv_bias, mixer, None if final else out, None if final else out_bias, dilation)
            )
        head = take(array.head_size, c).T
        head_bias = take(array.head_size) if array.head_bias else np.zeros(array.head_size, np.float32)
        rechannel, head = np.ascontiguousarray(rechannel), np.ascontiguousarray(head)
        arrays.append(ArrayWeights(rechannel, tuple(layers), head, head_bias))
    return WavenetWeights(spec, tuple(arrays))
