"""Model files for players: the stateful model as a Neural Amp Modeler ``.nam`` file.

A ``.nam`` file is one JSON object (NAM's documented format, ``docs/source/model-file.rst`` of
neural-amp-modeler): ``version`` (semantic version string), ``architecture`` (here ``"LSTM"``),
``config`` (``input_size``, ``hidden_size``, ``num_layers``), ``weights`` (one flat list of
numbers), and the optional ``sample_rate`` (Hz) and ``metadata`` (``date``, ``name``,
``modeled_by``, ``gear_type``, ...).

The weights, in the order NAM's LSTM exports them (``nam/models/recurrent.py``,
``LSTM._export_weights``) and its C++ core reads them (``NAM/lstm.cpp``, ``LSTMCell``'s
constructor, then the head), for each layer:

1. ``[W_ih | W_hh]``, the (4H x (I + H)) matrix from input and hidden state to the gates,
   row-major;
2. the bias (4H), the sum of PyTorch's ``bias_ih`` and ``bias_hh`` (Keras has one bias);
3. the initial hidden state (H), then the initial cell state (H);

then the head's weight (H, row-major (1 x H)) and bias (1). Gate order is PyTorch's
(input, forget, cell candidate, output), which is Keras' too, so Keras' kernel (1 x 4H) and
recurrent kernel (H x 4H) are the transposes of ``W_ih`` and ``W_hh`` with no reordering. In all
``4H (I + H) + 6H`` per layer (``8H^2 + 6H`` for a later layer) plus ``H + 1``.

The initial state: NAM's own exporter writes the state its LSTM reaches after 48,000 zero
samples from zeros (``_get_initial_state``), and NAM's Python model starts every forward pass
from the state in the file (``init_from_nam`` -> ``import_weights`` -> ``_initial_state``), with no
burn-in. sd1job's predictor starts from zeros, so the file carries zeros by default and NAM's
Python output equals sd1job's streaming output from the first sample. NAM's C++ core (the
plugins) also "prewarms" after loading and on every reset: it runs zeros for
``0.5 x sample_rate`` samples, rounded up to whole buffers of its maximum buffer size (4096 when
the host has set none), before the first real sample. A plugin's output is therefore sd1job's
streaming output after that many zeros (``StreamingPredictor.stream(zeros(N))``, then the signal
from the state it returns).

Version ``0.5.4`` is written: the last file version of NAM's change log, read by every NAM core
seen (older ones accept only 0.5.x, newer ones 0.5.0 to 0.7.x) and by the Python loader (which
does not check it); nothing of the LSTM layout changed after 0.5. The ``config`` carries exactly
NAM's three keys: NAM's Python loader passes every config key to ``torch.nn.LSTM``.
sd1job's training information goes under ``metadata.sd1job_training``, not NAM's ``training``
key, whose documented contents are the fields of NAM's own trainers.

The WaveNet kind is exported as NAM's "WaveNet" architecture (``sd1job.export_wavenet``);
``check_nam`` and ``decode_nam`` read both. The windowed model has no player, and NAM's players
load no GRU (``model.cell: gru``): ``require_exportable`` refuses both.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from sd1job.errors import UserError
from sd1job.infer.stateful import LstmState
from sd1job.infer.weights import LstmWeights

NAM_FILE_VERSION = "0.5.4"
ARCHITECTURE = "LSTM"
MODELED_BY = "sd1job"
GEAR_TYPE = "pedal"
TRAINING_KEY = "sd1job_training"
GEAR_TYPES = ("amp", "pedal", "pedal_amp", "amp_cab", "amp_pedal_cab", "preamp", "studio")
TONE_TYPES = ("clean", "overdrive", "crunch", "hi_gain", "fuzz")
DATE_FIELDS = ("year", "month", "day", "hour", "minute", "second")
# (major, minor) file versions that NAM's loaders read: 0.5.0 up to the newest core's 0.7.x.
READABLE_VERSIONS = ((0, 5), (0, 6), (0, 7))
_REQUIRED = ("version", "architecture", "config", "weights")
_OPTIONAL = ("sample_rate", "metadata")
_CONFIG_KEYS = ("input_size", "hidden_size", "num_layers")
_METADATA_TEXT = ("name", "modeled_by", "gear_make", "gear_model")
_METADATA_NUMBERS = ("input_level_dbu", "output_level_dbu", "loudness", "gain")
_SEMVER = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")


class ExportError(UserError, ValueError):
    """A model that cannot be exported for players (its kind or its metadata); the message says why."""


class NamFileError(UserError, ValueError):
    """A ``.nam`` document that does not follow NAM's format; the message names the file and the field."""


