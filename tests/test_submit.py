"""``submit`` and ``status`` (sd1job.cluster) against a local fake Argo Server (tests/fake_argo_server.py).

The fake checks every request (path, method, auth header, body against the SDK's models) and
records anything unexpected in ``errors``; the ``fake`` fixture asserts that stays empty. Its
workflows run the node tree argo/sweep.yaml makes: data, train and eval per unit (each a Retry
node with its attempt pods), report, and the exit handler.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml

from scripts.services import free_port
from sd1job import cli
from sd1job.cluster import client as argo_client
from sd1job.cluster import settings as argo_settings
from sd1job.cluster import submit, sweepfile, watch
from sd1job.errors import UserError
from tests import fake_argo_server
from tests.fake_argo_server import FakeArgoServer
from tests.helpers import job_env, run_job

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "data" / "argo_sweep_fixture.yaml"
TOKEN = "t0ken-for-tests"
UNITS = ("c44-s25", "c440-s25")
EXIT_HANDLER = "push-status (onExit)"
ARGO_ENV = ("ARGO_SERVER", "ARGO_TOKEN", "ARGO_NAMESPACE", "ARGO_SECURE", "ARGO_INSECURE_SKIP_VERIFY", "ARGO_BASE_HREF")


def fixture_documents() -> tuple[dict, dict]:
    """(WorkflowTemplate, Workflow) of the fixture file."""
    template, workflow = yaml.safe_load_all(FIXTURE.read_text())
    return template, workflow


@pytest.fixture(autouse=True)
def _clean_argo_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ARGO_ENV:
        monkeypatch.delenv(name, raising=False)


def _start(monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> Iterator[FakeArgoServer]:
    kwargs.setdefault("templates", {"sd1job": [fixture_documents()[0]]})
    with FakeArgoServer(**kwargs) as fake:
        monkeypatch.setenv("ARGO_SERVER", fake.url)
        monkeypatch.setenv("ARGO_TOKEN", f"Bearer {TOKEN}")
        yield fake
    assert fake.errors == [], fake.errors


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeArgoServer]:
    """A fake Argo Server with the fixture's WorkflowTemplate installed in namespace sd1job."""
    yield from _start(monkeypatch)


@pytest.fixture
def failing_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeArgoServer]:
    """Like ``fake``, but unit c440-s25 fails to train on every attempt."""
    yield from _start(monkeypatch, fail_unit="c440-s25")


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``python -m sd1job ARGV`` in-process; return (exit status, stdout, stderr)."""
    status = cli.main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def submit_argv(*extra: str) -> list[str]:
    return ["submit", "--file", str(FIXTURE), "--interval", "0.01", *extra]


def phases_printed(out: str, label: str) -> list[str]:
    """The phases the watch printed for one step (or ``step (attempt N)``), in order."""
    pattern = re.compile(rf"^\[\s*[\dhms]+\] {re.escape(label)}\s+(\w+)", re.MULTILINE)
    return pattern.findall(out)


def summary_table(out: str) -> dict[str, list[str]]:
    """The summary's rows by step: [phase, attempts, start, duration, message words...]."""
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("STEP "))
    rows = {}
    for line in lines[header + 1 :]:
        label, rest = re.split(r"\s{2,}", line, maxsplit=1)
        rows[label] = re.split(r"\s{2,}", rest)
    return rows


# --- submit and watch ---------------------------------------------------------------------------


