"""The few Argo Server API calls sd1job makes, each failure turned into one line a user can act on.

Built on the ``argo-workflows`` SDK (the package the design card names), reading answers as plain
JSON. The SDK's generated response models are strict where real servers are not: every node still
running carries ``"finishedAt": null`` (argoproj/argo-workflows#9122), and a WorkflowTemplate's
``withItems: [44, 440]`` is typed as a list of objects; either makes the SDK raise instead of
returning. So responses are fetched with ``_preload_content=False`` and decoded here (only a
handful of fields are read), while requests are still built and type-checked with the SDK's
models (create_workflow).

hera's ``WorkflowsService`` was weighed as the replacement: its pydantic models do accept both
answers (null ``finishedAt``, integer ``withItems``; tests/test_submit.py shows it next to the
SDK's rejection), but it is not clearly better, so it does not replace the SDK: its requests have
no timeout (a stalled server or gateway hangs ``submit --watch`` forever), it joins paths with
``urljoin`` so a base href without a trailing slash (ARGO_BASE_HREF, a gateway prefix) is
silently dropped, it validates the host with ``assert`` (gone under ``python -O``), it has no
connection-retry setting, and importing it costs several times the SDK's import time. It stays a
test-only dependency (the tests validate argo/sweep.yaml against its models).
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

import urllib3

from sd1job import __version__
from sd1job.cluster.settings import ServerSettings
from sd1job.errors import UserError
from sd1job.formatting import one_line

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = (10.0, 60.0)  # (connect, read) seconds for every API call
_MESSAGE_LIMIT = 300


class ArgoUnreachableError(UserError):
    """No answer from the Argo Server (refused, DNS, timeout, TLS); a watch retries on it."""


class _NotFoundError(UserError):
    """A 404 from the server; each call words the message for what it looked for."""

    def __init__(self, message: str, server_message: str) -> None:
        super().__init__(message)
        self.server_message = server_message


def server_message(body: Any) -> str:
    """The message of a grpc-gateway error body (``{"code": 5, "message": "..."}``), else the text itself, one line."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    text = str(body or "")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and (parsed.get("message") or parsed.get("error")):
        text = str(parsed.get("message") or parsed.get("error"))
    return one_line(text)[:_MESSAGE_LIMIT]


class ArgoClient:
    """The Argo Server calls of submit and status: info, read a template, create and read a workflow.

    Every call returns the server's JSON as dicts or raises a UserError with a one-line message
    (ArgoUnreachableError when the server did not answer). Use as a context manager.
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

    def _call(self, action: str, method: Callable[..., Any], *args: Any) -> Any:
        """The decoded JSON of a 2xx answer to ``method(*args)``; a UserError naming ``action`` otherwise."""
        from argo_workflows.exceptions import ApiException

        try:
            response = method(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
            data = response.data
            response.release_conn()
        except ApiException as error:
            raise self._api_error(action, error) from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise self._unreachable(error) from error
        try:
            return json.loads(data)
        except ValueError as error:
            snippet = server_message(data)[:80]
            raise UserError(
                f"{self.settings.url} answered {action} with something that is not JSON "
                f"(a login page of a gateway in front of the Argo Server?): {snippet!r}"
            ) from error

    def _unreachable(self, error: Exception) -> ArgoUnreachableError:
        reason = getattr(error, "reason", None) or error
        url = self.settings.url
        if isinstance(reason, urllib3.exceptions.SSLError) or "SSL" in type(reason).__name__:
            return ArgoUnreachableError(
                f"TLS handshake with the Argo Server at {url} failed ({one_line(str(reason))}): for a self-signed "
                "certificate pass --insecure-skip-verify (ARGO_INSECURE_SKIP_VERIFY=true); for a plain-HTTP "
                "server use an http:// URL (ARGO_SECURE=false)"
            )
        return ArgoUnreachableError(
            f"cannot reach the Argo Server at {url} ({one_line(str(reason))}): check --argo-server / ARGO_SERVER "
            "and that the server (or its port-forward) is running"
        )

    def _api_error(self, action: str, error: Any) -> UserError:
        status = int(error.status or 0)
        message = server_message(error.body)
        where = f"namespace {self.settings.namespace}"
        if status == 0:  # the SDK's wrapper for TLS errors raised outside urllib3's retry loop
            return self._unreachable(urllib3.exceptions.SSLError(error.reason))
        if status == 401:
            token_hint = "ARGO_TOKEN is set but not accepted" if self.settings.token else "ARGO_TOKEN is not set"
            return UserError(
                f"the Argo Server at {self.settings.url} rejected the request to {action} (401 Unauthorized: "
                f"{message}): {token_hint}; use a token from `argo auth token` or a service-account token"
            )
        if status == 403:
            return UserError(
                f"the token may not {action} in {where} (403 Forbidden: {message}): "
                "grant its service account the Argo role there, or use --namespace / ARGO_NAMESPACE"
            )
        if status == 404:
            if re.search(r'namespaces? "?[^"\s]+"? not found', message):
                return UserError(
                    f"{where} does not exist on the Argo Server's cluster ({message}): "
                    "pass --namespace or set ARGO_NAMESPACE"
                )
            return _NotFoundError(f"cannot {action}: not found ({message})", message)
        return UserError(f"the Argo Server answered {status} {error.reason or ''} to {action}: {message}")

    def info(self) -> dict[str, Any]:
        """GET /api/v1/info: the server's managed namespace, links, ... (empty for a server without it)."""
        try:
            return self._call("read the server info", self.info_api.get_info)
        except _NotFoundError:
            return {}

    def find_template(self, name: str) -> dict[str, Any] | None:
        """GET the WorkflowTemplate ``name`` of the namespace; None when the server has no such template."""
        ns = self.settings.namespace
        try:
            return self._call(f"read WorkflowTemplate {name}", self.templates.get_workflow_template, ns, name)
        except _NotFoundError as error:
            log.debug("WorkflowTemplate %s not found in %s: %s", name, ns, error.server_message)
            return None

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
            raise UserError(f"the Workflow does not match the Argo Workflow schema: {one_line(str(error))}") from error
        body = IoArgoprojWorkflowV1alpha1WorkflowCreateRequest(workflow=model, namespace=self.settings.namespace)
        ns = self.settings.namespace
        try:
            return self._call(f"create a Workflow in namespace {ns}", self.workflows.create_workflow, ns, body)
        except _NotFoundError as error:
            raise UserError(f"the Argo Server refused the Workflow: {error.server_message}") from error

    def get_workflow(self, name: str) -> dict[str, Any]:
        """GET one workflow; UserError naming the namespace when the server does not have it."""
        ns = self.settings.namespace
        try:
            return self._call(f"read workflow {name}", self.workflows.get_workflow, ns, name)
        except _NotFoundError as error:
            raise UserError(
                f"no workflow {name} in namespace {ns} ({error.server_message}): check the name, "
                "--namespace / ARGO_NAMESPACE, or whether it was deleted or archived"
            ) from error
