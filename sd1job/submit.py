"""``python -m sd1job submit``: send argo/sweep.yaml to an Argo Server and follow it.

For users with an Argo Server but no ``argo`` CLI (CI pipelines, notebooks, a laptop behind a
gateway). It reads the same argo/sweep.yaml that ``argo submit`` uses (no second copy of the
workflow): takes its Workflow document, applies ``-p name=value`` overrides, checks each one
against the parameters the WorkflowTemplate declares (in the file and in the copy installed on
the server), and creates the Workflow through the Argo Server API with the ``argo-workflows`` SDK.
With ``--watch`` it polls the workflow and prints one line per node state change (data, each train
pod by context, eval), then the summary table and the final phase; the exit status says whether
the sweep succeeded. ``python -m sd1job status NAME`` (submit_status.py) prints the same summary.

Settings follow the argo CLI: ARGO_SERVER (host:port or a URL; https unless ARGO_SECURE=false),
ARGO_TOKEN (with or without the "Bearer " prefix), ARGO_NAMESPACE (default ``argo``),
ARGO_INSECURE_SKIP_VERIFY (TLS verification is on unless this or --insecure-skip-verify says
otherwise) and ARGO_BASE_HREF (a path prefix when the server sits behind a gateway).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import urllib3
import yaml

from sd1job import __version__
from sd1job.config import Config
from sd1job.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_FILE = Path("argo") / "sweep.yaml"
DEFAULT_NAMESPACE = "sd1job"  # the namespace k8s/ and argo/sweep.yaml install into
DEFAULT_INTERVAL = 5.0
REQUEST_TIMEOUT = (10.0, 60.0)  # (connect, read) seconds for every API call
WATCH_MAX_FAILURES = 5  # consecutive unreachable polls tolerated while watching
FINAL_PHASES = frozenset({"Succeeded", "Failed", "Error"})
# Node types that are one unit of work; DAG, TaskGroup, Retry and StepGroup nodes only group them.
WORK_NODE_TYPES = frozenset({"Pod", "Skipped", "Suspend", "HTTP", "Plugin"})
EXIT_SUCCEEDED = 0
EXIT_FAILED = 1
EXIT_NOT_FINISHED = 3  # `status` on a workflow still pending or running

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


# --- errors -------------------------------------------------------------------------------------


class ArgoError(UserError):
    """Anything that stops a submit or status call; the message is one line."""


class SweepFileError(ArgoError):
    """argo/sweep.yaml is missing, unreadable or not shaped as a Workflow plus its template."""


class ArgoUnreachableError(ArgoError):
    """No answer from the Argo Server (refused, DNS, timeout, TLS)."""


class ArgoAuthError(ArgoError):
    """The server rejected the token (401) or the token may not do this (403)."""


class ArgoNamespaceError(ArgoError):
    """The namespace does not exist or the server does not manage it."""


class TemplateNotInstalledError(ArgoError):
    """The WorkflowTemplate the Workflow references is not on the server."""


class UndeclaredParameterError(ArgoError):
    """A parameter is given that the WorkflowTemplate does not declare (or a value outside its enum)."""


class WorkflowNotFoundError(ArgoError):
    """``status NAME`` for a workflow the server does not have."""


class _NotFoundError(ArgoError):
    """A 404 from the server; callers turn it into a message that names what is missing."""

    def __init__(self, message: str, server_message: str) -> None:
        super().__init__(message)
        self.server_message = server_message


# --- settings -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerSettings:
    """Where the Argo Server is and how to talk to it."""

    url: str  # scheme://host:port[/base-href], no trailing slash
    namespace: str
    token: str | None  # without the "Bearer " prefix
    verify_tls: bool = True

    def workflow_link(self, name: str) -> str:
        """The Argo UI page of one workflow."""
        return f"{self.url}/workflows/{self.namespace}/{name}"


def env_flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    """A boolean environment variable the way the argo CLI reads them (true/false, 1/0)."""
    value = environ.get(name)
    if value is None:
        return default
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ArgoError(f"{name}={value!r} is not a boolean: use true or false")


def normalise_server_url(server: str, secure: bool = True, base_href: str = "") -> str:
    """``host:port`` or a full URL -> ``scheme://host:port[/base]`` without a trailing slash.

    Like the argo CLI, a bare ``host:port`` means https unless ``secure`` is False (ARGO_SECURE=false).
    """
    text = server.strip()
    if not text:
        raise ArgoError("the Argo Server address is empty: pass --argo-server HOST:PORT or set ARGO_SERVER")
    if "://" not in text:
        text = f"{'https' if secure else 'http'}://{text}"
    parsed = urllib3.util.parse_url(text)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ArgoError(f"the Argo Server address {server!r} is not host:port or an http(s) URL")
    path = (parsed.path or "").strip("/")
    base = base_href.strip("/")
    if base and path != base:
        path = f"{path}/{base}".strip("/")
    netloc = parsed.host if parsed.port is None else f"{parsed.host}:{parsed.port}"
    return f"{parsed.scheme}://{netloc}" + (f"/{path}" if path else "")


def normalise_token(token: str | None) -> str | None:
    """ARGO_TOKEN with or without its ``Bearer`` prefix -> the bare token (None when unset/empty)."""
    if token is None:
        return None
    text = token.strip()
    if text[:7].lower() == "bearer ":
        text = text[7:].strip()
    return text or None


def resolve_settings(
    argo_server: str | None,
    namespace: str | None,
    insecure_skip_verify: bool,
    environ: Mapping[str, str] | None = None,
) -> ServerSettings:
    """Options first, then the argo CLI's environment variables, then defaults."""
    env = os.environ if environ is None else environ
    server = argo_server or env.get("ARGO_SERVER")
    if not server:
        raise ArgoError(
            "no Argo Server given: pass --argo-server HOST:PORT or set ARGO_SERVER "
            "(for example localhost:2746 after `kubectl -n argo port-forward svc/argo-server 2746:2746`)"
        )
    url = normalise_server_url(server, env_flag(env, "ARGO_SECURE", True), env.get("ARGO_BASE_HREF", ""))
    skip_verify = insecure_skip_verify or env_flag(env, "ARGO_INSECURE_SKIP_VERIFY", False)
    return ServerSettings(
        url=url,
        namespace=namespace or env.get("ARGO_NAMESPACE") or DEFAULT_NAMESPACE,
        token=normalise_token(env.get("ARGO_TOKEN")),
        verify_tls=not skip_verify,
    )