@pytest.mark.parametrize("token_env", [f"Bearer {TOKEN}", TOKEN])
def test_submit_watch_follows_a_sweep_to_success(
    fake: FakeArgoServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, token_env: str
) -> None:
    monkeypatch.setenv("ARGO_TOKEN", token_env)
    status, out, err = run_cli(submit_argv("-p", "run-id=ctx-2", "-p", "store=s3://other", "--watch"), capsys)
    assert status == 0, err
    name = fake.names[0]
    assert f"submitted {name} to namespace sd1job" in out
    assert f"{fake.url}/workflows/sd1job/{name}" in out
    # One line per observed state change, for data, train and eval of each unit, report, the exit handler.
    steps = ["data", *(f"{stage} {unit}" for stage in ("train", "eval") for unit in UNITS), "report", EXIT_HANDLER]
    for label in steps:
        assert phases_printed(out, label) == ["Pending", "Running", "Succeeded"], label
    assert out.index("data ") < out.index("train c44-s25") < out.index("eval c44-s25") < out.index("report ")
    assert out.index("report ") < out.index(EXIT_HANDLER)
    assert "(attempt" not in out  # nothing was retried
    assert re.search(r"^phase\s+Succeeded", out, re.MULTILINE)
    table = summary_table(out)
    assert list(table) == steps  # in start order; fan-out items by natural order
    assert all(row[:2] == ["Succeeded", "1"] for row in table.values())
    # The request sequence: checks first, one create, then polls until the final phase.
    assert fake.paths[:3] == [
        "GET /api/v1/info",
        "GET /api/v1/workflow-templates/sd1job/sd1job-sweep",
        "POST /api/v1/workflows/sd1job",
    ]
    assert set(fake.paths[3:]) == {f"GET /api/v1/workflows/sd1job/{name}"}
    assert all(request.headers["authorization"] == f"Bearer {TOKEN}" for request in fake.requests)


def test_submit_sends_the_files_workflow_with_overrides(fake: FakeArgoServer, capsys) -> None:
    status, _, err = run_cli(submit_argv("-p", "run-id=ctx-2", "-p", "device=gpu", "-p", "x=y=z", "-p", "x=1"), capsys)
    # x is undeclared: nothing is created
    assert status == 2 and "parameter 'x' is not declared" in err
    assert fake.submitted == []
    status, out, err = run_cli(submit_argv("-p", "run-id=ctx-2", "-p", "device=gpu"), capsys)
    assert status == 0, err
    assert f"submitted {fake.names[0]}" in out
    _, workflow = fixture_documents()
    sent = fake.submitted[0]
    assert sent["metadata"]["generateName"] == workflow["metadata"]["generateName"]
    assert sent["spec"]["workflowTemplateRef"] == {"name": "sd1job-sweep"}
    # existing parameters replaced in place, YAML numbers sent as strings, new ones appended
    assert sent["spec"]["arguments"]["parameters"] == [
        {"name": "run-id", "value": "ctx-2"},
        {"name": "epochs", "value": "50"},
        {"name": "device", "value": "gpu"},
    ]
    assert sent["metadata"]["labels"] == workflow["metadata"]["labels"]
    # without --watch: no polling
    assert not any(path.startswith("GET /api/v1/workflows/") for path in fake.paths)


def test_watch_counts_the_attempts_of_a_retried_unit(monkeypatch, capsys) -> None:
    for _fake in _start(monkeypatch, flaky_unit="c440-s25"):
        status, out, err = run_cli(submit_argv("--watch"), capsys)
        assert status == 0, err
        assert phases_printed(out, "train c440-s25") == ["Pending", "Running", "Failed"]
        assert re.search(r"train c440-s25\s+Failed after 2m00s: Error \(exit code 1\): .*; retrying$", out, re.M)
        assert phases_printed(out, "train c440-s25 (attempt 2)") == ["Pending", "Running", "Succeeded"]
        assert phases_printed(out, "eval c440-s25") == ["Pending", "Running", "Succeeded"]
        assert phases_printed(out, "train c44-s25") == ["Pending", "Running", "Succeeded"]
        table = summary_table(out)
        assert table["train c440-s25"][:2] == ["Succeeded", "2"]
        assert "after 1 failed attempt" in table["train c440-s25"][-1]
        assert table["train c44-s25"][:2] == ["Succeeded", "1"]
        assert re.search(r"^steps\s+7 Succeeded; 1 attempt failed$", out, re.MULTILINE)


def test_submit_watch_reports_a_unit_that_failed_after_its_retries(failing_fake: FakeArgoServer, capsys) -> None:
    status, out, err = run_cli(submit_argv("--watch"), capsys)
    assert status == 1, err
    assert phases_printed(out, "train c44-s25")[-1] == "Succeeded"
    assert phases_printed(out, "eval c44-s25")[-1] == "Succeeded"
    attempts = ["train c440-s25", "train c440-s25 (attempt 2)", "train c440-s25 (attempt 3)"]
    assert [phases_printed(out, label)[-1] for label in attempts] == ["Failed", "Failed", "Failed"]
    assert re.search(r"train c440-s25 \(attempt 3\)\s+Failed after .*diverged; no retries left$", out, re.MULTILINE)
    assert phases_printed(out, "eval c440-s25") == ["Omitted"]
    # the report runs on the unit that trained; the exit handler runs last; the sweep still fails
    assert phases_printed(out, "report")[-1] == "Succeeded"
    assert phases_printed(out, EXIT_HANDLER)[-1] == "Succeeded"
    assert re.search(r"^phase\s+Failed", out, re.MULTILINE)
    table = summary_table(out)
    assert table["train c440-s25"][:2] == ["Failed", "3"]
    assert "diverged" in table["train c440-s25"][-1] and "No more retries left" in table["train c440-s25"][-1]
    assert table["eval c440-s25"][:2] == ["Omitted", "1"] and table["eval c440-s25"][3] == "-"
    assert table[EXIT_HANDLER][0] == "Succeeded"


