"""The experiment design: the grid's axes, the arms they make, and the short name of each arm.

Pure (no I/O). A config's ``sweep.grid`` maps dotted config fields to lists of values; the arms
of the experiment are the product of those axes (in the order the grid lists them), and each arm
is trained per model kind, per context (windowed) and per training seed, as without a grid.

Arm names (the "tag" in front of a unit's name and folder) are made from the values, one token
per axis joined by ``_``: the axis's abbreviation followed by the value. The abbreviation is the
initials of the field's last component when it has several words (``lstm_units`` -> ``lu``,
``learning_rate`` -> ``lr``, ``lr_decay`` -> ``ld``, ``batch_size`` -> ``bs``), the whole
component when it has one (``clipnorm``, ``cell``), and nothing for ``recordings.set`` (the
set's own name is the token). When two axes of a grid would share an abbreviation, both use
their whole last component. Values print as they read (``96``, ``0.0001``, ``1e-05``, ``gru``,
``true``/``false``). So ``{recordings.set: [low, high], train.lstm_units: [64, 96]}`` makes the
arms ``low_lu64``, ``low_lu96``, ``high_lu64``, ``high_lu96``, and the unit ``high_lu96-c44-s25``
lives in ``models/high_lu96/c44/s25/``. Without a grid there is no tag and nothing changes.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any

# Sections no axis may come from, and fields that already define the units of every arm.
NOT_AXES_SECTIONS = ("store", "run_id", "metrics", "eval", "sweep")
NOT_AXES_FIELDS = {
    "dataset.contexts": "it is the context axis already",
    "dataset.context_ms": "it is the context axis already",
    "train.seed": "training seeds are the replicates (train.seed, train.repeats)",
    "train.repeats": "training seeds are the replicates (train.seed, train.repeats)",
    "model.kind": "model kinds already make units of every arm",
    "recordings.sets": "name the set to use with the axis recordings.set",
}
SET_AXIS = "recordings.set"
# Axes that change the datasets (the data stage writes one dataset per combination of them).
DATA_PREFIXES = ("recordings.", "dataset.")
_TOKEN_SAFE = re.compile(r"^[A-Za-z0-9.+]+$")


class DesignError(ValueError):
    """A grid that cannot be run: an unknown or forbidden axis, or values that make clashing names."""


def axis_problem(path: str, leaf_paths: Sequence[str]) -> str | None:
    """Why ``path`` cannot be a grid axis (None if it can), with the nearest valid path when it does not exist."""
    if path in NOT_AXES_FIELDS:
        return f"sweep.grid: {path} cannot be an axis: {NOT_AXES_FIELDS[path]}"
    if path.split(".", 1)[0] in NOT_AXES_SECTIONS:
        return f"sweep.grid: {path} cannot be an axis: it does not change what is trained or on what"
    valid = [p for p in leaf_paths if p not in NOT_AXES_FIELDS and p.split(".", 1)[0] not in NOT_AXES_SECTIONS]
    if path not in valid:
        close = difflib.get_close_matches(path, valid, n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"sweep.grid: {path} is not a config field{hint}"
    return None


def abbreviations(axes: Sequence[str]) -> dict[str, str]:
    """The token prefix of each axis (see the module docstring); unique within the grid."""

    def short(path: str) -> str:
        last = path.rsplit(".", 1)[-1]
        words = last.split("_")
        return "".join(w[0] for w in words if w) if len(words) > 1 else last

    chosen = {axis: ("" if axis == SET_AXIS else short(axis)) for axis in axes}
    counts: dict[str, int] = {}
    for prefix in chosen.values():
        counts[prefix] = counts.get(prefix, 0) + 1
    for axis, prefix in chosen.items():
        if prefix and counts[prefix] > 1:
            chosen[axis] = axis.rsplit(".", 1)[-1]
    if len(set(chosen.values())) != len(chosen):
        raise DesignError(f"sweep.grid: axes {', '.join(axes)} cannot be told apart in unit names")
    return chosen


def value_text(value: Any) -> str:
    """A value as it appears in an arm's name."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def arm_tag(values: Sequence[tuple[str, Any]], prefixes: Mapping[str, str]) -> str:
    """The arm's name from its (axis, value) pairs: tokens joined by ``_``; DesignError for an unusable value."""
    tokens = []
    for axis, value in values:
        text = value_text(value)
        if not _TOKEN_SAFE.match(text):
            raise DesignError(f"sweep.grid: {axis} value {value!r} cannot appear in a unit name (letters, digits, . +)")
        tokens.append(f"{prefixes[axis]}{text}")
    return "_".join(tokens)


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[tuple[tuple[str, Any], ...]]:
    """Every arm of the grid as (axis, value) pairs, the first axis varying slowest; ``[()]`` without a grid."""
    axes = list(grid)
    return [tuple(zip(axes, combination, strict=True)) for combination in itertools.product(*grid.values())]


def data_values(values: Sequence[tuple[str, Any]]) -> tuple[tuple[str, Any], ...]:
    """The (axis, value) pairs of an arm that change its datasets (recordings and dataset fields)."""
    return tuple((axis, value) for axis, value in values if axis.startswith(DATA_PREFIXES))


def nested_update(data: dict[str, Any], path: str, value: Any) -> None:
    """Set ``data[a][b][c] = value`` for ``path`` ``a.b.c`` in a nested mapping, creating sections as needed."""
    *sections, last = path.split(".")
    node = data
    for section in sections:
        node = node.setdefault(section, {})
    node[last] = value