@dataclass(frozen=True)
class NamMetadata:
    """What a player shows about the model. ``modeled_by`` is always sd1job and ``gear_type`` pedal."""

    name: str
    date: datetime
    training: Mapping[str, Any] = field(default_factory=dict)
    gear_make: str | None = None
    gear_model: str | None = None
    tone_type: str | None = None

    def __post_init__(self) -> None:
        if self.tone_type is not None and self.tone_type not in TONE_TYPES:
            raise ExportError(f"metadata tone_type {self.tone_type!r} is not one of NAM's {', '.join(TONE_TYPES)}")
        try:
            json.dumps(dict(self.training), allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ExportError(f"metadata training information is not plain JSON ({error})") from None

    def to_json(self) -> dict[str, Any]:
        """The ``metadata`` object of the ``.nam`` file (fields left unset are omitted)."""
        document: dict[str, Any] = {
            "date": {name: int(getattr(self.date, name)) for name in DATE_FIELDS},
            "name": self.name,
            "modeled_by": MODELED_BY,
            "gear_type": GEAR_TYPE,
            "gear_make": self.gear_make,
            "gear_model": self.gear_model,
            "tone_type": self.tone_type,
            TRAINING_KEY: dict(self.training),
        }
        return {key: value for key, value in document.items() if value is not None}


GRU_NOT_EXPORTABLE = "a GRU model cannot be exported to .nam: NAM's players load LSTM and WaveNet models only"


def require_exportable(kind: str, cell: str = "lstm", unit: str | None = None) -> None:
    """Return if a model of ``kind`` (windowed, stateful, wavenet) with recurrent ``cell`` (lstm, gru) can be
    exported to ``.nam``; ExportError if not (naming ``unit`` when given)."""
    if kind == "stateful" and cell == "gru":
        raise ExportError(f"{unit}: {GRU_NOT_EXPORTABLE}" if unit else GRU_NOT_EXPORTABLE)
    if kind in ("stateful", "wavenet"):
        return
    if kind == "windowed":
        raise ExportError(
            "a windowed model cannot be exported to .nam: no NAM player runs an LSTM over a window of n samples "
            "per output sample (export a stateful or wavenet model)"
        )
    raise ExportError(f"model kind {kind!r} is not one of windowed, stateful, wavenet")


def lstm_weight_count(input_size: int, hidden_size: int, num_layers: int) -> int:
    """How many weights NAM's C++ LSTM reads for this config (layers, then the head)."""
    first = 4 * hidden_size * (input_size + hidden_size) + 6 * hidden_size
    later = 8 * hidden_size * hidden_size + 6 * hidden_size
    return first + (num_layers - 1) * later + hidden_size + 1


def nam_weights(weights: LstmWeights, initial_state: LstmState | None = None) -> np.ndarray:
    """The flat float32 weight list of the one-layer NAM LSTM (order in the module docstring); zero state by default."""
    units = weights.units
    state = initial_state or LstmState.zeros(units)
    gates = np.concatenate([weights.kernel[:, None], weights.recurrent.T], axis=1)  # [W_ih | W_hh], (4H, 1 + H)
    parts = [gates, weights.bias, state.h, state.c, weights.dense_kernel, [weights.dense_bias]]
    flat = np.concatenate([np.asarray(part, dtype=np.float32).ravel() for part in parts])
    if flat.size != lstm_weight_count(1, units, 1):
        raise ValueError(f"weights and state do not fit an LSTM({units}): {flat.size} numbers")
    return flat


def build_nam(
    weights: LstmWeights, sample_rate: float, metadata: NamMetadata, initial_state: LstmState | None = None
) -> dict[str, Any]:
    """The ``.nam`` document of the stateful model (a checked JSON-ready dict); zero initial state by default."""
    if not isinstance(weights, LstmWeights):
        raise ExportError(GRU_NOT_EXPORTABLE)
    if not (math.isfinite(sample_rate) and sample_rate > 0):
        raise ExportError(f"sample rate {sample_rate!r} is not a positive number of Hz")
    document = {
        "version": NAM_FILE_VERSION,
        "metadata": metadata.to_json(),
        "architecture": ARCHITECTURE,
        "config": {"input_size": 1, "hidden_size": weights.units, "num_layers": 1},
        # float32 values widened exactly to float64: the decimal text reads back to the same float32
        "weights": nam_weights(weights, initial_state).astype(np.float64).tolist(),
        "sample_rate": float(sample_rate),
    }
    check_nam(document, "the exported model")
    return document


def encode_nam(document: Mapping[str, Any], source: str = "the .nam document") -> bytes:
    """The document as the bytes of a ``.nam`` file (UTF-8 JSON), checked first (NamFileError)."""
    check_nam(document, source)
    return json.dumps(document, allow_nan=False).encode("utf-8")


def decode_nam(data: bytes, source: str) -> dict[str, Any]:
    """Parse and check the bytes of a ``.nam`` file; NamFileError naming ``source`` if they are not one."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise NamFileError(f"{source}: not a JSON file ({error})") from None
    check_nam(document, source)
    return document


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_version(version: Any, source: str) -> None:
    match = _SEMVER.match(version) if isinstance(version, str) else None
    if match is None:
        raise NamFileError(f"{source}: version {version!r} is not a semantic version string 'X.Y.Z'")
    if (int(match[1]), int(match[2])) not in READABLE_VERSIONS:
        raise NamFileError(f"{source}: version {version} is not one NAM's loaders read (0.5.0 to 0.7.x)")


def _check_config(config: Any, source: str) -> tuple[int, int, int]:
    if not isinstance(config, dict):
        raise NamFileError(f"{source}: config is not a JSON object")
    if set(config) != set(_CONFIG_KEYS):
        raise NamFileError(f"{source}: config has keys {sorted(config)}, NAM's LSTM takes exactly {list(_CONFIG_KEYS)}")
    for key in _CONFIG_KEYS:
        if not _is_count(config[key]):
            raise NamFileError(f"{source}: config.{key} is {config[key]!r}, not a positive integer")
    if config["input_size"] != 1:
        raise NamFileError(f"{source}: config.input_size is {config['input_size']}; a player feeds the LSTM 1 input")
    return config["input_size"], config["hidden_size"], config["num_layers"]


def _check_weights(weights: Any, config: tuple[int, int, int], source: str) -> None:
    if not isinstance(weights, list):
        raise NamFileError(f"{source}: weights is not a JSON list")
    expected = lstm_weight_count(*config)
    if len(weights) != expected:
        input_size, hidden_size, num_layers = config
        raise NamFileError(
            f"{source}: weights has {len(weights)} numbers, NAM's LSTM with input_size {input_size}, "
            f"hidden_size {hidden_size}, num_layers {num_layers} reads {expected}"
        )
    bad = next((i for i, value in enumerate(weights) if not _is_number(value)), None)
    if bad is not None:
        raise NamFileError(f"{source}: weights[{bad}] is {weights[bad]!r}, not a finite number")


def _check_metadata(metadata: Any, source: str) -> None:
    if not isinstance(metadata, dict):
        raise NamFileError(f"{source}: metadata is not a JSON object")
    date = metadata.get("date")
    if date is not None:
        if not isinstance(date, dict) or set(date) != set(DATE_FIELDS):
            raise NamFileError(f"{source}: metadata.date is not an object of {', '.join(DATE_FIELDS)}")
        for name in DATE_FIELDS:
            if not isinstance(date[name], int) or isinstance(date[name], bool):
                raise NamFileError(f"{source}: metadata.date.{name} is {date[name]!r}, not an integer")
    for key in _METADATA_TEXT:
        if metadata.get(key) is not None and not isinstance(metadata[key], str):
            raise NamFileError(f"{source}: metadata.{key} is {metadata[key]!r}, not a string")
    for key, options in (("gear_type", GEAR_TYPES), ("tone_type", TONE_TYPES)):
        if metadata.get(key) is not None and metadata[key] not in options:
            raise NamFileError(f"{source}: metadata.{key} is {metadata[key]!r}, not one of {', '.join(options)}")
    for key in _METADATA_NUMBERS:
        if metadata.get(key) is not None and not _is_number(metadata[key]):
            raise NamFileError(f"{source}: metadata.{key} is {metadata[key]!r}, not a finite number")
    for key in ("training", TRAINING_KEY):
        if metadata.get(key) is not None and not isinstance(metadata[key], dict):
            raise NamFileError(f"{source}: metadata.{key} is not a JSON object")


def check_nam(document: Any, source: str) -> None:
    """Check a parsed ``.nam`` document against NAM's format for an LSTM; NamFileError (one line) at the first fault.

    Checked: the top-level fields (required and optional, no others), the version (semantic, one
    NAM reads), the architecture (LSTM), the config (exactly NAM's three keys, positive integers,
    one input), the weights (finite numbers, exactly as many as NAM's C++ LSTM reads for the
    config), the sample rate (a positive number) and the metadata fields the format documents.
    """
    if not isinstance(document, Mapping):
        raise NamFileError(f"{source}: not a JSON object")
    if document.get("architecture") == "WaveNet":
        from sd1job.export_wavenet import check_wavenet_nam

        check_wavenet_nam(dict(document), source)
        return
    missing = [key for key in _REQUIRED if key not in document]
    if missing:
        raise NamFileError(f"{source}: missing field {missing[0]!r}")
    unknown = sorted(set(document) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise NamFileError(
            f"{source}: unknown field {unknown[0]!r} (a .nam file has {', '.join(_REQUIRED + _OPTIONAL)})"
        )
    _check_version(document["version"], source)
    if document["architecture"] != ARCHITECTURE:
        raise NamFileError(f"{source}: architecture {document['architecture']!r} is not {ARCHITECTURE!r}")
    config = _check_config(document["config"], source)
    _check_weights(document["weights"], config, source)
    if "sample_rate" in document and not (_is_number(document["sample_rate"]) and document["sample_rate"] > 0):
        raise NamFileError(f"{source}: sample_rate is {document['sample_rate']!r}, not a positive number of Hz")
    if "metadata" in document:
        _check_metadata(document["metadata"], source)