def test_status_prints_the_summary_and_exits_by_phase(fake: FakeArgoServer, capsys) -> None:
    status, _, _ = run_cli(submit_argv(), capsys)
    assert status == 0
    name = fake.names[0]
    status, out, err = run_cli(["status", name], capsys)  # first poll: not picked up yet
    assert status == watch.EXIT_NOT_FINISHED, err
    assert "phase     Pending" in out
    status, out, _ = run_cli(["status", name], capsys)  # data pending, workflow running
    assert status == watch.EXIT_NOT_FINISHED and "phase     Running" in out
    assert summary_table(out)["data"][:2] == ["Pending", "1"]  # its Retry node runs, its first pod is pending
    fake.finish("sd1job", name)
    status, out, _ = run_cli(["status", name], capsys)
    assert status == 0
    table = summary_table(out)
    assert set(table) == {"data", "train c44-s25", "train c440-s25", "eval c44-s25", "eval c440-s25", "report"} | {
        EXIT_HANDLER
    }
    assert all(row[:2] == ["Succeeded", "1"] for row in table.values())
    assert table["data"][2:] == ["+0s", "2m00s"]  # start offset and duration from the server's timestamps
    assert "ran 10m00s" in out


def test_status_of_a_failed_and_of_an_unknown_workflow(failing_fake: FakeArgoServer, capsys) -> None:
    run_cli(submit_argv(), capsys)
    name = failing_fake.names[0]
    failing_fake.finish("sd1job", name)
    status, out, _ = run_cli(["status", name], capsys)
    assert status == 1
    assert re.search(r"^train c440-s25\s+Failed\s+3\s.*diverged", out, re.MULTILINE)
    assert re.search(rf"^{re.escape(EXIT_HANDLER)}\s+Succeeded", out, re.MULTILINE)
    status, _, err = run_cli(["status", "sd1job-sweep-nope"], capsys)
    assert status == 2
    assert err.startswith("error: no workflow sd1job-sweep-nope in namespace sd1job") and err.count("\n") == 1


# --- errors a user will meet --------------------------------------------------------------------


def assert_one_line_error(status: int, err: str, *fragments: str) -> None:
    assert status == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err


def test_wrong_or_missing_token_is_401(fake: FakeArgoServer, capsys, monkeypatch) -> None:
    monkeypatch.setenv("ARGO_TOKEN", "Bearer wrong")
    assert_one_line_error(
        *run_cli(submit_argv(), capsys)[::2], "401 Unauthorized", "ARGO_TOKEN is set but not accepted"
    )
    monkeypatch.delenv("ARGO_TOKEN")
    assert_one_line_error(*run_cli(submit_argv(), capsys)[::2], "401", "ARGO_TOKEN is not set")
    assert fake.submitted == []


def test_errors_are_one_line_in_a_real_process(fake: FakeArgoServer) -> None:
    """Where logging reaches stderr too: the whole of stderr is the one error line."""
    env = job_env({"ARGO_SERVER": fake.url, "ARGO_TOKEN": "wrong"})
    for argv in (["submit", "--file", str(FIXTURE)], ["status", "sd1job-sweep-00001"]):
        result = run_job(argv, env, timeout=60)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
        assert "401 Unauthorized" in result.stderr and result.stdout == ""
    result = run_job(["submit", "--file", str(FIXTURE), "-p", "contexts=[44]"], env, timeout=60)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert fake.submitted == []


def test_forbidden_is_403(monkeypatch, capsys) -> None:
    for fake in _start(monkeypatch, forbidden=True):
        status, _, err = run_cli(submit_argv(), capsys)
        assert_one_line_error(status, err, "403 Forbidden", "namespace sd1job", "cannot get resource")
        assert fake.submitted == []