# --- the sweep file -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepFile:
    """The Workflow to submit and, when the same file defines it, the WorkflowTemplate it references."""

    path: Path
    workflow: dict[str, Any]
    template: dict[str, Any] | None

    @property
    def template_name(self) -> str | None:
        """spec.workflowTemplateRef.name of the Workflow (None for a self-contained Workflow)."""
        ref = (self.workflow.get("spec") or {}).get("workflowTemplateRef") or {}
        return ref.get("name")


def find_sweep_file(option: str | None, cwd: Path | None = None) -> Path:
    """--file as given, else argo/sweep.yaml in the working directory, else in the repository."""
    if option:
        path = Path(option)
        if not path.is_file():
            raise SweepFileError(f"{path}: no such file (--file)")
        return path
    candidates = [(cwd or Path.cwd()) / DEFAULT_FILE, Path(__file__).resolve().parents[1] / DEFAULT_FILE]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise SweepFileError(f"{DEFAULT_FILE} not found in {candidates[0].parent.parent} or the repository: pass --file")


def load_sweep_file(path: Path) -> SweepFile:
    """Read the multi-document YAML and pick out the Workflow and its WorkflowTemplate."""
    try:
        documents = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    except (OSError, UnicodeDecodeError) as error:
        raise SweepFileError(f"{path}: cannot read: {error}") from error
    except yaml.YAMLError as error:
        raise SweepFileError(f"{path}: invalid YAML: {error}") from error
    if not all(isinstance(doc, dict) for doc in documents):
        raise SweepFileError(f"{path}: every YAML document must be a mapping (a Kubernetes object)")
    workflows = [doc for doc in documents if doc.get("kind") == "Workflow"]
    if len(workflows) != 1:
        raise SweepFileError(f"{path}: expected exactly one Workflow document (kind: Workflow), found {len(workflows)}")
    workflow = workflows[0]
    if not isinstance(workflow.get("spec"), dict) or not isinstance(workflow.get("metadata"), dict):
        raise SweepFileError(f"{path}: the Workflow needs metadata and spec mappings")
    meta = workflow["metadata"]
    if not (meta.get("name") or meta.get("generateName")):
        raise SweepFileError(f"{path}: the Workflow needs metadata.generateName (or metadata.name)")
    sweep = SweepFile(path=path, workflow=workflow, template=None)
    name = sweep.template_name
    if name is None:
        return sweep
    templates = [
        doc
        for doc in documents
        if doc.get("kind") == "WorkflowTemplate" and (doc.get("metadata") or {}).get("name") == name
    ]
    return SweepFile(path=path, workflow=workflow, template=templates[0] if templates else None)


