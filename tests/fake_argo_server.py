"""A minimal, honest stand-in for the Argo Server's HTTP API, for the tests of sd1job.cluster.

No Argo Server runs on these machines, so this answers exactly the four endpoints the client
uses, with bodies shaped like the real API's:

- ``GET  /api/v1/info``                                  (InfoResponse: managedNamespace)
- ``GET  /api/v1/workflow-templates/{namespace}/{name}`` (WorkflowTemplate)
- ``POST /api/v1/workflows/{namespace}``                 (WorkflowCreateRequest -> Workflow)
- ``GET  /api/v1/workflows/{namespace}/{name}``          (Workflow with status.nodes)

Every request is checked: method and path, the ``Authorization: Bearer <token>`` header, the
Accept and Content-Type headers, and a POST body against the argo-workflows SDK's models (no
field the model does not know, every known field of the right type). Anything unexpected is
recorded in ``errors`` (tests assert it stays empty) and answered with an error. Every response
body this server sends is checked against the SDK's models the same way before it goes out.

Errors are shaped like the real server's (grpc-gateway JSON: ``{"code": 5, "message": ...}``):
404 for a missing template, workflow or namespace (k8s says ``namespaces "x" not found`` only on
create; a GET in a missing namespace is a plain "not found"), 401 for a missing or wrong token,
403 when ``forbidden`` is set or for namespaces outside a namespaced server's own.

A created workflow moves one poll per GET through the node tree argo/sweep.yaml makes (see
_Sweep): data, one nested DAG per unit (train, then eval), report, then the exit handler
(push-status). Every template is retried, so each task is a Retry node with its attempt pods; a
unit can be told to train only on its second attempt (``flaky_unit``) or to fail every attempt
(``fail_unit``: its eval is omitted, the report runs on the rest, the workflow ends Failed). Like
the real server, nodes still running carry ``"finishedAt": null``.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from argo_workflows.configuration import Configuration
from argo_workflows.exceptions import OpenApiException
from argo_workflows.model.io_argoproj_workflow_v1alpha1_info_response import IoArgoprojWorkflowV1alpha1InfoResponse
from argo_workflows.model.io_argoproj_workflow_v1alpha1_workflow import IoArgoprojWorkflowV1alpha1Workflow
from argo_workflows.model.io_argoproj_workflow_v1alpha1_workflow_create_request import (
    IoArgoprojWorkflowV1alpha1WorkflowCreateRequest,
)
from argo_workflows.model.io_argoproj_workflow_v1alpha1_workflow_template import (
    IoArgoprojWorkflowV1alpha1WorkflowTemplate,
)
from argo_workflows.model_utils import validate_and_convert_types

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
STEP = timedelta(seconds=60)
NAME_RE = r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?"
GRPC_INVALID_ARGUMENT, GRPC_NOT_FOUND, GRPC_PERMISSION_DENIED, GRPC_UNAUTHENTICATED = 3, 5, 7, 16


def rfc3339(moment: datetime) -> str:
    """The API's timestamp format (Go's metav1.Time): 2024-05-01T12:00:00Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _drop_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_drop_nulls(item) for item in value]
    return value


def unknown_fields(data: Any, types: tuple, path: str = "") -> list[str]:
    """Paths of keys in ``data`` that the SDK model(s) in ``types`` do not declare."""
    problems: list[str] = []
    model = next((kind for kind in types if isinstance(kind, type) and hasattr(kind, "attribute_map")), None)
    if isinstance(data, dict) and model is not None:
        by_json_name = {json_name: python_name for python_name, json_name in model.attribute_map.items()}
        for key, value in data.items():
            if key not in by_json_name:
                if model.attribute_map:  # an empty map is a free-form object
                    problems.append(f"{path}.{key}")
                continue
            problems.extend(unknown_fields(value, model.openapi_types[by_json_name[key]], f"{path}.{key}"))
    elif isinstance(data, list):
        inner = next((kind for kind in types if isinstance(kind, list)), None)
        if inner is not None:
            for index, item in enumerate(data):
                problems.extend(unknown_fields(item, tuple(inner), f"{path}[{index}]"))
    elif isinstance(data, dict):
        inner = next((kind for kind in types if isinstance(kind, dict)), None)
        if inner is not None:
            for key, item in data.items():
                problems.extend(unknown_fields(item, next(iter(inner.values())), f"{path}.{key}"))
    return problems


