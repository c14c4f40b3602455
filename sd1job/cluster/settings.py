"""Where the Argo Server is and how to talk to it, read the way the argo CLI reads it.

ARGO_SERVER (host:port or a URL; https unless ARGO_SECURE=false), ARGO_TOKEN (with or without
the "Bearer " prefix), ARGO_NAMESPACE, ARGO_INSECURE_SKIP_VERIFY (TLS verification is on unless
this or --insecure-skip-verify turns it off) and ARGO_BASE_HREF (a path prefix when the server
sits behind a gateway). Command-line options beat the environment, which beats the defaults.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass

import urllib3

from sd1job.errors import UserError

DEFAULT_NAMESPACE = "sd1job"  # the namespace k8s/ and argo/sweep.yaml install into

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


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
    """A boolean environment variable as the argo CLI reads it (true/false, 1/0, yes/no, on/off)."""
    value = environ.get(name)
    if value is None:
        return default
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise UserError(f"{name}={value!r} is not a boolean: use true or false")


def normalise_server_url(server: str, secure: bool = True, base_href: str = "") -> str:
    """``host:port`` or a full URL -> ``scheme://host:port[/base]`` without a trailing slash.

    Like the argo CLI, a bare ``host:port`` means https unless ``secure`` is False (ARGO_SECURE=false).
    """
    text = server.strip()
    if not text:
        raise UserError("the Argo Server address is empty: pass --argo-server HOST:PORT or set ARGO_SERVER")
    if "://" not in text:
        text = f"{'https' if secure else 'http'}://{text}"
    parsed = urllib3.util.parse_url(text)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UserError(f"the Argo Server address {server!r} is not host:port or an http(s) URL")
    path = (parsed.path or "").strip("/")
    base = base_href.strip("/")
    if base and path != base:
        path = f"{path}/{base}".strip("/")
    netloc = parsed.host if parsed.port is None else f"{parsed.host}:{parsed.port}"
    return f"{parsed.scheme}://{netloc}" + (f"/{path}" if path else "")


def normalise_token(token: str | None) -> str | None:
    """ARGO_TOKEN with or without its ``Bearer`` prefix -> the bare token (None when unset or empty)."""
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
    """Options first, then the argo CLI's environment variables (``environ``, default os.environ), then defaults."""
    env = os.environ if environ is None else environ
    server = argo_server or env.get("ARGO_SERVER")
    if not server:
        raise UserError(
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


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """--argo-server, --namespace and --insecure-skip-verify (every command that talks to the server)."""
    parser.add_argument(
        "--argo-server",
        metavar="URL",
        default=None,
        help="Argo Server as host:port (https) or a URL (default: $ARGO_SERVER); token from $ARGO_TOKEN",
    )
    parser.add_argument(
        "-n", "--namespace", default=None, help=f"namespace (default: $ARGO_NAMESPACE or {DEFAULT_NAMESPACE})"
    )
    parser.add_argument(
        "--insecure-skip-verify",
        action="store_true",
        help="do not verify the server's TLS certificate (also ARGO_INSECURE_SKIP_VERIFY=true)",
    )


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    """ServerSettings from the options add_server_options added, then the environment."""
    return resolve_settings(args.argo_server, args.namespace, args.insecure_skip_verify)