def test_namespace_not_managed_by_a_namespaced_server(monkeypatch, capsys) -> None:
    for fake in _start(monkeypatch, managed_namespace="sd1job"):
        status, _, err = run_cli(submit_argv("--namespace", "ml"), capsys)
        assert_one_line_error(status, err, "manages only namespace sd1job, not ml", "--namespace sd1job")
        assert fake.paths == ["GET /api/v1/info"]


def test_missing_namespace(fake: FakeArgoServer, capsys, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ARGO_NAMESPACE", "nope")
    # With a template reference, the template lookup is what fails: say so, and hint at the namespace.
    status, _, err = run_cli(submit_argv(), capsys)
    assert_one_line_error(
        status, err, "sd1job-sweep is not installed in namespace nope", "argo template create -n nope"
    )
    # A self-contained Workflow goes straight to create, where Kubernetes names the missing namespace.
    _, workflow = fixture_documents()
    standalone = copy.deepcopy(workflow)
    standalone["spec"] = {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "busybox"}}]}
    path = tmp_path / "standalone.yaml"
    path.write_text(yaml.safe_dump(standalone))
    status, _, err = run_cli(["submit", "--file", str(path)], capsys)
    assert_one_line_error(status, err, "namespace nope does not exist", "ARGO_NAMESPACE")
    assert fake.submitted == []


def test_template_not_installed(monkeypatch, capsys) -> None:
    for fake in _start(monkeypatch, templates={}):
        status, _, err = run_cli(submit_argv(), capsys)
        assert_one_line_error(
            status,
            err,
            "the WorkflowTemplate sd1job-sweep is not installed in namespace sd1job",
            "argo template create",
        )
        assert "POST /api/v1/workflows/sd1job" not in fake.paths


def test_undeclared_parameter_in_the_file_and_on_the_server(monkeypatch, capsys) -> None:
    template, _ = fixture_documents()
    status, _, err = run_cli(submit_argv("-p", "epoch=3", "--argo-server", "127.0.0.1:9"), capsys)
    # caught from the file, before any connection
    assert_one_line_error(
        status, err, "parameter 'epoch' is not declared", "argo_sweep_fixture.yaml (declared: config, device, epochs"
    )
    status, _, err = run_cli(submit_argv("-p", "device=tpu", "--argo-server", "127.0.0.1:9"), capsys)
    assert_one_line_error(status, err, "device='tpu' is not one of cpu, gpu")
    # the parameter the sweep no longer has: say where its setting went
    status, _, err = run_cli(submit_argv("-p", "contexts=[44, 440]", "--argo-server", "127.0.0.1:9"), capsys)
    assert_one_line_error(status, err, "'contexts' is not declared", "edit dataset.contexts and train.repeats")
    # the installed copy is older than the file: it lacks `device`
    old = copy.deepcopy(template)
    old["spec"]["arguments"]["parameters"] = [
        p for p in old["spec"]["arguments"]["parameters"] if p["name"] != "device"
    ]
    for fake in _start(monkeypatch, templates={"sd1job": [old]}):
        status, _, err = run_cli(submit_argv("-p", "device=gpu"), capsys)
        assert_one_line_error(status, err, "'device' is not declared by the WorkflowTemplate sd1job-sweep installed")
        assert fake.submitted == []


def test_unreachable_server(capsys, monkeypatch) -> None:
    monkeypatch.setenv("ARGO_SECURE", "false")
    status, _, err = run_cli(submit_argv("--argo-server", f"127.0.0.1:{free_port()}"), capsys)
    assert_one_line_error(status, err, "cannot reach the Argo Server at http://127.0.0.1:")
    status, _, err = run_cli(["status", "x", "--argo-server", f"http://127.0.0.1:{free_port()}"], capsys)
    assert_one_line_error(status, err, "cannot reach the Argo Server")