def shape_problems(data: Any, model: type, check_types: bool = True) -> list[str]:
    """Why ``data`` (API JSON) is not a valid ``model``: unknown fields, or a type the SDK rejects.

    Nulls are dropped before the type check: the real server sends ``"finishedAt": null``, which
    the SDK's strict check rejects (argoproj/argo-workflows#9122); that is the SDK's problem, not a
    shape problem. ``check_types=False`` checks field names only: for WorkflowTemplates, whose
    ``withItems: [44, 440]`` the server serves as written while the SDK types it as a list of dicts.
    """
    problems = [f"unknown field {path}" for path in unknown_fields(data, (model,))]
    if not check_types:
        return problems
    try:
        validate_and_convert_types(
            _drop_nulls(copy.deepcopy(data)), (model,), ["body"], True, True, configuration=Configuration()
        )
    except (OpenApiException, TypeError, ValueError) as error:
        problems.append(str(error))
    return problems


def _as_stored(document: Any) -> Any:
    """A copy as the API serves it back: parameter value/default/enum are AnyString in Go, so 50 -> "50"."""
    if isinstance(document, list):
        return [_as_stored(item) for item in document]
    if not isinstance(document, dict):
        return document
    result = {key: _as_stored(value) for key, value in document.items()}
    for param in result.get("parameters") or []:
        if isinstance(param, dict):
            for key in ("value", "default"):
                if key in param and not isinstance(param[key], str):
                    param[key] = json.dumps(param[key])
            if "enum" in param:
                param["enum"] = [item if isinstance(item, str) else json.dumps(item) for item in param["enum"]]
    return result


