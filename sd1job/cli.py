"""The command line: ``python -m sd1job COMMAND [--config FILE] [options]``.

Thin by design. Each command lives in its own module, which provides
``configure_parser(parser)`` (its own options) and ``run(args, config) -> int | None``.
This module loads and validates the config at the door, sets up logging, and turns every
``UserError`` (bad input, bad config, unreachable service) into one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from sd1job import __version__
from sd1job.config import load_config
from sd1job.errors import UserError

# name -> (module, needs a config, one-line help)
COMMANDS: dict[str, tuple[str, bool, str]] = {
    "synth": ("sd1job.synth.capture", True, "generate the demo recordings: a synthetic guitar through a virtual SD-1"),
    "data": ("sd1job.data_stage", True, "check the recordings and write the windowed datasets for every context"),
    "train": ("sd1job.train", True, "train the model for one context size (resumable)"),
    "eval": ("sd1job.evaluate", True, "score every trained context on the test riffs; write results, plots, report"),
    "sweep": ("sd1job.sweep", True, "run data -> train for every context -> eval on this machine, skipping done work"),
    "push-status": ("sd1job.telemetry", True, "push a sweep's final status to the Pushgateway (Argo onExit)"),
    "submit": ("sd1job.submit", False, "submit argo/sweep.yaml to an Argo Server and optionally follow it"),
    "status": ("sd1job.submit_status", False, "print the summary of a submitted sweep"),
}

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def _load_command(module_name: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(module_name)


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with one subcommand per stage or tool.

    Only the ``selected`` command's module is imported (to add its options), so that
    ``--help`` and light commands never pay for importing TensorFlow.
    """
    parser = argparse.ArgumentParser(
        prog="python -m sd1job",
        description="Train neural models of a guitar pedal from dry/wet recordings and sweep the context size.",
    )
    parser.add_argument("--version", action="version", version=f"sd1job {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, needs_config, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if needs_config:
            sub.add_argument(
                "--config",
                metavar="FILE",
                default=None,
                help="YAML config (default: built-in defaults); SD1JOB_<SECTION>__<FIELD> env vars override it",
            )
        sub.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
        if name == selected:
            _load_command(module_name).configure_parser(sub)
    return parser


def _setup_logging(quiet: bool) -> None:
    level = logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the process exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before any command module imports TensorFlow
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = next((arg for arg in argv if arg in COMMANDS), None)
    parser = build_parser(selected)
    args = parser.parse_args(argv)
    _setup_logging(args.quiet)
    module_name, needs_config, _ = COMMANDS[args.command]
    try:
        module = _load_command(module_name)
        config = load_config(args.config) if needs_config else None
        status = module.run(args, config)
    except UserError as error:
        print(f"error: {_one_line(str(error))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return int(status or 0)


def _one_line(message: str) -> str:
    return " ".join(message.split())
