"""``python -m sd1job status NAME``: the summary of a submitted sweep, once.

Prints the summary ``submit --watch`` ends with (phase, durations, one row per step with its
attempts) and exits by the phase: 0 Succeeded, 1 Failed or Error, 3 still pending or running.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from sd1job.cluster.client import ArgoClient
from sd1job.cluster.settings import add_server_options, settings_from_args
from sd1job.cluster.watch import exit_code_for_phase, format_summary, workflow_phase

if TYPE_CHECKING:
    from sd1job.config import Config


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``status``: the workflow name and the server options."""
    parser.add_argument("name", metavar="NAME", help="the workflow's name, as printed by submit")
    add_server_options(parser)


def run(args: argparse.Namespace, config: Config | None) -> int:
    """Print the summary of one workflow; return 0 (Succeeded), 1 (Failed, Error) or 3 (not finished)."""
    with ArgoClient(settings_from_args(args)) as client:
        workflow = client.get_workflow(args.name)
    print(format_summary(workflow), flush=True)
    return exit_code_for_phase(workflow_phase(workflow))
