"""NAM's WaveNet architecture as data: the easy trainer's presets, their receptive field (pure, no TensorFlow).

Neural Amp Modeler's WaveNet (``nam/models/wavenet.py``; the presets are ``get_wavenet_config`` in
``nam/train/core.py``) is a stack of *layer arrays*. An array re-channels its input with a 1x1
convolution (no bias), then runs layers, each

    z = conv_k,d(x) + mixer(dry);  a = tanh(z);  x <- x + 1x1(a);  head <- head + a

(``conv_k,d``: a causal convolution of kernel ``k`` and dilation ``d`` with bias; ``mixer``: a 1x1
convolution of the dry input, no bias; the residual 1x1 with bias). The summed ``a`` of the array
(plus the previous array's head output) goes through the array's ``head_rechannel`` 1x1
convolution (to ``head_size`` channels, with bias if ``head_bias``); the next array takes the
residual ``x`` as input and that head output as its head's start. The last array's head has one
channel; times ``head_scale`` it is the output. Every preset is ungated, tanh, kernel 3, with no
extra head network.

The receptive field is ``1 + sum over layers of (k - 1) d``: 4,093 samples for each preset below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

WavenetPreset = Literal["standard", "lite", "feather", "nano"]
WAVENET_PRESETS: tuple[WavenetPreset, ...] = ("standard", "lite", "feather", "nano")
HEAD_SCALE = 0.02
KERNEL_SIZE = 3
_DOUBLING_10 = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_DOUBLING_7 = (1, 2, 4, 8, 16, 32, 64)
_LONG_13 = (128, 256, 512, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


@dataclass(frozen=True)
class LayerArray:
    """One layer array: its input and layer channels, head size, kernel and dilations (tanh, ungated)."""

    input_size: int
    channels: int
    head_size: int
    dilations: tuple[int, ...]
    head_bias: bool
    kernel_size: int = KERNEL_SIZE

    @property
    def receptive_field(self) -> int:
        """``1 + (k - 1) * sum(dilations)``."""
        return 1 + (self.kernel_size - 1) * sum(self.dilations)

    def nam_config(self) -> dict[str, object]:
        """The array's entry of a ``.nam`` file's ``config.layers``, in both of NAM's spellings: the keys of
        ``_Layers`` up to neural-amp-modeler 0.12 (``head_size``, ``head_bias``, ``gated``) and the ``head``
        object that 0.13 requires (each loader ignores the other's keys)."""
        return {
            "input_size": self.input_size,
            "condition_size": 1,
            "head_size": self.head_size,
            "head": {"out_channels": self.head_size, "kernel_size": 1, "bias": self.head_bias},
            "channels": self.channels,
            "kernel_size": self.kernel_size,
            "dilations": list(self.dilations),
            "activation": "Tanh",
            "gated": False,
            "head_bias": self.head_bias,
        }


@dataclass(frozen=True)
class WavenetSpec:
    """A WaveNet: its layer arrays and head scale."""

    arrays: tuple[LayerArray, ...]
    head_scale: float = HEAD_SCALE

    def __post_init__(self) -> None:
        if not self.arrays or self.arrays[0].input_size != 1 or self.arrays[-1].head_size != 1:
            raise ValueError("a WaveNet takes one input channel and its last array's head has one channel")
        for before, after in zip(self.arrays, self.arrays[1:], strict=False):
            if after.input_size != before.channels or after.channels != before.head_size:
                raise ValueError("an array's input must be the last one's channels and its channels its head size")

    @property
    def receptive_field(self) -> int:
        """Input samples that output sample t depends on: ``dry[t - R + 1 .. t]``."""
        return 1 + sum(array.receptive_field - 1 for array in self.arrays)

    def parameter_count(self) -> int:
        """Weights NAM stores (its last residual 1x1, which feeds nothing, included; head_scale excluded)."""
        total = 0
        for array in self.arrays:
            c = array.channels
            per_layer = c * c * array.kernel_size + c + c + c * c + c
            total += array.input_size * c + len(array.dilations) * per_layer
            total += c * array.head_size + (array.head_size if array.head_bias else 0)
        return total


def _two_arrays(channels: int, dilations: tuple[tuple[int, ...], tuple[int, ...]]) -> WavenetSpec:
    half = channels // 2
    return WavenetSpec(
        (
            LayerArray(1, channels, half, dilations[0], head_bias=False),
            LayerArray(channels, half, 1, dilations[1], head_bias=True),
        )
    )


def preset_spec(preset: str) -> WavenetSpec:
    """The architecture of one of NAM's easy-trainer presets; ValueError for another name."""
    specs = {
        "standard": _two_arrays(16, (_DOUBLING_10, _DOUBLING_10)),
        "lite": _two_arrays(12, (_DOUBLING_7, _LONG_13)),
        "feather": _two_arrays(8, (_DOUBLING_7, _LONG_13)),
        "nano": _two_arrays(4, (_DOUBLING_7, _LONG_13)),
    }
    if preset not in specs:
        raise ValueError(f"WaveNet preset {preset!r} is not one of {', '.join(WAVENET_PRESETS)}")
    return specs[preset]


def macs_per_sample(spec: WavenetSpec) -> int:
    """Multiply-adds per output sample in streaming inference (every convolution, once per sample)."""
    total = 0
    for array in spec.arrays:
        c = array.channels
        total += array.input_size * c + c * array.head_size
        total += len(array.dilations) * (c * c * array.kernel_size + c + c * c)
    return total
