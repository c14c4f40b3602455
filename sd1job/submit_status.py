"""``python -m sd1job status NAME``: the summary of a submitted sweep, once.

Prints the same summary ``submit --watch`` ends with (phase, durations, one row per node) and
exits by the phase: 0 Succeeded, 1 Failed or Error, 3 still pending or running. Server, token and
namespace come from the same options and environment variables as ``submit`` (see submit.py).
"""

from __future__ import annotations

import argparse

from sd1job.config import Config
from sd1job.submit import (
    ArgoClient,
    add_server_options,
    exit_code_for_phase,
    format_summary,
    settings_from_args,
    workflow_phase,
)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``status``: the workflow name and the server options."""
    parser.add_argument("name", metavar="NAME", help="the workflow's name, as printed by submit")
    add_server_options(parser)


def run(args: argparse.Namespace, config: Config | None) -> int:
    """Print the summary of one workflow; the exit status follows its phase."""
    with ArgoClient(settings_from_args(args)) as client:
        workflow = client.get_workflow(args.name)
    print(format_summary(workflow), flush=True)
    return exit_code_for_phase(workflow_phase(workflow))
