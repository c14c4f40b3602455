"""``submit`` and ``status`` against a local fake Argo Server (tests/fake_argo_server.py).

The fake checks every request (path, method, auth header, body against the SDK's models) and
records anything unexpected in ``errors``; the ``fake`` fixture asserts that stays empty.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from sd1job import cli, submit
from tests.fake_argo_server import FakeArgoServer
from tests.services import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "data" / "argo_sweep_fixture.yaml"
TOKEN = "t0ken-for-tests"


def fixture_documents() -> tuple[dict, dict]:
    """(WorkflowTemplate, Workflow) of the fixture file."""
    template, workflow = yaml.safe_load_all(FIXTURE.read_text())
    return template, workflow


@pytest.fixture(autouse=True)
def _clean_argo_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ARGO_SERVER", "ARGO_TOKEN", "ARGO_NAMESPACE", "ARGO_SECURE", "ARGO_INSECURE_SKIP_VERIFY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ARGO_BASE_HREF", raising=False)


def _start(monkeypatch: pytest.MonkeyPatch, **kwargs) -> Iterator[FakeArgoServer]:
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
    """Like ``fake``, but the pod training context 440 fails."""
    yield from _start(monkeypatch, fail_context=440)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``python -m sd1job ARGV`` in-process; return (exit status, stdout, stderr)."""
    status = cli.main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def submit_argv(*extra: str) -> list[str]:
    return ["submit", "--file", str(FIXTURE), "--interval", "0.01", *extra]


def phases_printed(out: str, label: str) -> list[str]:
    """The phases the watch printed for one node, in order."""
    pattern = re.compile(rf"^\[\s*[\dhms]+\] {re.escape(label)}\s+(\w+)", re.MULTILINE)
    return pattern.findall(out)


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
    # One line per observed state change, in order, for data, each train pod by context, and eval.
    assert phases_printed(out, "data") == ["Pending", "Running", "Succeeded"]
    for label in ("train(0:44)", "train(1:440)"):
        assert phases_printed(out, label) == ["Pending", "Running", "Succeeded"]
    assert phases_printed(out, "eval") == ["Pending", "Running", "Succeeded"]
    assert out.index("data ") < out.index("train(0:44)") < out.index("eval ")
    assert re.search(r"^phase\s+Succeeded", out, re.MULTILINE)
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


def test_submit_watch_reports_a_failed_sweep(failing_fake: FakeArgoServer, capsys) -> None:
    status, out, err = run_cli(submit_argv("--watch"), capsys)
    assert status == 1, err
    assert phases_printed(out, "train(0:44)")[-1] == "Succeeded"
    assert phases_printed(out, "train(1:440)")[-1] == "Failed"
    assert "training diverged" in out
    assert phases_printed(out, "eval") == []
    assert re.search(r"^phase\s+Failed", out, re.MULTILINE)


def test_status_prints_the_summary_and_exits_by_phase(fake: FakeArgoServer, capsys) -> None:
    status, _, _ = run_cli(submit_argv(), capsys)
    assert status == 0
    name = fake.names[0]
    status, out, err = run_cli(["status", name], capsys)  # first poll: not picked up yet
    assert status == submit.EXIT_NOT_FINISHED, err
    assert "phase     Pending" in out
    status, out, _ = run_cli(["status", name], capsys)  # data pending, workflow running
    assert status == submit.EXIT_NOT_FINISHED and "phase     Running" in out
    assert re.search(r"^data\s+Pending", out, re.MULTILINE)
    fake.finish("sd1job", name)
    status, out, _ = run_cli(["status", name], capsys)
    assert status == 0
    table = {line.split()[0]: line.split()[1:] for line in out.splitlines()[4:]}
    assert set(table) == {"data", "train(0:44)", "train(1:440)", "eval"}
    assert all(row[0] == "Succeeded" for row in table.values())
    assert table["data"][1:] == ["+0s", "2m00s"]  # start offset and duration from the server's timestamps
    assert "ran 8m00s" in out


