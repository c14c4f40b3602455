"""``python -m sd1job push-status --status S``: the sweep's onExit step.

Pushes the workflow's final status (``{{workflow.status}}``: Succeeded, Failed or Error) and its
end time to the Pushgateway of ``metrics.pushgateway``, under ``{job="sd1job-sweep", run}``
(telemetry.push_sweep_status). Unlike training's pushes, an unreachable Pushgateway is an error
here: recording the outcome is this step's only job, and Argo retries it.
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from sd1job.errors import UserError
from sd1job.telemetry import SWEEP_STATUSES, push_sweep_status

if TYPE_CHECKING:
    from sd1job.config import Config

log = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``push-status``: the final status."""
    parser.add_argument(
        "--status", required=True, choices=SWEEP_STATUSES, help="the workflow's final status ({{workflow.status}})"
    )


def run(args: argparse.Namespace, config: Config) -> int:
    """Push the sweep's final status to ``metrics.pushgateway``; UserError when it is unset or unreachable."""
    gateway = config.metrics.pushgateway
    if not gateway:
        raise UserError(
            "metrics.pushgateway is not set: push-status needs a Pushgateway URL "
            "(config metrics.pushgateway or SD1JOB_METRICS__PUSHGATEWAY)"
        )
    push_sweep_status(gateway, config.run_id, args.status)
    log.info("push-status: pushed status %s of run %s to %s", args.status, config.run_id, gateway)
    return 0
