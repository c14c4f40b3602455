"""Command-line options shared by the stages that work per unit (train, eval, export)."""

from __future__ import annotations

import argparse

from sd1job.config import Config
from sd1job.units import MODEL_KINDS, Unit, UnitError, select_units


def add_unit_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """``--unit NAME`` or ``--context N`` / ``--kind K`` with an optional ``--seed S``."""
    parser.add_argument("--unit", metavar="NAME", help="one unit by name: c<context>-s<seed> or stateful-s<seed>")
    parser.add_argument("--context", type=int, metavar="N", help="the windowed units of context size N")
    parser.add_argument("--kind", choices=MODEL_KINDS, help="the units of one model kind")
    parser.add_argument("--seed", type=int, metavar="S", help="only training seed S (default: every seed)")
    parser.set_defaults(unit_required=required)


def chosen_units(args: argparse.Namespace, config: Config) -> list[Unit]:
    """The config's units the options select; all of them when none is given and none is required."""
    if args.unit is not None and (args.context is not None or args.kind is not None or args.seed is not None):
        raise UnitError("--unit names one unit: give it alone, or use --context/--kind/--seed instead")
    if args.context is not None and args.context <= 0:
        raise UnitError(f"--context {args.context}: must be a positive number of samples")
    selected = args.unit is not None or args.context is not None or args.kind is not None
    if not selected and args.unit_required:
        raise UnitError("name the units: --unit NAME, or --context N / --kind stateful (with --seed S for one seed)")
    return select_units(config.units(), name=args.unit, context=args.context, seed=args.seed, kind=args.kind)
