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
import tempfile
from collections.abc import Sequence

from sd1job import __version__
from sd1job.config import load_config
from sd1job.errors import UserError
from sd1job.formatting import one_line

# Commands whose modules load TensorFlow (imported quietly first, see _import_tensorflow_quietly).
TENSORFLOW_COMMANDS = frozenset({"train", "eval", "export", "sweep", "capture", "render"})

# name -> (module, needs a config, one-line help)
COMMANDS: dict[str, tuple[str, bool, str]] = {
    "synth": ("sd1job.synth.capture", True, "generate the demo recordings: a synthetic guitar through a virtual SD-1"),
    "data": ("sd1job.stages.data", True, "check the recordings, write the datasets, print the list of units"),
    "train": ("sd1job.stages.train", True, "train one unit (context, seed) or a context's seeds (resumable)"),
    "eval": ("sd1job.stages.evaluate", True, "score trained units on the test riffs (every unit not yet scored)"),
    "report": ("sd1job.stages.report", True, "gather every unit's scores: results, statistics, plots, report.html"),
    "render": ("sd1job.stages.render", True, "run your own DI recording through a trained unit, at any sample rate"),
    "listen": (
        "sd1job.stages.listen",
        True,
        "serve a blind listening test (ABX or MUSHRA) of the models against the pedal",
    ),
    "export": ("sd1job.stages.export", True, "write a trained stateful unit as a Neural Amp Modeler .nam file"),
    "sweep": ("sd1job.stages.sweep", True, "run data -> train -> eval every unit -> report here, skipping done work"),
    "capture": ("sd1job.stages.capture", True, "model your own pedal from one DI/output pair: check, split, sweep"),
    "push-status": ("sd1job.cluster.push_status", True, "push a sweep's final status to the Pushgateway (Argo onExit)"),
    "submit": ("sd1job.cluster.submit", False, "submit argo/sweep.yaml to an Argo Server and optionally follow it"),
    "status": ("sd1job.cluster.status", False, "print the summary of a submitted sweep"),
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
    # Libraries (botocore, absl, matplotlib) speak only at WARNING and above; sd1job's own progress at INFO.
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("sd1job").setLevel(logging.WARNING if quiet else logging.INFO)


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with the process's standard error (file descriptor 2) parked in a temporary file.

    TensorFlow's C++ start-up notices (oneDNN, absl's "All log messages before absl::InitializeLog()")
    are written straight to descriptor 2 while it loads, whatever TF_CPP_MIN_LOG_LEVEL says; a user
    should see only sd1job's own lines. If the import fails, what it wrote is shown after all.
    """
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as parked:
        os.dup2(parked.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            parked.seek(0)
            sys.stderr.write(parked.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the process exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before any command module imports TensorFlow
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = next((arg for arg in argv if arg in COMMANDS), None)
    if selected in TENSORFLOW_COMMANDS:
        _import_tensorflow_quietly()
    parser = build_parser(selected)
    args = parser.parse_args(argv)
    _setup_logging(args.quiet)
    module_name, needs_config, _ = COMMANDS[args.command]
    try:
        module = _load_command(module_name)
        config = load_config(args.config) if needs_config else None
        status = module.run(args, config)
    except UserError as error:
        print(f"error: {one_line(str(error))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return int(status or 0)