def test_no_server_configured(capsys) -> None:
    assert_one_line_error(*run_cli(submit_argv(), capsys)[::2], "no Argo Server given", "ARGO_SERVER")


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl CLI, part of every Debian system)."""
    openssl = shutil.which("openssl")
    assert openssl is not None, "openssl is not installed"
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls_is_verified_unless_told_otherwise(monkeypatch, capsys, tls_pair) -> None:
    for fake in _start(monkeypatch, tls=tls_pair):
        assert fake.url.startswith("https://")
        monkeypatch.setenv("ARGO_SERVER", fake.url.removeprefix("https://"))  # host:port means https
        status, _, err = run_cli(submit_argv(), capsys)
        assert_one_line_error(status, err, "TLS handshake", "--insecure-skip-verify")
        assert fake.submitted == []
        status, _, err = run_cli(submit_argv("--insecure-skip-verify"), capsys)
        assert status == 0, err
        monkeypatch.setenv("ARGO_INSECURE_SKIP_VERIFY", "true")
        status, _, err = run_cli(submit_argv(), capsys)
        assert status == 0, err
        assert len(fake.submitted) == 2


def test_watch_survives_brief_outages_and_gives_up_on_long_ones(fake: FakeArgoServer) -> None:
    settings = argo_settings.resolve_settings(fake.url, None, False)
    with argo_client.ArgoClient(settings) as client:
        name = submit.submit_sweep(client, sweepfile.load_sweep_file(FIXTURE), {})["metadata"]["name"]
        calls = {"n": 0}

        def flaky(workflow_name: str) -> dict:
            calls["n"] += 1
            if calls["n"] % 3 == 0:  # every third poll fails
                raise argo_client.ArgoUnreachableError("connection refused")
            return client.get_workflow(workflow_name)

        final = watch.watch_workflow(flaky, name, interval=0, sleep=lambda _: None)
        assert watch.workflow_phase(final) == "Succeeded"

        def down(workflow_name: str) -> dict:
            raise argo_client.ArgoUnreachableError("connection refused")

        with pytest.raises(UserError, match=f"lost the Argo Server while watching {name}"):
            watch.watch_workflow(down, name, interval=0, sleep=lambda _: None)


# --- the client: why argo-workflows with raw JSON, and not hera -----------------------------------


def test_the_sdks_strict_models_reject_real_responses_and_heras_accept_them(fake: FakeArgoServer) -> None:
    """Why ArgoClient reads raw JSON: null finishedAt on running nodes (#9122), integer withItems.

    hera's models accept both (client.py says why hera still does not replace the SDK). If a future
    SDK accepts them, the raw-JSON workaround in ArgoClient can go.
    """
    from argo_workflows.api.workflow_service_api import WorkflowServiceApi
    from argo_workflows.api.workflow_template_service_api import WorkflowTemplateServiceApi
    from argo_workflows.api_client import ApiClient
    from argo_workflows.configuration import Configuration
    from argo_workflows.exceptions import ApiTypeError
    from hera.workflows.models import Workflow, WorkflowTemplate

    template, _ = fixture_documents()
    items = copy.deepcopy(template)  # a template as users write them: withItems of plain numbers
    items["metadata"]["name"] = "with-items"
    items["spec"]["templates"][0]["dag"]["tasks"][1] = {"name": "unit", "template": "unit", "withItems": [44, 440]}
    fake.templates["sd1job"].append(items)
    settings = argo_settings.resolve_settings(fake.url, None, False)
    with argo_client.ArgoClient(settings) as client:
        name = submit.submit_sweep(client, sweepfile.load_sweep_file(FIXTURE), {})["metadata"]["name"]
        assert client.get_workflow(name)["status"] == {}
        running = client.get_workflow(name)  # data pending: finishedAt null
        assert any(node["finishedAt"] is None for node in running["status"]["nodes"].values())
        served_template = client.find_template("with-items")
    configuration = Configuration(
        host=fake.url, api_key={"BearerToken": TOKEN}, api_key_prefix={"BearerToken": "Bearer"}
    )
    with ApiClient(configuration) as api_client:
        with pytest.raises(ApiTypeError, match="finished_at"):
            WorkflowServiceApi(api_client).get_workflow("sd1job", name)
        with pytest.raises(ApiTypeError, match="with_items"):
            WorkflowTemplateServiceApi(api_client).get_workflow_template("sd1job", "with-items")
    parsed = Workflow.model_validate(running)
    assert parsed.status is not None and any(node.finished_at is None for node in parsed.status.nodes.values())
    parsed_template = WorkflowTemplate.model_validate(served_template)
    assert [item.root for item in parsed_template.spec.templates[0].dag.tasks[1].with_items] == [44, 440]


# --- the fake server's own honesty --------------------------------------------------------------


def test_the_fake_plays_the_node_tree_the_controller_makes(fake: FakeArgoServer) -> None:
    """Names, types and display names as Argo's controller makes them for argo/sweep.yaml's DAG."""
    settings = argo_settings.resolve_settings(fake.url, None, False)
    with argo_client.ArgoClient(settings) as client:
        name = submit.submit_sweep(client, sweepfile.load_sweep_file(FIXTURE), {})["metadata"]["name"]
        fake.finish("sd1job", name)
        nodes = {node["name"]: node for node in client.get_workflow(name)["status"]["nodes"].values()}
    by_id = {node["id"]: node for node in nodes.values()}
    data = nodes[f"{name}.data"]
    assert data["type"] == "Retry" and [by_id[c]["name"] for c in data["children"]] == [f"{name}.data(0)"]
    assert json.loads(data["outputs"]["result"]) == list(UNITS)  # the fan-out's list is the data step's stdout
    assert nodes[f"{name}.unit"]["type"] == "TaskGroup"
    for index, unit in enumerate(UNITS):
        dag = nodes[f"{name}.unit({index}:{unit})"]
        assert dag["type"] == "DAG" and dag["displayName"] == f"unit({index}:{unit})"
        pod = nodes[f"{name}.unit({index}:{unit}).train(0)"]
        assert pod["type"] == "Pod" and pod["displayName"] == "train(0)" and pod["boundaryID"] == dag["id"]
        assert pod["nodeFlag"] == {"retried": True} and pod["finishedAt"] is not None
    exit_handler = nodes[f"{name}.onExit"]
    assert exit_handler["type"] == "Retry" and exit_handler["templateName"] == "push-status"
    assert exit_handler["nodeFlag"] == {"hooked": True} and "boundaryID" not in exit_handler
    assert all(node_id == f"{name}-{fake_argo_server.fnv32a(node['name'])}" for node_id, node in by_id.items())


def test_the_fake_server_flags_requests_it_does_not_expect() -> None:
    template, workflow = fixture_documents()
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json", "Content-Type": "application/json"}
    with FakeArgoServer(templates={"sd1job": [template]}) as fake:
        http = urllib3.PoolManager()
        bad_field = copy.deepcopy(workflow)
        bad_field["spec"]["argumentz"] = {}
        cases = [
            ("GET", "/api/v1/workflows/sd1job", None),  # list: not an endpoint the client uses
            ("GET", "/api/v1/info?x=1", None),
            ("POST", "/api/v1/workflows/sd1job", {"workflow": bad_field}),
            ("POST", "/api/v1/workflows/sd1job", {"wf": workflow}),
        ]
        for method, path, body in cases:
            response = http.request(method, fake.url + path, json=body, headers=headers)
            assert response.status == 400
        assert len(fake.errors) == len(cases)
        assert "spec.argumentz" in fake.errors[2]
        fake.errors.clear()
        response = http.request("GET", fake.url + "/api/v1/info", headers={"Accept": "application/json"})
        assert response.status == 401  # no token
        assert fake.errors == []


# --- pure helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server", "env", "expected"),
    [
        ("localhost:2746", {}, "https://localhost:2746"),
        ("localhost:2746", {"ARGO_SECURE": "false"}, "http://localhost:2746"),
        ("http://argo.example:80/", {}, "http://argo.example:80"),
        ("https://gw.example/argo/", {}, "https://gw.example/argo"),
        ("gw.example", {"ARGO_BASE_HREF": "/argo/"}, "https://gw.example/argo"),
    ],
)
def test_server_url_like_the_argo_cli(server: str, env: dict, expected: str) -> None:
    assert argo_settings.resolve_settings(server, None, False, env).url == expected


def test_settings_precedence_and_token_prefix() -> None:
    env = {
        "ARGO_SERVER": "a:1",
        "ARGO_NAMESPACE": "envns",
        "ARGO_TOKEN": "  Bearer abc ",
        "ARGO_INSECURE_SKIP_VERIFY": "1",
    }
    settings = argo_settings.resolve_settings(None, None, False, env)
    assert (settings.url, settings.namespace, settings.token, settings.verify_tls) == (
        "https://a:1",
        "envns",
        "abc",
        False,
    )
    settings = argo_settings.resolve_settings("b:2", "optns", False, {"ARGO_TOKEN": "xyz"})
    assert (settings.url, settings.namespace, settings.token, settings.verify_tls) == (
        "https://b:2",
        "optns",
        "xyz",
        True,
    )
    assert argo_settings.resolve_settings("b:2", None, False, {}).namespace == "sd1job"
    assert argo_settings.resolve_settings("b:2", None, False, {"ARGO_TOKEN": ""}).token is None
    with pytest.raises(UserError, match="ARGO_SECURE='maybe' is not a boolean"):
        argo_settings.resolve_settings("b:2", None, False, {"ARGO_SECURE": "maybe"})
    with pytest.raises(UserError, match="not host:port"):
        argo_settings.resolve_settings("ftp://b", None, False, {})


def test_overrides_and_parameters() -> None:
    assert sweepfile.parse_overrides(["a=b=c", "d=", "a=x"]) == {"a": "x", "d": ""}
    with pytest.raises(UserError, match="expected NAME=VALUE"):
        sweepfile.parse_overrides(["novalue"])
    _, workflow = fixture_documents()
    before = copy.deepcopy(workflow)
    result = sweepfile.apply_overrides(workflow, {"epochs": "3", "store": "s3://b"})
    assert workflow == before  # not mutated
    assert result["spec"]["arguments"]["parameters"] == [
        {"name": "run-id", "value": "ctx-sweep"},
        {"name": "epochs", "value": "3"},
        {"name": "store", "value": "s3://b"},
    ]
    bare = {"metadata": {"generateName": "x-"}, "spec": {"workflowTemplateRef": {"name": "t"}}}
    assert sweepfile.apply_overrides(bare, {"a": "1"})["spec"]["arguments"] == {
        "parameters": [{"name": "a", "value": "1"}]
    }


def test_sweep_file_loading(tmp_path: Path) -> None:
    sweep = sweepfile.load_sweep_file(FIXTURE)
    assert sweep.template_name == "sd1job-sweep"
    assert sweep.template is not None and "device" in sweepfile.declared_parameters(sweep.template)
    (tmp_path / "argo").mkdir()
    shutil.copy(FIXTURE, tmp_path / "argo" / "sweep.yaml")
    assert sweepfile.find_sweep_file(None, cwd=tmp_path) == tmp_path / "argo" / "sweep.yaml"
    assert sweepfile.find_sweep_file(None, cwd=tmp_path / "argo") == REPO_ROOT / "argo" / "sweep.yaml"
    with pytest.raises(UserError, match="no such file"):
        sweepfile.find_sweep_file(str(tmp_path / "missing.yaml"))
    only_template = tmp_path / "t.yaml"
    only_template.write_text(yaml.safe_dump(fixture_documents()[0]))
    with pytest.raises(UserError, match="exactly one Workflow document"):
        sweepfile.load_sweep_file(only_template)
    broken = tmp_path / "b.yaml"
    broken.write_text("kind: Workflow\nspec: [unclosed\n")
    with pytest.raises(UserError, match="invalid YAML"):
        sweepfile.load_sweep_file(broken)


def test_the_repositorys_sweep_file_submits(fake: FakeArgoServer) -> None:
    """argo/sweep.yaml itself: its Workflow is accepted by the SDK's models and the fake server."""
    sweep = sweepfile.load_sweep_file(REPO_ROOT / "argo" / "sweep.yaml")
    assert sweep.template is not None, "argo/sweep.yaml should define the WorkflowTemplate its Workflow references"
    declared = sweepfile.declared_parameters(sweep.template)
    assert {"image", "store", "run-id", "config"} <= set(declared) and "contexts" not in declared
    fake.templates = {"sd1job": [sweep.template]}
    settings = argo_settings.resolve_settings(fake.url, None, False)
    with argo_client.ArgoClient(settings) as client:
        created = submit.submit_sweep(client, sweep, {"run-id": "from-test", "image": "reg/sd1job:1"})
    assert created["spec"]["workflowTemplateRef"]["name"] == sweep.template_name
    sent = {p["name"]: p["value"] for p in fake.submitted[0]["spec"]["arguments"]["parameters"]}
    assert sent["run-id"] == "from-test" and sent["image"] == "reg/sd1job:1"


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("data", "data"),
        ("unit(0:c44-s25).train", "train c44-s25"),
        ("unit(12:stateful-s26).eval", "eval stateful-s26"),
        ("train(1:440)", "train 440"),
        ("outer(0:a).inner(1:b.c).fit", "fit a/b.c"),
    ],
)
def test_step_labels_name_the_task_and_its_fan_out_items(path: str, label: str) -> None:
    assert watch.step_label(path) == label