def test_status_of_a_failed_and_of_an_unknown_workflow(failing_fake: FakeArgoServer, capsys) -> None:
    run_cli(submit_argv(), capsys)
    name = failing_fake.names[0]
    failing_fake.finish("sd1job", name)
    status, out, _ = run_cli(["status", name], capsys)
    assert status == 1
    assert re.search(r"^train\(1:440\)\s+Failed.*training diverged", out, re.MULTILINE)
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
    """A self-signed certificate for 127.0.0.1 (openssl CLI)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
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


def test_watch_survives_brief_outages_and_gives_up_on_long_ones(fake: FakeArgoServer, capsys) -> None:
    settings = submit.resolve_settings(fake.url, None, False)
    with submit.ArgoClient(settings) as client:
        created = submit.submit_sweep(client, submit.load_sweep_file(FIXTURE), {})
        name = created["metadata"]["name"]
        real_get = client.get_workflow
        calls = {"n": 0}

        def flaky(workflow_name: str) -> dict:
            calls["n"] += 1
            if calls["n"] % 3 == 0:  # every third poll fails
                raise submit.ArgoUnreachableError("connection refused")
            return real_get(workflow_name)

        client.get_workflow = flaky  # type: ignore[method-assign]
        final = submit.watch_workflow(client, name, interval=0, sleep=lambda _: None)
        assert submit.workflow_phase(final) == "Succeeded"

        def down(workflow_name: str) -> dict:
            raise submit.ArgoUnreachableError("connection refused")

        client.get_workflow = down  # type: ignore[method-assign]
        with pytest.raises(submit.ArgoUnreachableError, match=f"lost the Argo Server while watching {name}"):
            submit.watch_workflow(client, name, interval=0, sleep=lambda _: None)


# --- why responses are read as plain JSON -------------------------------------------------------


def test_the_sdks_strict_models_reject_real_responses(fake: FakeArgoServer) -> None:
    """Why ArgoClient reads raw JSON: null finishedAt on running nodes (#9122), scalar withItems.

    If a future SDK accepts this, the workaround in ArgoClient can go.
    """
    from argo_workflows.api.workflow_service_api import WorkflowServiceApi
    from argo_workflows.api.workflow_template_service_api import WorkflowTemplateServiceApi
    from argo_workflows.api_client import ApiClient
    from argo_workflows.configuration import Configuration
    from argo_workflows.exceptions import ApiTypeError

    settings = submit.resolve_settings(fake.url, None, False)
    with submit.ArgoClient(settings) as client:
        name = submit.submit_sweep(client, submit.load_sweep_file(FIXTURE), {})["metadata"]["name"]
        assert client.get_workflow(name)["status"] == {}
        assert client.get_workflow(name)["status"]["nodes"]  # data pending: finishedAt null
    configuration = Configuration(
        host=fake.url, api_key={"BearerToken": TOKEN}, api_key_prefix={"BearerToken": "Bearer"}
    )
    with ApiClient(configuration) as api_client:
        with pytest.raises(ApiTypeError, match="finished_at"):
            WorkflowServiceApi(api_client).get_workflow("sd1job", name)
        with pytest.raises(ApiTypeError, match="with_items"):  # withItems: [44, 440]
            WorkflowTemplateServiceApi(api_client).get_workflow_template("sd1job", "sd1job-sweep")


# --- the fake server's own honesty --------------------------------------------------------------


def test_the_fake_server_flags_requests_it_does_not_expect() -> None:
    import urllib3

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
    assert submit.resolve_settings(server, None, False, env).url == expected


def test_settings_precedence_and_token_prefix() -> None:
    env = {
        "ARGO_SERVER": "a:1",
        "ARGO_NAMESPACE": "envns",
        "ARGO_TOKEN": "  Bearer abc ",
        "ARGO_INSECURE_SKIP_VERIFY": "1",
    }
    settings = submit.resolve_settings(None, None, False, env)
    assert (settings.url, settings.namespace, settings.token, settings.verify_tls) == (
        "https://a:1",
        "envns",
        "abc",
        False,
    )
    settings = submit.resolve_settings("b:2", "optns", False, {"ARGO_TOKEN": "xyz"})
    assert (settings.url, settings.namespace, settings.token, settings.verify_tls) == (
        "https://b:2",
        "optns",
        "xyz",
        True,
    )
    assert submit.resolve_settings("b:2", None, False, {}).namespace == "sd1job"
    assert submit.resolve_settings("b:2", None, False, {"ARGO_TOKEN": ""}).token is None
    with pytest.raises(submit.ArgoError, match="ARGO_SECURE='maybe' is not a boolean"):
        submit.resolve_settings("b:2", None, False, {"ARGO_SECURE": "maybe"})
    with pytest.raises(submit.ArgoError, match="not host:port"):
        submit.resolve_settings("ftp://b", None, False, {})


def test_overrides_and_parameters() -> None:
    assert submit.parse_overrides(["a=b=c", "d=", "a=x"]) == {"a": "x", "d": ""}
    with pytest.raises(submit.ArgoError, match="expected NAME=VALUE"):
        submit.parse_overrides(["novalue"])
    _, workflow = fixture_documents()
    before = copy.deepcopy(workflow)
    result = submit.apply_overrides(workflow, {"epochs": "3", "store": "s3://b"})
    assert workflow == before  # not mutated
    assert result["spec"]["arguments"]["parameters"] == [
        {"name": "run-id", "value": "ctx-sweep"},
        {"name": "epochs", "value": "3"},
        {"name": "store", "value": "s3://b"},
    ]
    bare = {"metadata": {"generateName": "x-"}, "spec": {"workflowTemplateRef": {"name": "t"}}}
    assert submit.apply_overrides(bare, {"a": "1"})["spec"]["arguments"] == {
        "parameters": [{"name": "a", "value": "1"}]
    }


def test_sweep_file_loading(tmp_path: Path) -> None:
    sweep = submit.load_sweep_file(FIXTURE)
    assert sweep.template_name == "sd1job-sweep"
    assert sweep.template is not None and "device" in submit.declared_parameters(sweep.template)
    (tmp_path / "argo").mkdir()
    shutil.copy(FIXTURE, tmp_path / "argo" / "sweep.yaml")
    assert submit.find_sweep_file(None, cwd=tmp_path) == tmp_path / "argo" / "sweep.yaml"
    with pytest.raises(submit.SweepFileError, match="no such file"):
        submit.find_sweep_file(str(tmp_path / "missing.yaml"))
    only_template = tmp_path / "t.yaml"
    only_template.write_text(yaml.safe_dump(fixture_documents()[0]))
    with pytest.raises(submit.SweepFileError, match="exactly one Workflow document"):
        submit.load_sweep_file(only_template)
    broken = tmp_path / "b.yaml"
    broken.write_text("kind: Workflow\nspec: [unclosed\n")
    with pytest.raises(submit.SweepFileError, match="invalid YAML"):
        submit.load_sweep_file(broken)


def test_the_repositorys_sweep_file_submits(fake: FakeArgoServer) -> None:
    """argo/sweep.yaml itself: its Workflow is accepted by the SDK's models and the fake server."""
    path = REPO_ROOT / "argo" / "sweep.yaml"
    sweep = submit.load_sweep_file(path)
    assert sweep.template is not None, "argo/sweep.yaml should define the WorkflowTemplate its Workflow references"
    declared = submit.declared_parameters(sweep.template)
    assert {"image", "store", "run-id", "config"} <= set(declared)
    fake.templates = {"sd1job": [sweep.template]}
    settings = submit.resolve_settings(fake.url, None, False)
    with submit.ArgoClient(settings) as client:
        created = submit.submit_sweep(client, sweep, {"run-id": "from-test", "image": "reg/sd1job:1"})
    assert created["spec"]["workflowTemplateRef"]["name"] == sweep.template_name
    sent = {p["name"]: p["value"] for p in fake.submitted[0]["spec"]["arguments"]["parameters"]}
    assert sent["run-id"] == "from-test" and sent["image"] == "reg/sd1job:1"


def test_durations_and_node_order() -> None:
    assert [submit.format_duration(s) for s in (None, 0.4, 59, 61, 3600 + 125)] == ["-", "0s", "59s", "1m01s", "1h02m"]
    t = "2024-05-01T12:00:00Z"
    nodes = {
        str(i): {"id": str(i), "displayName": label, "type": kind, "phase": "Running", "startedAt": t}
        for i, (label, kind) in enumerate(
            [("train(10:484)", "Pod"), ("train(2:132)", "Pod"), ("train", "TaskGroup"), ("wf", "DAG")]
        )
    }
    states = submit.node_states({"status": {"nodes": nodes}})
    assert [state.label for state in states] == ["train(2:132)", "train(10:484)"]
    seen: dict[str, str] = {}
    assert len(submit.changed_nodes(seen, states)) == 2
    assert submit.changed_nodes(seen, states) == []
    now = datetime(2024, 5, 1, 12, 5, tzinfo=UTC)
    assert "running for 5m00s" in submit.format_summary({"status": {"phase": "Running", "startedAt": t}}, now)
    assert [submit.exit_code_for_phase(p) for p in ("Succeeded", "Failed", "Error", "Running", "")] == [0, 1, 1, 3, 3]