def parse_overrides(items: Sequence[str] | None) -> dict[str, str]:
    """``-p name=value`` items -> {name: value}; the last one wins, as with ``argo submit -p``."""
    overrides: dict[str, str] = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ArgoError(f"-p {item!r}: expected NAME=VALUE")
        overrides[name.strip()] = value
    return overrides


def _parameter_value(value: Any) -> str:
    """Argo parameter values are strings; YAML numbers and booleans become their JSON text (44, true)."""
    return value if isinstance(value, str) else json.dumps(value)


def argument_parameters(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """spec.arguments.parameters of a Workflow or WorkflowTemplate (an empty list when absent)."""
    params = ((document.get("spec") or {}).get("arguments") or {}).get("parameters") or []
    return [param for param in params if isinstance(param, dict) and "name" in param]


def declared_parameters(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The parameters a template declares, by name."""
    return {str(param["name"]): param for param in argument_parameters(document)}


def apply_overrides(workflow: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, Any]:
    """A copy of the Workflow with each override set (replacing or appending) and every value a string."""
    result = copy.deepcopy(dict(workflow))
    arguments = result["spec"].setdefault("arguments", {}) or {}
    result["spec"]["arguments"] = arguments
    params = [dict(param) for param in argument_parameters(result)]
    remaining = dict(overrides)
    for param in params:
        if param["name"] in remaining:
            param["value"] = remaining.pop(param["name"])
        if "value" in param:
            param["value"] = _parameter_value(param["value"])
    params.extend({"name": name, "value": value} for name, value in remaining.items())
    arguments["parameters"] = params
    return result


def check_parameters(
    given: Mapping[str, str], declared: Mapping[str, Mapping[str, Any]], where: str, hint: str = ""
) -> None:
    """Every given parameter must be declared by the template (and be in its enum, if it has one)."""
    for name, value in given.items():
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise UndeclaredParameterError(f"parameter {name!r} is not declared by {where} (declared: {known}){hint}")
        allowed = declared[name].get("enum")
        if allowed and value not in [_parameter_value(item) for item in allowed]:
            choices = ", ".join(_parameter_value(item) for item in allowed)
            raise UndeclaredParameterError(f"parameter {name}={value!r} is not one of {choices} ({where})")


# --- the client ---------------------------------------------------------------------------------


def _server_message(body: Any) -> str:
    """The message of a grpc-gateway error body ({"code": 5, "message": "..."}), else the text itself."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    text = str(body or "")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and (parsed.get("message") or parsed.get("error")):
        text = str(parsed.get("message") or parsed.get("error"))
    text = " ".join(text.split())
    return text[:300]


class ArgoClient:
    """The few Argo Server calls sd1job needs, through the argo-workflows SDK, with one-line errors.

    Responses are read as plain JSON (``_preload_content=False``) rather than deserialised into the
    SDK's generated models, whose strict type checks reject what real servers send: ``"finishedAt":
    null`` on every node still running (argoproj/argo-workflows#9122), and ``withItems: [44, 440]``
    in a WorkflowTemplate (the SDK types items as objects). We read only a handful of fields anyway.
    Requests are still built and type-checked with the SDK's models (see create_workflow).
    """

    def __init__(self, settings: ServerSettings) -> None:
        from argo_workflows.api.info_service_api import InfoServiceApi
        from argo_workflows.api.workflow_service_api import WorkflowServiceApi
        from argo_workflows.api.workflow_template_service_api import WorkflowTemplateServiceApi
        from argo_workflows.api_client import ApiClient
        from argo_workflows.configuration import Configuration

        self.settings = settings
        configuration = Configuration(host=settings.url)
        configuration.verify_ssl = settings.verify_tls
        if not settings.verify_tls:
            log.warning("TLS certificate verification is off for %s", settings.url)
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        if settings.token:
            configuration.api_key = {"BearerToken": settings.token}
            configuration.api_key_prefix = {"BearerToken": "Bearer"}
        # urllib3 logs each connection retry as a WARNING; the one-line error says it all.
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
        # Retry only failed connections (never a request the server may have acted on), briefly.
        configuration.retries = urllib3.util.Retry(
            total=None, connect=2, read=0, redirect=0, status=0, other=0, backoff_factor=0.1
        )
        self.configuration = configuration
        self.api_client = ApiClient(configuration)
        self.api_client.user_agent = f"sd1job/{__version__} (argo-workflows SDK)"
        self.workflows = WorkflowServiceApi(self.api_client)
        self.templates = WorkflowTemplateServiceApi(self.api_client)
        self.info_api = InfoServiceApi(self.api_client)

    def close(self) -> None:
        """Release the connection pool."""
        self.api_client.rest_client.pool_manager.clear()

    def __enter__(self) -> ArgoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Each call returns the decoded JSON of a 2xx answer or raises an ArgoError subclass.
    def _call(self, action: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from argo_workflows.exceptions import ApiException

        try:
            response = method(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs)
            data = response.data
            response.release_conn()
        except ApiException as error:
            raise self._api_error(action, error) from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise self._unreachable(error) from error
        try:
            return json.loads(data)
        except ValueError as error:
            snippet = _server_message(data)[:80]
            raise ArgoError(
                f"{self.settings.url} answered {action} with something that is not JSON "
                f"(a login page of a gateway in front of the Argo Server?): {snippet!r}"
            ) from error

    def _unreachable(self, error: Exception) -> ArgoError:
        reason = getattr(error, "reason", None) or error
        url = self.settings.url
        if isinstance(reason, urllib3.exceptions.SSLError) or "SSL" in type(reason).__name__:
            return ArgoUnreachableError(
                f"TLS handshake with the Argo Server at {url} failed ({_one_line(reason)}): for a self-signed "
                "certificate pass --insecure-skip-verify (ARGO_INSECURE_SKIP_VERIFY=true); for a plain-HTTP "
                "server use an http:// URL (ARGO_SECURE=false)"
            )
        return ArgoUnreachableError(
            f"cannot reach the Argo Server at {url} ({_one_line(reason)}): check --argo-server / ARGO_SERVER "
            "and that the server (or its port-forward) is running"
        )

    def _api_error(self, action: str, error: Any) -> ArgoError:
        status = int(error.status or 0)
        message = _server_message(error.body)
        where = f"namespace {self.settings.namespace}"
        if status == 0:  # the SDK's wrapper for TLS errors raised outside urllib3's retry loop
            return self._unreachable(urllib3.exceptions.SSLError(error.reason))
        if status == 401:
            token_hint = "ARGO_TOKEN is set but not accepted" if self.settings.token else "ARGO_TOKEN is not set"
            return ArgoAuthError(
                f"the Argo Server at {self.settings.url} rejected the request to {action} (401 Unauthorized: "
                f"{message}): {token_hint}; use a token from `argo auth token` or a service-account token"
            )
        if status == 403:
            return ArgoAuthError(
                f"the token may not {action} in {where} (403 Forbidden: {message}): "
                "grant its service account the Argo role there, or use --namespace / ARGO_NAMESPACE"
            )
        if status == 404:
            if re.search(r'namespaces? "?[^"\s]+"? not found', message):
                return ArgoNamespaceError(
                    f"{where} does not exist on the Argo Server's cluster ({message}): "
                    "pass --namespace or set ARGO_NAMESPACE"
                )
            return _NotFoundError(f"cannot {action}: not found ({message})", message)
        return ArgoError(f"the Argo Server answered {status} {error.reason or ''} to {action}: {message}")

    def info(self) -> dict[str, Any]:
        """GET /api/v1/info: the server's managed namespace, links, ... (empty for servers without it)."""
        try:
            return self._call("read the server info", self.info_api.get_info)
        except _NotFoundError:
            return {}

    def get_template(self, name: str) -> dict[str, Any]:
        """GET a WorkflowTemplate (a missing one raises _NotFoundError; submit_sweep words the message)."""
        ns = self.settings.namespace
        return self._call(f"read WorkflowTemplate {name}", self.templates.get_workflow_template, ns, name)

    def create_workflow(self, workflow: Mapping[str, Any]) -> dict[str, Any]:
        """POST a Workflow (built into the SDK's request model, which type-checks it) and return the created one."""
        from argo_workflows.exceptions import OpenApiException
        from argo_workflows.model.io_argoproj_workflow_v1alpha1_workflow import IoArgoprojWorkflowV1alpha1Workflow
        from argo_workflows.model.io_argoproj_workflow_v1alpha1_workflow_create_request import (
            IoArgoprojWorkflowV1alpha1WorkflowCreateRequest,
        )
        from argo_workflows.model_utils import validate_and_convert_types

        try:
            model = validate_and_convert_types(
                copy.deepcopy(dict(workflow)),
                (IoArgoprojWorkflowV1alpha1Workflow,),
                ["workflow"],
                True,  # the input uses the API's camelCase names
                True,  # check every known field's type
                configuration=self.configuration,
            )
        except OpenApiException as error:
            raise SweepFileError(f"the Workflow does not match the Argo Workflow schema: {error}") from error
        body = IoArgoprojWorkflowV1alpha1WorkflowCreateRequest(workflow=model, namespace=self.settings.namespace)
        try:
            return self._call(
                f"create a Workflow in namespace {self.settings.namespace}",
                self.workflows.create_workflow,
                self.settings.namespace,
                body,
            )
        except _NotFoundError as error:
            raise ArgoError(f"the Argo Server refused the Workflow: {error.server_message}") from error

    def get_workflow(self, name: str) -> dict[str, Any]:
        """GET one workflow; a missing one is a WorkflowNotFoundError."""
        ns = self.settings.namespace
        try:
            return self._call(f"read workflow {name}", self.workflows.get_workflow, ns, name)
        except _NotFoundError as error:
            raise WorkflowNotFoundError(
                f"no workflow {name} in namespace {ns} ({error.server_message}): check the name, "
                "--namespace / ARGO_NAMESPACE, or whether it was deleted or archived"
            ) from error


def _one_line(value: object) -> str:
    return " ".join(str(value).split())[:240]


def install_hint(namespace: str, path: Path) -> str:
    """How to install the WorkflowTemplate document of the sweep file.

    ``kubectl apply -f`` on the whole file would also meet the Workflow document, which it
    refuses (generateName); the argo CLI reads only the template from it.
    """
    return f"argo template create -n {namespace} {path} (or kubectl apply -n {namespace} the WorkflowTemplate document)"


def submit_sweep(client: ArgoClient, sweep: SweepFile, overrides: Mapping[str, str]) -> dict[str, Any]:
    """Check the overrides against the file, then namespace, template and parameters against the
    server, then create the Workflow; return the created Workflow as the server answered it."""
    ns = client.settings.namespace
    name = sweep.template_name
    workflow = apply_overrides(sweep.workflow, overrides)
    if name is None:  # a self-contained Workflow: its own spec.arguments are what it declares
        check_parameters(overrides, declared_parameters(sweep.workflow), f"the Workflow in {sweep.path}")
    elif sweep.template is not None:
        check_parameters(overrides, declared_parameters(sweep.template), f"the WorkflowTemplate {name} in {sweep.path}")
    managed = client.info().get("managedNamespace")
    if managed and managed != ns:
        raise ArgoNamespaceError(
            f"the Argo Server at {client.settings.url} manages only namespace {managed}, not {ns}: "
            f"pass --namespace {managed} or set ARGO_NAMESPACE={managed}"
        )
    if name is None:
        return client.create_workflow(workflow)
    try:
        installed = client.get_template(name)
    except _NotFoundError as error:
        raise TemplateNotInstalledError(
            f"the WorkflowTemplate {name} is not installed in namespace {ns} ({error.server_message}; "
            f"wrong namespace? --namespace / ARGO_NAMESPACE): {install_hint(ns, sweep.path)}"
        ) from error
    given = {str(param["name"]): str(param.get("value", "")) for param in argument_parameters(workflow)}
    check_parameters(
        given,
        declared_parameters(installed),
        f"the WorkflowTemplate {name} installed in namespace {ns}",
        hint=f"; is the installed copy older than {sweep.path}? update it: {install_hint(ns, sweep.path)}",
    )
    return client.create_workflow(workflow)


# --- summaries ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeState:
    """One unit of work of a workflow (a pod, a skipped task) as last seen."""

    id: str
    label: str
    phase: str
    started: datetime | None
    finished: datetime | None
    message: str


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp from the API (None, "" and unparseable values -> None)."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_duration(seconds: float | None) -> str:
    """3s, 4m05s, 2h03m; '-' when unknown."""
    if seconds is None:
        return "-"
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _natural_key(text: str) -> list[Any]:
    """'train(2:88)' sorts before 'train(10:484)'."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def node_states(workflow: Mapping[str, Any]) -> list[NodeState]:
    """The workflow's work nodes (pods, skipped tasks), in start order then natural name order."""
    nodes = ((workflow.get("status") or {}).get("nodes") or {}).values()
    states = [
        NodeState(
            id=str(node.get("id") or node.get("name")),
            label=str(node.get("displayName") or node.get("name") or node.get("id")),
            phase=str(node.get("phase") or "Pending"),
            started=parse_time(node.get("startedAt")),
            finished=parse_time(node.get("finishedAt")),
            message=_one_line(node.get("message") or ""),
        )
        for node in nodes
        if isinstance(node, dict) and node.get("type") in WORK_NODE_TYPES
    ]
    never = datetime.max.replace(tzinfo=UTC)
    return sorted(states, key=lambda state: (state.started or never, _natural_key(state.label)))


def workflow_phase(workflow: Mapping[str, Any]) -> str:
    """status.phase, or Pending for a workflow the controller has not picked up yet."""
    return str((workflow.get("status") or {}).get("phase") or "Pending")


def workflow_name(workflow: Mapping[str, Any]) -> str:
    """metadata.name."""
    return str((workflow.get("metadata") or {}).get("name") or "?")


def _duration(start: datetime | None, end: datetime | None, now: datetime) -> float | None:
    if start is None:
        return None
    return ((end or now) - start).total_seconds()


def changed_nodes(seen: dict[str, str], states: Iterable[NodeState]) -> list[NodeState]:
    """The states whose phase differs from the one in ``seen`` (which is updated)."""
    changed = []
    for state in states:
        if seen.get(state.id) != state.phase:
            seen[state.id] = state.phase
            changed.append(state)
    return changed


def format_change(state: NodeState, workflow_started: datetime | None, now: datetime) -> str:
    """One watch line: time since the workflow started, the node, its new phase (and duration/message)."""
    at = state.finished if state.phase in FINAL_PHASES | {"Skipped", "Omitted"} else state.started
    offset = _duration(workflow_started, at or now, now) if workflow_started else None
    line = f"[{format_duration(offset):>7}] {state.label:<28} {state.phase}"
    if state.finished is not None and state.started is not None:
        line += f" after {format_duration(_duration(state.started, state.finished, now))}"
    if state.message and state.phase not in ("Succeeded", "Running"):
        line += f": {state.message}"
    return line


def format_summary(workflow: Mapping[str, Any], now: datetime | None = None) -> str:
    """The workflow's phase and durations and a table of its nodes."""
    now = now or datetime.now(UTC)
    status = workflow.get("status") or {}
    meta = workflow.get("metadata") or {}
    started, finished = parse_time(status.get("startedAt")), parse_time(status.get("finishedAt"))
    phase = workflow_phase(workflow)
    lines = [f"workflow  {workflow_name(workflow)}  (namespace {meta.get('namespace', '?')})"]
    when = f"started {started:%Y-%m-%d %H:%M:%S}Z, " if started else ""
    verb = "ran" if finished else "running for"
    lines.append(f"phase     {phase}  ({when}{verb} {format_duration(_duration(started, finished, now))})")
    if status.get("message"):
        lines.append(f"message   {_one_line(status['message'])}")
    states = node_states(workflow)
    if states:
        rows = [("STEP", "PHASE", "START", "DURATION", "MESSAGE")]
        for state in states:
            offset = _duration(started, state.started, now) if started and state.started else None
            start = f"+{format_duration(offset)}" if offset is not None else "-"
            rows.append(
                (
                    state.label,
                    state.phase,
                    start,
                    format_duration(_duration(state.started, state.finished, now)),
                    state.message,
                )
            )
        widths = [max(len(row[col]) for row in rows) for col in range(4)]
        lines.append("")
        lines.extend(
            "  ".join([*(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)), row[4]]).rstrip()
            for row in rows
        )
    return "\n".join(lines)


def exit_code_for_phase(phase: str) -> int:
    """0 Succeeded, 1 Failed or Error, 3 not finished yet."""
    if phase == "Succeeded":
        return EXIT_SUCCEEDED
    if phase in FINAL_PHASES:
        return EXIT_FAILED
    return EXIT_NOT_FINISHED


def watch_workflow(
    client: ArgoClient,
    name: str,
    interval: float = DEFAULT_INTERVAL,
    out: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll until the workflow finishes, printing one line per node state change; return its last state."""
    out = out or sys.stdout
    seen: dict[str, str] = {}
    failures = 0
    last_phase = None
    while True:
        try:
            workflow = client.get_workflow(name)
            failures = 0
        except ArgoUnreachableError as error:
            failures += 1
            if failures >= WATCH_MAX_FAILURES:
                raise ArgoUnreachableError(
                    f"lost the Argo Server while watching {name} ({error}); the workflow keeps running: "
                    f"python -m sd1job status {name}"
                ) from error
            log.warning("poll %d failed, retrying: %s", failures, error)
            sleep(interval)
            continue
        now = datetime.now(UTC)
        phase = workflow_phase(workflow)
        if phase != last_phase and phase not in FINAL_PHASES:
            print(f"workflow {name} {phase}", file=out, flush=True)
        last_phase = phase
        started = parse_time((workflow.get("status") or {}).get("startedAt"))
        for state in changed_nodes(seen, node_states(workflow)):
            print(format_change(state, started, now), file=out, flush=True)
        if phase in FINAL_PHASES:
            return workflow
        sleep(interval)


# --- the command --------------------------------------------------------------------------------


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """--argo-server, --namespace, --insecure-skip-verify (shared with `status`)."""
    parser.add_argument(
        "--argo-server",
        metavar="URL",
        default=None,
        help="Argo Server as host:port (https) or a URL (default: $ARGO_SERVER); token from $ARGO_TOKEN",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        default=None,
        help=f"namespace (default: $ARGO_NAMESPACE or {DEFAULT_NAMESPACE})",
    )
    parser.add_argument(
        "--insecure-skip-verify",
        action="store_true",
        help="do not verify the server's TLS certificate (also ARGO_INSECURE_SKIP_VERIFY=true)",
    )


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``submit``."""
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


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    """ServerSettings from the shared options and the environment."""
    return resolve_settings(args.argo_server, args.namespace, args.insecure_skip_verify)


def run(args: argparse.Namespace, config: Config | None) -> int:
    """Submit the sweep; with --watch follow it and return its exit status."""
    if args.interval <= 0:
        raise ArgoError(f"--interval {args.interval}: must be positive")
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
            final = watch_workflow(client, name, interval=args.interval)
        except KeyboardInterrupt:
            print(f"stopped watching; {name} keeps running: python -m sd1job status {name}", file=sys.stderr)
            raise
    print(format_summary(final), flush=True)
    return exit_code_for_phase(workflow_phase(final))