def _node(wf: str, name: str, kind: str, phase: str, **extra: Any) -> dict[str, Any]:
    return {"id": f"{wf}-{name}", "name": f"{wf}.{name}", "type": kind, "phase": phase, **extra}


def test_steps_group_attempts_and_tell_units_apart_by_node_name() -> None:
    """Inside the nested DAG every unit's first pod is displayed ``train(0)``: the label uses the name."""
    wf, t = "sweep-x", "2024-05-01T12:00:00Z"
    nodes = [
        {"id": wf, "name": wf, "type": "DAG", "phase": "Running", "startedAt": t},
        _node(wf, "unit", "TaskGroup", "Running", startedAt=t),
        _node(wf, "unit(1:c440-s25)", "DAG", "Running", startedAt=t),
        _node(wf, "unit(0:c88-s25)", "DAG", "Running", startedAt=t),
        _node(wf, "unit(1:c440-s25).train", "Retry", "Running", startedAt=t, children=[f"{wf}-a", f"{wf}-b"]),
        {**_node(wf, "unit(1:c440-s25).train(0)", "Pod", "Failed", startedAt=t, message="OOMKilled"), "id": f"{wf}-a"},
        {**_node(wf, "unit(1:c440-s25).train(1)", "Pod", "Running", startedAt=t), "id": f"{wf}-b"},
        _node(wf, "unit(0:c88-s25).train", "Retry", "Succeeded", startedAt=t, children=[f"{wf}-c"]),
        {**_node(wf, "unit(0:c88-s25).train(0)", "Pod", "Succeeded", startedAt=t), "id": f"{wf}-c"},
    ]
    for node in nodes:
        node.setdefault("displayName", node["name"].rsplit(".", 1)[-1])
    workflow = {"metadata": {"name": wf}, "status": {"nodes": {node["id"]: node for node in nodes}}}
    steps = watch.workflow_steps(workflow)
    assert [(step.label, step.phase, len(step.attempts)) for step in steps] == [
        ("train c88-s25", "Succeeded", 1),
        ("train c440-s25", "Running", 2),
    ]
    seen: dict[str, str] = {}
    assert [(step.label, number) for step, number in watch.changed_attempts(seen, steps)] == [
        ("train c88-s25", 1),
        ("train c440-s25", 1),
        ("train c440-s25", 2),
    ]
    assert watch.changed_attempts(seen, steps) == []
    now = datetime(2024, 5, 1, 12, 5, tzinfo=UTC)
    line = watch.format_change(steps[1], 1, None, now)
    assert "Failed" in line and line.endswith(": OOMKilled; retrying")
    assert "running for 5m00s" in watch.format_summary({"status": {"phase": "Running", "startedAt": t}}, now)
    codes = [watch.exit_code_for_phase(p) for p in ("Succeeded", "Failed", "Error", "Running", "")]
    assert codes == [0, 1, 1, 3, 3]


def test_a_grids_units_fan_out_and_are_followed_by_name(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """configs/ds340.yaml's 36 arm-named units (dots in lr0.0001 included), as the data step prints them."""
    from sd1job.config import load_config

    units = tuple(unit.name for unit in load_config(REPO_ROOT / "configs" / "ds340.yaml").units())
    assert len(units) == 36 and "High_lu96_lr0.0001-c88-s25" in units
    flaky = "Mid_lu64_lr0.0001-c66-s25"
    for fake in _start(monkeypatch, units=units, flaky_unit=flaky):
        status, out, err = run_cli(submit_argv("--watch"), capsys)
        assert status == 0, err
        table = summary_table(out)
        for unit in units:
            first_attempt = ["Pending", "Running", "Failed" if unit == flaky else "Succeeded"]
            assert phases_printed(out, f"train {unit}") == first_attempt, unit
            assert table[f"train {unit}"][:2] == ["Succeeded", "2" if unit == flaky else "1"], unit
            assert table[f"eval {unit}"][:2] == ["Succeeded", "1"], unit
        assert fake.errors == []