@dataclass
class Request:
    """One request as received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any = None
    query: str = ""


@dataclass
class _Tracked:
    workflow: dict[str, Any]
    timeline: list[dict[str, Any]]
    polls: int = 0


@dataclass
class FakeArgoServer:
    """The fake server; use as a context manager. ``url`` is http://127.0.0.1:PORT (or https with ``tls``)."""

    templates: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # namespace -> WorkflowTemplates
    namespaces: tuple[str, ...] = ("sd1job",)
    token: str | None = "t0ken-for-tests"
    managed_namespace: str = ""
    forbidden: bool = False
    units: tuple[str, ...] = ("c44-s25", "c440-s25")
    flaky_unit: str | None = None  # its training fails once, then succeeds on the retry
    fail_unit: str | None = None  # its training fails every attempt
    tls: tuple[Path, Path] | None = None  # (certificate, key) PEM files

    def __post_init__(self) -> None:
        self.errors: list[str] = []
        self.requests: list[Request] = []
        self.submitted: list[dict[str, Any]] = []  # Workflow bodies of accepted creates, as received
        self.names: list[str] = []  # the names given to them
        self._workflows: dict[tuple[str, str], _Tracked] = {}
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    # --- lifecycle ---
    def __enter__(self) -> FakeArgoServer:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        if self.tls is not None:
            import ssl

            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(self.tls[0]), str(self.tls[1]))
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def url(self) -> str:
        """Base URL of the server."""
        assert self._httpd is not None
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def paths(self) -> list[str]:
        """``METHOD path`` of every request received, in order."""
        return [f"{request.method} {request.path}" for request in self.requests]

    def unexpected(self, message: str) -> tuple[int, dict[str, Any]]:
        """Record a request the client should never have sent; answer 400."""
        self.errors.append(message)
        return 400, {"code": GRPC_INVALID_ARGUMENT, "message": f"fake Argo Server: {message}"}

    # --- routing ---
    def handle(self, request: Request) -> tuple[int, dict[str, Any]]:
        """Check one request and compute (status, JSON body)."""
        with self._lock:
            self.requests.append(request)
            routes = [
                ("GET", r"/api/v1/info", self._info),
                ("GET", rf"/api/v1/workflow-templates/(?P<ns>{NAME_RE})/(?P<name>{NAME_RE})", self._get_template),
                ("POST", rf"/api/v1/workflows/(?P<ns>{NAME_RE})", self._create),
                ("GET", rf"/api/v1/workflows/(?P<ns>{NAME_RE})/(?P<name>{NAME_RE})", self._get_workflow),
            ]
            if request.query:
                return self.unexpected(f"unexpected query string on {request.method} {request.path}: {request.query}")
            found = [
                (match, action)
                for method, pattern, action in routes
                if method == request.method and (match := re.fullmatch(pattern, request.path))
            ]
            if not found:
                return self.unexpected(f"unexpected request {request.method} {request.path}")
            match, action = found[0]
            if "application/json" not in request.headers.get("accept", ""):
                return self.unexpected(f"{request.method} {request.path} without Accept: application/json")
            auth = request.headers.get("authorization")
            if self.token is not None and auth != f"Bearer {self.token}":
                message = "token not valid. see https://argo-workflows.readthedocs.io/en/latest/faq/"
                return 401, {"code": GRPC_UNAUTHENTICATED, "message": message}
            ns = match.groupdict().get("ns")
            if ns is not None and (self.forbidden or (self.managed_namespace and ns != self.managed_namespace)):
                return 403, {
                    "code": GRPC_PERMISSION_DENIED,
                    "message": f'workflowtemplates.argoproj.io is forbidden: User "system:serviceaccount:argo:ci" '
                    f'cannot get resource "workflowtemplates" in API group "argoproj.io" in the namespace "{ns}"',
                }
            status, body = action(request, **match.groupdict())
            return status, body

    def _info(self, request: Request) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {"links": [], "modals": {"feedback": False}}
        if self.managed_namespace:
            body["managedNamespace"] = self.managed_namespace
        return self._respond(body, IoArgoprojWorkflowV1alpha1InfoResponse)

    def _get_template(self, request: Request, ns: str, name: str) -> tuple[int, dict[str, Any]]:
        for template in self.templates.get(ns, []) if ns in self.namespaces else []:
            if template["metadata"]["name"] == name:
                served = _as_stored(template)
                served["metadata"].update(namespace=ns, uid=f"uid-{name}", resourceVersion="1001")
                return self._respond(served, IoArgoprojWorkflowV1alpha1WorkflowTemplate, check_types=False)
        return 404, {"code": GRPC_NOT_FOUND, "message": f'workflowtemplates.argoproj.io "{name}" not found'}

    def _create(self, request: Request, ns: str) -> tuple[int, dict[str, Any]]:
        if "application/json" not in request.headers.get("content-type", ""):
            return self.unexpected("POST without Content-Type: application/json")
        body = request.body
        if not isinstance(body, dict) or not isinstance(body.get("workflow"), dict):
            return self.unexpected(f"create body is not a WorkflowCreateRequest: {body!r:.200}")
        problems = shape_problems(body, IoArgoprojWorkflowV1alpha1WorkflowCreateRequest)
        if problems:
            return self.unexpected(f"create body does not match the SDK model: {problems}")
        if body.get("namespace") not in (None, ns):
            return self.unexpected(f"body namespace {body.get('namespace')!r} differs from the path's {ns!r}")
        workflow = copy.deepcopy(body["workflow"])
        if workflow.get("kind") != "Workflow" or workflow.get("apiVersion") != "argoproj.io/v1alpha1":
            kind = f"{workflow.get('apiVersion')} {workflow.get('kind')}"
            return self.unexpected(f"not an argoproj.io/v1alpha1 Workflow: {kind}")
        for param in (workflow["spec"].get("arguments") or {}).get("parameters") or []:
            if not isinstance(param.get("value"), str):
                return self.unexpected(f"parameter {param.get('name')} has a non-string value {param.get('value')!r}")
        if ns not in self.namespaces:
            return 404, {"code": GRPC_NOT_FOUND, "message": f'namespaces "{ns}" not found'}
        ref = (workflow["spec"].get("workflowTemplateRef") or {}).get("name")
        if ref and ref not in {template["metadata"]["name"] for template in self.templates.get(ns, [])}:
            return 400, {"code": GRPC_INVALID_ARGUMENT, "message": f'workflowtemplates.argoproj.io "{ref}" not found'}
        self.submitted.append(copy.deepcopy(workflow))
        meta = workflow["metadata"]
        name = meta.get("name") or f"{meta['generateName']}{len(self._workflows) + 1:05d}"
        meta.update(name=name, namespace=ns, uid=f"uid-{name}", creationTimestamp=rfc3339(T0), resourceVersion="2001")
        meta.setdefault("labels", {})["workflows.argoproj.io/creator"] = "system-serviceaccount-argo-ci"
        self.names.append(name)
        timeline = sweep_timeline(name, self.units, flaky_unit=self.flaky_unit, fail_unit=self.fail_unit)
        self._workflows[(ns, name)] = _Tracked(workflow, timeline)
        return self._respond(workflow, IoArgoprojWorkflowV1alpha1Workflow)

    def _get_workflow(self, request: Request, ns: str, name: str) -> tuple[int, dict[str, Any]]:
        tracked = self._workflows.get((ns, name))
        if tracked is None:
            return 404, {"code": GRPC_NOT_FOUND, "message": f'workflows.argoproj.io "{name}" not found'}
        status = tracked.timeline[min(tracked.polls, len(tracked.timeline) - 1)]
        tracked.polls += 1
        return self._respond({**tracked.workflow, "status": status}, IoArgoprojWorkflowV1alpha1Workflow)

    def _respond(self, body: dict[str, Any], model: type, check_types: bool = True) -> tuple[int, dict[str, Any]]:
        problems = shape_problems(body, model, check_types)
        if problems:  # a bug in this fake, not in the client
            return self.unexpected(f"fake response does not match {model.__name__}: {problems}")
        return 200, body

    def finish(self, ns: str, name: str) -> None:
        """Jump a workflow to its final state (for `status` tests)."""
        tracked = self._workflows[(ns, name)]
        tracked.polls = len(tracked.timeline) - 1


