"""``python -m sd1job submit``: send argo/sweep.yaml to an Argo Server and, with --watch, follow it.

For users with an Argo Server but no ``argo`` CLI (CI pipelines, notebooks, a laptop behind a
gateway). Before anything is created, the ``-p`` overrides are checked against the parameters
the WorkflowTemplate declares in the file, then the server's namespace, the installed template and
its parameters are checked; then the Workflow is created. With ``--watch`` one line is printed per
step state change, then the summary table; the exit status says whether the sweep succeeded.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sd1job.cluster.client import ArgoClient
from sd1job.cluster.settings import add_server_options, settings_from_args
from sd1job.cluster.sweepfile import (
    DEFAULT_FILE,
    SweepFile,
    apply_overrides,
    argument_parameters,
    check_parameters,
    declared_parameters,
    find_sweep_file,
    load_sweep_file,
    parse_overrides,
)
from sd1job.cluster.watch import (
    DEFAULT_INTERVAL,
    exit_code_for_phase,
    format_summary,
    watch_workflow,
    workflow_name,
    workflow_phase,
)
from sd1job.errors import UserError

if TYPE_CHECKING:
    from sd1job.config import Config


def install_hint(namespace: str, path: Path) -> str:
    """How to install the WorkflowTemplate document of the sweep file.

    ``kubectl apply -f`` on the whole file would also meet the Workflow document, which it refuses
    (generateName); the argo CLI reads only the template from it.
    """
    return f"argo template create -n {namespace} {path} (or kubectl apply -n {namespace} the WorkflowTemplate document)"


def submit_sweep(client: ArgoClient, sweep: SweepFile, overrides: Mapping[str, str]) -> dict[str, Any]:
    """Check the overrides against the file, then the namespace, template and parameters against the
    server, then create the Workflow; return it as the server answered. UserError before anything is
    created when a check fails."""
    ns = client.settings.namespace
    name = sweep.template_name
    workflow = apply_overrides(sweep.workflow, overrides)
    if name is None:  # a self-contained Workflow: its own spec.arguments are what it declares
        check_parameters(overrides, declared_parameters(sweep.workflow), f"the Workflow in {sweep.path}")
    elif sweep.template is not None:
        check_parameters(overrides, declared_parameters(sweep.template), f"the WorkflowTemplate {name} in {sweep.path}")
    managed = client.info().get("managedNamespace")
    if managed and managed != ns:
        raise UserError(
            f"the Argo Server at {client.settings.url} manages only namespace {managed}, not {ns}: "
            f"pass --namespace {managed} or set ARGO_NAMESPACE={managed}"
        )
    if name is None:
        return client.create_workflow(workflow)
    installed = client.find_template(name)
    if installed is None:
        raise UserError(
            f"the WorkflowTemplate {name} is not installed in namespace {ns} (wrong namespace? --namespace / "
            f"ARGO_NAMESPACE): {install_hint(ns, sweep.path)}"
        )
    given = {str(param["name"]): str(param.get("value", "")) for param in argument_parameters(workflow)}
    check_parameters(
        given,
        declared_parameters(installed),
        f"the WorkflowTemplate {name} installed in namespace {ns}",
        hint=f"; is the installed copy older than {sweep.path}? update it: {install_hint(ns, sweep.path)}",
    )
    return client.create_workflow(workflow)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``submit``: the file, the server options, -p overrides, --watch and its interval."""
    parser.add_argument(
        "--file", metavar="FILE", default=None, help=f"the Workflow + WorkflowTemplate YAML (default: {DEFAULT_FILE})"
    )
    add_server_options(parser)
    parser.add_argument(
        "-p",
        "--parameter",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="override a workflow parameter (repeatable), e.g. -p run-id=ctx-sweep-2",
    )
    parser.add_argument(
        "--watch", action="store_true", help="follow the workflow until it finishes; exit 1 if it fails"
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=DEFAULT_INTERVAL,
        metavar="SECONDS",
        help=f"seconds between polls with --watch (default {DEFAULT_INTERVAL:g})",
    )


def run(args: argparse.Namespace, config: Config | None) -> int:
    """Submit the sweep and print its name and link; with --watch follow it and return 0 (Succeeded) or 1."""
    if args.interval <= 0:
        raise UserError(f"--interval {args.interval}: must be positive")
    overrides = parse_overrides(args.parameter)
    sweep = load_sweep_file(find_sweep_file(args.file))
    settings = settings_from_args(args)
    with ArgoClient(settings) as client:
        created = submit_sweep(client, sweep, overrides)
        name = workflow_name(created)
        print(f"submitted {name} to namespace {settings.namespace}", flush=True)
        print(f"  {settings.workflow_link(name)}", flush=True)
        if not args.watch:
            return 0
        try:
            final = watch_workflow(client.get_workflow, name, interval=args.interval)
        except KeyboardInterrupt:
            print(f"stopped watching; {name} keeps running: python -m sd1job status {name}", file=sys.stderr)
            raise
    print(format_summary(final), flush=True)
    return exit_code_for_phase(workflow_phase(final))
