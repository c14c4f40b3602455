"""Units: one trained model each, named by (model kind, context or preset, seed).

A sweep is a list of units. The windowed model (the seed's) has a context size n; the stateful
model has none; the WaveNet has a preset (NAM's ``standard``, ``lite``, ``feather``, ``nano``).
Every unit has one name, used on the command line (``--unit``), in the Argo fan-out, in metric
labels and in reports, and one folder under ``models/`` in the store::

    c440-s25                windowed, n = 440, training seed 25     models/c440/s25/
    stateful-s26            stateful, training seed 26             models/stateful/s26/
    wavenet-standard-s25    WaveNet, standard preset, seed 25      models/wavenet-standard/s25/

With a grid (``sweep.grid``, see ``sd1job/design.py``) every unit also carries its arm's values
and a tag made from them, which prefixes its name and folder: ``lu96_lr0.01-c44-s25`` in
``models/lu96_lr0.01/c44/s25/``. Names are looked up among the config's units, so a name always
parses back to exactly one unit.

The training seeds of a sweep are ``train.seed + i`` for ``i`` in ``0 .. train.repeats - 1``. The
windows of a context are the same for every seed (``dataset.seed`` draws them): a seed varies
the initial weights and the batch order only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from sd1job.errors import UserError

ModelKind = Literal["windowed", "stateful", "wavenet"]
MODEL_KINDS: tuple[ModelKind, ...] = ("windowed", "stateful", "wavenet")

_NAME = re.compile(
    r"^(?:c(?P<context>[1-9][0-9]*)|(?P<stateful>stateful)|wavenet-(?P<preset>[a-z]+))-s(?P<seed>-?[0-9]+)$"
)


class UnitError(UserError, ValueError):
    """A unit name or selection that does not exist in the config."""


@dataclass(frozen=True, order=True)
class Unit:
    """One trained model: its kind, its context size (windowed only), its training seed, its preset (WaveNet
    only), and its arm of the grid: ``tag`` the arm's short name (empty without a grid), ``grid`` its
    (axis, value) pairs.
    """

    kind: ModelKind
    context: int | None
    seed: int
    preset: str | None = None
    tag: str = ""
    grid: tuple[tuple[str, Any], ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if (self.kind == "windowed") != (self.context is not None):
            raise ValueError(f"a {self.kind} unit {'needs' if self.kind == 'windowed' else 'has no'} context size")
        if (self.kind == "wavenet") != (self.preset is not None):
            raise ValueError(f"a {self.kind} unit {'needs' if self.kind == 'wavenet' else 'has no'} preset")

    @property
    def name(self) -> str:
        """``c<N>-s<S>``, ``stateful-s<S>`` or ``wavenet-<preset>-s<S>``."""
        return f"{self.arm}-s{self.seed}"

    @property
    def arm(self) -> str:
        """What the unit is a repeat of: ``c<N>`` or ``stateful``, after the grid's tag (``lu96-c44``)."""
        return f"{self.tag}-{self.model_arm}" if self.tag else self.model_arm

    @property
    def model_arm(self) -> str:
        """The model kind and context alone: ``c<N>`` or ``stateful`` (the context axis within a grid's arm)."""
        if self.kind == "wavenet":
            return f"wavenet-{self.preset}"
        return f"c{self.context}" if self.kind == "windowed" else "stateful"

    @property
    def path(self) -> str:
        """The unit's folder under ``models/``: ``c<N>/s<S>``, ``stateful/s<S>``, or under the tag's folder."""
        base = f"{self.model_arm}/s{self.seed}"
        return f"{self.tag}/{base}" if self.tag else base

    def __str__(self) -> str:
        return self.name


def parse_unit(name: str) -> Unit:
    """The unit a name spells (``c440-s25``, ``stateful-s25``, ``wavenet-standard-s25``); UnitError if none."""
    match = _NAME.match(name.strip())
    if match is None:
        raise UnitError(
            f"--unit {name!r}: not a unit name; expected c<context>-s<seed>, stateful-s<seed> or "
            "wavenet-<preset>-s<seed>"
        )
    seed = int(match["seed"])
    if match["stateful"]:
        return Unit("stateful", None, seed)
    if match["preset"]:
        return Unit("wavenet", None, seed, match["preset"])
    return Unit("windowed", int(match["context"]), seed)


def training_seeds(seed: int, repeats: int) -> list[int]:
    """The training seeds of a sweep: ``seed, seed + 1, ..., seed + repeats - 1``."""
    return [seed + i for i in range(repeats)]


def sweep_units(
    kinds: list[ModelKind],
    contexts: list[int],
    seed: int,
    repeats: int,
    presets: tuple[str, ...] = ("standard",),
    tag: str = "",
    grid: tuple[tuple[str, Any], ...] = (),
) -> list[Unit]:
    """Every unit of one arm: per kind, per context (windowed) or preset (WaveNet), per training seed."""
    units = []
    for kind in kinds:
        if kind == "wavenet":
            units += [
                Unit(kind, None, s, preset, tag, grid) for preset in presets for s in training_seeds(seed, repeats)
            ]
            continue
        arms: list[int | None] = list(contexts) if kind == "windowed" else [None]
        units += [Unit(kind, context, s, None, tag, grid) for context in arms for s in training_seeds(seed, repeats)]
    return units


def select_units(
    available: list[Unit],
    *,
    name: str | None = None,
    context: int | None = None,
    seed: int | None = None,
    kind: ModelKind | None = None,
) -> list[Unit]:
    """The units of ``available`` matching a name or the given fields; UnitError naming what matched nothing."""
    if name is not None:
        by_name = {unit.name: unit for unit in available}
        if name.strip() in by_name:
            return [by_name[name.strip()]]
        if not any(unit.tag for unit in available):
            parse_unit(name)  # a malformed name gets the message that says what a name looks like
        names = ", ".join(u.name for u in available[:12]) + (", ..." if len(available) > 12 else "")
        raise UnitError(f"--unit {name}: not a unit of this config (its units: {names})")
    asked = ", ".join(
        f"{label} {value}"
        for label, value in (("kind", kind), ("context", context), ("seed", seed))
        if value is not None
    )
    if context is not None and kind is None:
        kind = "windowed"
    chosen = [
        unit
        for unit in available
        if (kind is None or unit.kind == kind)
        and (context is None or unit.context == context)
        and (seed is None or unit.seed == seed)
    ]
    if not chosen:
        raise UnitError(f"no unit of this config has {asked or 'those settings'} (see dataset.contexts, train.repeats)")
    return chosen
