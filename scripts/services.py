"""Real services on loopback for the tests and `make local-run-s3`: SeaweedFS (S3), Prometheus Pushgateway, Prometheus.

Each ``start_*`` function launches the real binary on a free 127.0.0.1 port, waits until it
answers, and returns a handle whose ``stop()`` ends it. The S3 server enforces credentials.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TEST_ACCESS_KEY = "sd1jobtestkey"
TEST_SECRET_KEY = "sd1job-test-secret-0f3c9a"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# weed derives each of its services' gRPC ports as the service's port + 10000, and refuses a port
# that is some other service's derived one: choose ports whose twins are free and distinct too.
WEED_GRPC_OFFSET = 10000


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def weed_ports(count: int, taken: tuple[int, ...] = ()) -> list[int]:
    """``count`` ports for weed's services: each free with its gRPC twin, none clashing with another's
    port or twin (nor with ``taken`` and their twins)."""
    chooser = random.SystemRandom()
    used = {*taken, *(port + WEED_GRPC_OFFSET for port in taken), *(port - WEED_GRPC_OFFSET for port in taken)}
    chosen: list[int] = []
    while len(chosen) < count:
        port = chooser.randrange(20000, 65535 - WEED_GRPC_OFFSET)
        twin = port + WEED_GRPC_OFFSET
        if {port, twin} & used or not (_is_free(port) and _is_free(twin)):
            continue
        chosen.append(port)
        used |= {port, twin, port - WEED_GRPC_OFFSET}
    return chosen


def find_binary(name: str) -> str:
    """A binary from the venv (pip-shipped servers) or PATH; a clear error if absent."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed: run `make test` (it installs the test services)")
    return found


def wait_http(url: str, timeout: float = 20.0, process: subprocess.Popen | None = None) -> None:
    """Wait until ``url`` answers any HTTP status (or raise with the process's output)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited early with status {process.returncode} while waiting for {url}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError as error:
            if error.code != 503:  # 503: up but not ready yet (Prometheus while it starts)
                return
            time.sleep(0.1)
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {url}")


@dataclass
class Service:
    """A running server process."""

    process: subprocess.Popen
    url: str
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    log: Path | None = None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _launch(command: list[str], workdir: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, Path]:
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "server.log"
    process = subprocess.Popen(
        command,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    return process, log


@dataclass
class S3Server(Service):
    """A SeaweedFS S3 endpoint with credentials enforced."""

    port: int = 0
    data_dir: Path | None = None

    @property
    def client_env(self) -> dict[str, str]:
        """Environment a client (or a job subprocess) needs to reach this server."""
        return {
            "AWS_ACCESS_KEY_ID": TEST_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": TEST_SECRET_KEY,
            "AWS_ENDPOINT_URL": self.url,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self) -> Any:
        """A boto3 S3 client of this server with the test credentials."""
        import boto3

        env = self.client_env
        return boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_REGION"],
        )

    def restart(self) -> None:
        """Start the server again on the same port and data directory (after ``stop``)."""
        fresh = start_s3(self.workdir, port=self.port)
        self.process, self.log = fresh.process, fresh.log


def start_s3(workdir: Path, port: int | None = None) -> S3Server:
    """Start ``weed mini`` on loopback with the test credentials enforced."""
    port = port or weed_ports(1)[0]
    master, volume, filer = weed_ports(3, taken=(port,))
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        find_binary("weed"),
        "mini",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.port={port}",
        f"-master.port={master}",
        f"-volume.port={volume}",
        f"-filer.port={filer}",
        "-webdav=false",
        "-admin.ui=false",
    ]
    env = {"AWS_ACCESS_KEY_ID": TEST_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": TEST_SECRET_KEY}
    process, log = _launch(command, workdir, env)
    url = f"http://127.0.0.1:{port}"
    server = S3Server(process=process, url=url, workdir=workdir, log=log, port=port, data_dir=data_dir)
    try:
        _wait_s3_ready(server)
    except Exception:
        server.stop()
        raise RuntimeError(f"SeaweedFS did not start: {log.read_text(errors='replace')[-2000:]}") from None
    return server


def _wait_s3_ready(server: S3Server, timeout: float = 30.0) -> None:
    import boto3

    wait_http(server.url, timeout=timeout, process=server.process)
    client = boto3.client(
        "s3",
        endpoint_url=server.url,
        aws_access_key_id=TEST_ACCESS_KEY,
        aws_secret_access_key=TEST_SECRET_KEY,
        region_name="us-east-1",
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.list_buckets()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def start_pushgateway(workdir: Path) -> Service:
    """Start a real Prometheus Pushgateway on loopback."""
    port = free_port()
    command = [find_binary("prometheus-pushgateway"), f"--web.listen-address=127.0.0.1:{port}"]
    process, log = _launch(command, workdir)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/-/ready", process=process)
    return Service(process=process, url=url, workdir=workdir, log=log)


def start_prometheus(workdir: Path, scrape_targets: list[str], interval: str = "1s") -> Service:
    """Start a real Prometheus scraping ``host:port`` targets (honor_labels, like for a Pushgateway)."""
    port = free_port()
    config = workdir / "prometheus.yml"
    workdir.mkdir(parents=True, exist_ok=True)
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": interval, "evaluation_interval": interval},
                "scrape_configs": [
                    {"job_name": "pushgateway", "honor_labels": True, "static_configs": [{"targets": scrape_targets}]}
                ],
            }
        )
    )
    command = [
        find_binary("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    process, log = _launch(command, workdir)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/-/ready", process=process)
    return Service(process=process, url=url, workdir=workdir, log=log)


def prometheus_query(url: str, query: str) -> list[dict]:
    """Run an instant PromQL query; return the result vector."""
    request = urllib.request.Request(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": query}))
    with urllib.request.urlopen(request, timeout=5) as response:
        payload = json.loads(response.read())
    if payload.get("status") != "success":
        raise RuntimeError(f"query failed: {payload}")
    return payload["data"]["result"]


def wait_for_query(url: str, query: str, timeout: float = 20.0, until=bool) -> list[dict]:  # type: ignore[no-untyped-def]
    """Poll a PromQL query until ``until(result)`` holds (by default: any data, the first scrape after
    a push) or ``timeout`` passes; a Prometheus still starting (503) is waited for."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = prometheus_query(url, query)
        except urllib.error.HTTPError as error:
            if error.code != 503 or time.monotonic() > deadline:
                raise
            result = []
        if until(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.3)