def fnv32a(text: str) -> int:
    """The 32-bit FNV-1a hash the controller derives node IDs from (``<workflow>-<hash>``)."""
    value = 0x811C9DC5
    for byte in text.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


class _Sweep:
    """The node tree of one sweep workflow as the controller builds it, one snapshot per poll.

    Names and types follow the controller: the DAG root is named after the workflow; a task is
    ``<parent>.<task>``; a fan-out is a TaskGroup ``<wf>.unit`` whose children are nested DAGs
    ``<wf>.unit(i:<unit>)``; a template with a retryStrategy is a Retry node whose children are
    the attempts ``<node>(0)``, ``<node>(1)``, ...; display names are names relative to the
    boundary (the enclosing DAG), so every unit's first training pod is displayed ``train(0)``; the
    exit handler is ``<wf>.onExit`` outside every boundary. Nodes still running carry
    ``"finishedAt": null``, omitted ones too.
    """

    def __init__(self, workflow: str) -> None:
        self.workflow = workflow
        self.nodes: dict[str, dict[str, Any]] = {}  # by name
        self.clock = T0
        self.snapshots: list[dict[str, Any]] = [{}]  # the first poll: the controller has not picked it up yet
        self.status: dict[str, Any] = {"phase": "Running", "startedAt": rfc3339(T0), "finishedAt": None}

    def add(
        self,
        name: str,
        kind: str,
        template: str,
        boundary: dict[str, Any] | None,
        parent: dict[str, Any] | None,
        phase: str = "Pending",
        **extra: Any,
    ) -> dict[str, Any]:
        display = name if boundary is None else name.removeprefix(boundary["name"]).lstrip(".")
        node = {
            "id": f"{self.workflow}-{fnv32a(name)}",
            "name": name,
            "displayName": display,
            "type": kind,
            "templateName": template,
            "templateScope": f"local/{self.workflow}",
            "phase": phase,
            "startedAt": rfc3339(self.clock),
            "finishedAt": None,
            **({"boundaryID": boundary["id"]} if boundary is not None else {}),
            **extra,
        }
        self.nodes[name] = node
        if parent is not None:
            parent.setdefault("children", []).append(node["id"])
        return node

    def finish(self, node: dict[str, Any], phase: str, message: str | None = None) -> None:
        node["phase"] = phase
        node["finishedAt"] = rfc3339(self.clock)
        if message:
            node["message"] = message
        else:
            node.pop("message", None)

    def snap(self) -> None:
        pods = [node for node in self.nodes.values() if node["type"] == "Pod"]
        done = sum(node["phase"] == "Succeeded" for node in pods)
        status = {**self.status, "progress": f"{done}/{len(pods)}"}
        status["nodes"] = {node["id"]: copy.deepcopy(node) for node in self.nodes.values()}
        self.snapshots.append(copy.deepcopy(status))
        self.clock += STEP

    def retried(
        self,
        name: str,
        template: str,
        boundary: dict[str, Any] | None,
        parent: dict[str, Any] | None,
        outcomes: list[str],
        result: str | None = None,
        **extra: Any,
    ) -> Iterator[None]:
        """A template with a retryStrategy: its Retry node, then one attempt pod per outcome, each
        Pending -> Running -> its outcome, with a backoff poll between attempts. Yields at every poll;
        returns the final phase."""
        flag = extra.pop("nodeFlag", {})
        retry = self.add(name, "Retry", template, boundary, parent, "Running", nodeFlag=flag, **extra)
        for index, outcome in enumerate(outcomes):
            pod = self.add(
                f"{name}({index})", "Pod", template, boundary, retry, nodeFlag={**flag, "retried": True}, **extra
            )
            yield
            pod["phase"] = "Running"
            pod["hostNodeName"] = "gpu-node-1" if template in ("train", "eval") else "cpu-node-1"
            yield
            if outcome == "Succeeded":
                self.finish(pod, "Succeeded")
                pod["outputs"] = {"exitCode": "0", **({"result": result} if result is not None else {})}
            else:
                self.finish(pod, outcome, f"Error (exit code 1): {template} diverged")
                pod["outputs"] = {"exitCode": "1"}
            if outcome != "Succeeded" and index < len(outcomes) - 1:
                retry["message"] = "Backoff for 1 minute 0 seconds"
                yield
        final = outcomes[-1]
        self.finish(retry, final, "No more retries left" if final != "Succeeded" else None)
        retry["outputs"] = pod["outputs"]
        return final

    def unit(self, index: int, unit: str, group: dict[str, Any], train: list[str]) -> Iterator[None]:
        """One unit's nested DAG: train (retried per ``train``), then eval, or eval omitted."""
        root = self.nodes[self.workflow]
        inputs = {"inputs": {"parameters": [{"name": "unit", "value": unit}]}}
        dag = self.add(f"{self.workflow}.unit({index}:{unit})", "DAG", "unit", root, group, "Running", **inputs)
        phase = yield from self.retried(f"{dag['name']}.train", "train", dag, dag, train, **inputs)
        if phase == "Succeeded":
            phase = yield from self.retried(f"{dag['name']}.eval", "eval", dag, dag, ["Succeeded"], **inputs)
        else:
            self.add(
                f"{dag['name']}.eval",
                "Skipped",
                "eval",
                dag,
                dag,
                "Omitted",
                message="omitted: depends condition not met",
            )
        self.finish(dag, phase)

    def sweep(self, units: tuple[str, ...], outcomes: dict[str, list[str]]) -> Iterator[None]:
        """data -> one nested DAG per unit (in lockstep) -> report -> the exit handler, with the DAG's
        phase judged on its targets (the fan-out and report), as argo/sweep.yaml asks."""
        root = self.add(self.workflow, "DAG", "sweep", None, None, "Running")
        yield from self.retried(f"{self.workflow}.data", "data", root, root, ["Succeeded"], result=json.dumps(units))
        group = self.add(f"{self.workflow}.unit", "TaskGroup", "unit", root, self.nodes[f"{self.workflow}.data(0)"])
        group["phase"] = "Running"
        running = [self.unit(i, unit, group, outcomes.get(unit, ["Succeeded"])) for i, unit in enumerate(units)]
        while running:
            for process in list(running):
                try:
                    next(process)
                except StopIteration:
                    running.remove(process)
            if running:
                yield
        unit_dags = [node for node in self.nodes.values() if node["templateName"] == "unit" and node["type"] == "DAG"]
        failed = [node for node in unit_dags if node["phase"] != "Succeeded"]
        self.finish(group, "Failed" if failed else "Succeeded")
        if len(failed) < len(units):
            report = yield from self.retried(f"{self.workflow}.report", "report", root, group, ["Succeeded"])
        else:
            self.add(f"{self.workflow}.report", "Skipped", "report", root, group, "Omitted")
            report = "Omitted"
        phase = "Failed" if failed or report != "Succeeded" else "Succeeded"
        message = f"child '{group['id']}' failed" if phase == "Failed" else None
        self.finish(root, phase, message)
        yield from self.retried(
            f"{self.workflow}.onExit", "push-status", None, None, ["Succeeded"], nodeFlag={"hooked": True}
        )
        self.status.update(phase=phase, finishedAt=rfc3339(self.clock), **({"message": message} if message else {}))


def sweep_timeline(
    name: str,
    units: tuple[str, ...],
    *,
    flaky_unit: str | None = None,
    fail_unit: str | None = None,
    retries: int = 2,
) -> list[dict[str, Any]]:
    """status snapshots of a sweep workflow, one per poll: data -> train, eval per unit -> report -> onExit.

    ``flaky_unit`` trains on its second attempt; ``fail_unit`` fails all ``retries + 1`` attempts,
    so its eval is omitted, the report still runs and the workflow ends Failed.
    """
    outcomes = {}
    if flaky_unit is not None:
        outcomes[flaky_unit] = ["Failed", "Succeeded"]
    if fail_unit is not None:
        outcomes[fail_unit] = ["Failed"] * (retries + 1)
    sweep = _Sweep(name)
    for _ in sweep.sweep(units, outcomes):
        sweep.snap()
    sweep.snap()
    return sweep.snapshots


class _Handler(BaseHTTPRequestHandler):
    fake: FakeArgoServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _serve(self) -> None:
        headers = {key.lower(): value for key, value in self.headers.items()}
        length = int(headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", errors="replace")
        path, _, query = self.path.partition("?")
        status, payload = self.fake.handle(Request(self.command, path, headers, body, query))
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()
