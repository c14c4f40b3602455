"""argo/sweep.yaml: strictly valid Argo objects, a per-unit DAG whose fan-out is the data step's
output, container commands that the real CLI parses, and references that match k8s/."""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from sd1job.cli import build_parser
from sd1job.config import load_config
from tests.helpers import job_env, run_job, small_config, write_toy_recordings

REPO_ROOT = Path(__file__).resolve().parents[1]
SWEEP = REPO_ROOT / "argo" / "sweep.yaml"
JOB_CONFIG = REPO_ROOT / "k8s" / "config" / "sd1job.yaml"
K8S_VERSION = "1.32.0"
PLACEHOLDER = re.compile(r"\{\{\s*([^}]+?)\s*\}\}")
GPU_TEMPLATES = ("train", "eval")
CPU_TEMPLATES = ("data", "report", "push-status")
STORE_TEMPLATES = ("data", "train", "eval", "report")  # the pods that read and write the S3 store
SAMPLE_UNIT = "c176-s25"


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    """The file's documents by kind (exactly one WorkflowTemplate and one Workflow)."""
    docs = [d for d in yaml.safe_load_all(SWEEP.read_text()) if d]
    by_kind = {d["kind"]: d for d in docs}
    assert len(docs) == 2 and set(by_kind) == {"WorkflowTemplate", "Workflow"}
    return by_kind


@pytest.fixture(scope="module")
def template(documents: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return documents["WorkflowTemplate"]


def templates_by_name(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in template["spec"]["templates"]}


def dag_tasks(template: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in templates_by_name(template)[name]["dag"]["tasks"]}


def parameter_defaults(template: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in template["spec"]["arguments"]["parameters"]}


def _forbid_unknown(schema: Any) -> Any:
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        for value in schema.values():
            _forbid_unknown(value)
    elif isinstance(schema, list):
        for value in schema:
            _forbid_unknown(value)
    return schema


@cache
def strict_validator(kind: str) -> jsonschema.Draft202012Validator:
    """Argo's schema for ``kind`` (from hera's models) with unknown fields rejected everywhere."""
    from hera.workflows import models

    schema = getattr(models, kind).model_json_schema(by_alias=True)
    return jsonschema.Draft202012Validator(_forbid_unknown(schema))


def substitute(text: str, values: dict[str, str]) -> str:
    """Replace Argo ``{{...}}`` placeholders; fail on any without a value."""

    def one(match: re.Match[str]) -> str:
        key = match.group(1)
        assert key in values, f"no value for {{{{{key}}}}}"
        return values[key]

    return PLACEHOLDER.sub(one, text)


def placeholder_values(template: dict[str, Any], unit: str) -> dict[str, str]:
    """What Argo substitutes in a pod of ``unit``: the workflow's parameter defaults, the unit, the status."""
    values = {f"workflow.parameters.{k}": v for k, v in parameter_defaults(template).items()}
    values.update({"item": unit, "inputs.parameters.unit": unit, "workflow.status": "Succeeded"})
    return values


def container_templates(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: t for name, t in templates_by_name(template).items() if "container" in t}


def container_argv(template: dict[str, Any], name: str, unit: str) -> list[str]:
    """The command line of container template ``name`` with every placeholder resolved for ``unit``."""
    container = container_templates(template)[name]["container"]
    return [substitute(a, placeholder_values(template, unit)) for a in container["command"] + container["args"]]


# --- schema -------------------------------------------------------------------------------


def test_both_documents_validate_strictly_against_the_argo_schema(documents: dict[str, dict[str, Any]]) -> None:
    for kind, doc in documents.items():
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in strict_validator(kind).iter_errors(doc)]
        assert errors == [], kind


@pytest.mark.parametrize(
    "path",
    [
        ("data", "container", "comand"),
        ("data", "retryStrategy", "backoff", "maxDurationSeconds"),
        ("sweep", "dag", "failfast"),
        ("unit", "dag", "tasks", 1, "dependencies_"),
        ("report", "container", "resource"),
    ],
)
def test_strict_schema_rejects_a_misspelt_field(template: dict[str, Any], path: tuple[Any, ...]) -> None:
    doc = copy.deepcopy(template)
    node: Any = next(t for t in doc["spec"]["templates"] if t["name"] == path[0])
    for key in path[1:-1]:
        node = node[key]
    node[path[-1]] = "x"
    assert list(strict_validator("WorkflowTemplate").iter_errors(doc))


def test_strict_schema_rejects_a_misspelt_top_level_field(template: dict[str, Any]) -> None:
    doc = copy.deepcopy(template)
    doc["spec"]["podGc"] = doc["spec"]["podGC"]
    assert list(strict_validator("WorkflowTemplate").iter_errors(doc))


def test_argo_submit_finds_a_workflow_referencing_the_template(documents: dict[str, dict[str, Any]]) -> None:
    workflow, template = documents["Workflow"], documents["WorkflowTemplate"]
    assert workflow["metadata"]["generateName"] == "sd1job-sweep-"
    assert template["metadata"]["name"] == "sd1job-sweep"
    assert workflow["spec"] == {"workflowTemplateRef": {"name": "sd1job-sweep"}}


# --- structure ------------------------------------------------------------------------------


def test_every_placeholder_and_template_reference_resolves(template: dict[str, Any]) -> None:
    spec = template["spec"]
    declared = set(parameter_defaults(template))
    named = templates_by_name(template)
    assert spec["entrypoint"] in named and spec["onExit"] in named
    for name, tmpl in named.items():
        inputs = {p["name"] for p in tmpl.get("inputs", {}).get("parameters", [])}
        tasks = {t["name"]: t for t in tmpl.get("dag", {}).get("tasks", [])}
        for key in PLACEHOLDER.findall(json.dumps(tmpl)):
            if key.startswith("workflow.parameters."):
                assert key.removeprefix("workflow.parameters.") in declared, (name, key)
            elif key.startswith("inputs.parameters."):
                assert key.removeprefix("inputs.parameters.") in inputs, (name, key)
            elif key.startswith("tasks."):
                task, _, output = key.removeprefix("tasks.").partition(".")
                assert task in tasks and output == "outputs.result", (name, key)
                assert "container" in named[tasks[task]["template"]], (name, key)  # stdout exists
            else:
                assert key in {"item", "workflow.status"}, (name, key)
        for task in tasks.values():
            assert task["template"] in named
            wanted = {p["name"] for p in named[task["template"]].get("inputs", {}).get("parameters", [])}
            given = {p["name"] for p in task.get("arguments", {}).get("parameters", [])}
            assert given == wanted, task["name"]
        for target in tmpl.get("dag", {}).get("target", "").split():
            assert target in tasks, (name, target)


def test_dag_is_data_then_train_and_eval_per_unit_then_report(template: dict[str, Any]) -> None:
    sweep = templates_by_name(template)[template["spec"]["entrypoint"]]["dag"]
    tasks = dag_tasks(template, template["spec"]["entrypoint"])
    assert set(tasks) == {"data", "unit", "report"}
    assert "depends" not in tasks["data"] and tasks["data"]["template"] == "data"
    assert tasks["unit"]["depends"] == "data"
    assert tasks["unit"]["arguments"]["parameters"] == [{"name": "unit", "value": "{{item}}"}]
    # after every unit, reporting on those that finished; a unit failed after its retries fails the sweep
    assert tasks["report"]["depends"] == "unit.AnySucceeded"
    assert set(sweep["target"].split()) == {"unit", "report"} and sweep["failFast"] is False
    per_unit = dag_tasks(template, tasks["unit"]["template"])
    assert set(per_unit) == {"train", "eval"}
    assert [per_unit["train"]["template"], per_unit["eval"]["template"]] == ["train", "eval"]
    assert "depends" not in per_unit["train"] and per_unit["eval"]["depends"] == "train"
    for task in per_unit.values():
        assert task["arguments"]["parameters"] == [{"name": "unit", "value": "{{inputs.parameters.unit}}"}]


def test_the_fan_out_is_the_data_steps_output_not_a_parameter(template: dict[str, Any]) -> None:
    tasks = dag_tasks(template, template["spec"]["entrypoint"])
    assert tasks["unit"]["withParam"] == "{{tasks.data.outputs.result}}"
    assert container_argv(template, "data", SAMPLE_UNIT)[3] == "data"
    assert "contexts" not in parameter_defaults(template)
    assert "contexts" not in json.dumps(template["spec"]["templates"])  # no context list repeated by hand


def test_the_shipped_config_fans_out_to_ten_training_pods_that_parse(template: dict[str, Any]) -> None:
    """The cluster config's units (ten with train.repeats 1), as Argo expands the data step's JSON list."""
    config = load_config(JOB_CONFIG)
    units = json.loads(json.dumps([unit.name for unit in config.units()]))
    assert units == [f"c{n}-s{config.train.seed}" for n in config.dataset.contexts]
    assert len(units) == 10 and config.train.repeats == 1
    for unit in units:
        for name in GPU_TEMPLATES:
            argv = container_argv(template, name, unit)
            assert build_parser(argv[3]).parse_args(argv[3:]).unit == unit


def test_the_data_command_prints_the_unit_list_the_fan_out_takes(tmp_path: Path, template: dict[str, Any]) -> None:
    """The real `data` step in a real process: its whole stdout is one JSON list of the config's units."""
    config = small_config(str(tmp_path / "store"), train__repeats=2)
    from sd1job.store import open_store

    write_toy_recordings(open_store(config.store), config, seconds=2.0)
    config_file = tmp_path / "config.yaml"
    config_file.write_text(config.to_yaml())
    result = run_job(["data", "--config", str(config_file)], job_env({}))
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1, result.stdout
    items = json.loads(result.stdout)  # what Argo's withParam does with {{tasks.data.outputs.result}}
    assert items == [unit.name for unit in config.units()] == ["c8-s25", "c8-s26", "c16-s25", "c16-s26"]
    assert result.stderr  # the stage's logging went to stderr, not into the fan-out's list
    for unit in items:
        argv = container_argv(template, "train", unit)
        assert build_parser(argv[3]).parse_args(argv[3:]).unit == unit


# --- commands ---------------------------------------------------------------------------------


def test_every_container_runs_a_real_sd1job_command_that_parses(template: dict[str, Any]) -> None:
    defaults = parameter_defaults(template)
    expected = {name: name for name in (*GPU_TEMPLATES, *CPU_TEMPLATES)}
    assert set(container_templates(template)) == set(expected)
    for name in expected:
        argv = container_argv(template, name, SAMPLE_UNIT)
        assert argv[:3] == ["python", "-m", "sd1job"], name
        args = build_parser(argv[3]).parse_args(argv[3:])
        assert args.command == expected[name]
        assert args.config == defaults["config"]
        if name in GPU_TEMPLATES:
            assert args.unit == SAMPLE_UNIT
        else:
            assert "--unit" not in argv, name
        if name == "push-status":
            assert args.status == "Succeeded"


def test_environment_overrides_reach_the_config(template: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The plain env values the pods get are real SD1JOB_* overrides of the mounted config."""
    defaults = parameter_defaults(template)
    for tmpl in container_templates(template).values():
        for env in tmpl["container"]["env"]:
            if "value" in env:
                monkeypatch.setenv(env["name"], substitute(env["value"], placeholder_values(template, SAMPLE_UNIT)))
        config = load_config(JOB_CONFIG)
        assert config.store == defaults["store"]
        assert config.run_id == defaults["run-id"]
        assert config.metrics.pushgateway == defaults["pushgateway"]


# --- pods ---------------------------------------------------------------------------------------


def test_train_and_eval_get_one_gpu_each_and_the_rest_none(template: dict[str, Any]) -> None:
    containers = container_templates(template)
    for name in GPU_TEMPLATES:
        resources = containers[name]["container"]["resources"]
        assert resources["limits"]["nvidia.com/gpu"] == "1"
        assert resources.get("requests", {}).get("nvidia.com/gpu", "1") == "1"
        assert "podSpecPatch" in containers[name]
    for name in CPU_TEMPLATES:
        resources = containers[name]["container"]["resources"]
        assert "nvidia.com/gpu" not in {**resources["limits"], **resources.get("requests", {})}, name
        assert "podSpecPatch" not in containers[name], name  # not placed on (or tolerating) GPU nodes


def test_gpu_placement_parameters_patch_into_a_valid_pod(template: dict[str, Any]) -> None:
    values = placeholder_values(template, SAMPLE_UNIT)
    for name in GPU_TEMPLATES:
        for selector in (parameter_defaults(template)["gpu-node-selector"], '{"nvidia.com/gpu.product": "NVIDIA-L4"}'):
            patch = json.loads(
                substitute(
                    container_templates(template)[name]["podSpecPatch"],
                    {**values, "workflow.parameters.gpu-node-selector": selector},
                )
            )
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "main", "image": "x:1"}], **patch},
            }
            kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
            assert set(patch) == {"nodeSelector", "tolerations"}
            assert patch["nodeSelector"] == json.loads(selector)


def test_pods_are_locked_down_and_bounded(template: dict[str, Any]) -> None:
    spec = template["spec"]
    dockerfile_user = re.search(r"^USER (\d+)", (REPO_ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert dockerfile_user
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == int(dockerfile_user.group(1))
    volumes = {v["name"]: v for v in spec["volumes"]}
    config_path = Path(parameter_defaults(template)["config"])
    for name, tmpl in container_templates(template).items():
        container = tmpl["container"]
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False, name
        assert context["capabilities"]["drop"] == ["ALL"], name
        assert container["resources"]["requests"] and "memory" in container["resources"]["limits"], name
        assert int(tmpl["activeDeadlineSeconds"]) > 0, name
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
        assert "emptyDir" in mounts["/tmp"], name
        config_volume = mounts[str(config_path.parent)]["configMap"]
        assert config_volume["name"] == "sd1job-config"
        assert {"key": "config.yaml", "path": config_path.name} in config_volume["items"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["HOME"] == "/tmp" and env["MPLCONFIGDIR"].startswith("/tmp"), name


def test_s3_credentials_come_from_the_secret_and_the_endpoint_from_the_configmap(template: dict[str, Any]) -> None:
    example = yaml.safe_load((REPO_ROOT / "k8s" / "secret.example.yaml").read_text())
    kustomization = yaml.safe_load((REPO_ROOT / "k8s" / "kustomization.yaml").read_text())
    generator = next(g for g in kustomization["configMapGenerator"] if g["name"] == "sd1job-config")
    configmap_keys = {item.split("=", 1)[0] for item in generator["literals"] + generator["files"]}
    for name in STORE_TEMPLATES:
        env = {e["name"]: e for e in container_templates(template)[name]["container"]["env"]}
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            ref = env[key]["valueFrom"]["secretKeyRef"]
            assert ref["name"] == example["metadata"]["name"] and ref["key"] in example["stringData"]
        for key in ("AWS_ENDPOINT_URL", "AWS_REGION"):
            ref = env[key]["valueFrom"]["configMapKeyRef"]
            assert ref["name"] == "sd1job-config" and ref["key"] in configmap_keys
    assert "sd1job-s3" not in json.dumps(container_templates(template)["push-status"])


def test_retries_deadlines_gc_parallelism_and_exit_handler(template: dict[str, Any]) -> None:
    spec = template["spec"]
    assert 0 < spec["parallelism"] <= 10
    assert int(spec["activeDeadlineSeconds"]) > 0
    assert spec["podGC"]["strategy"] in {"OnPodSuccess", "OnPodCompletion", "OnWorkflowSuccess", "OnWorkflowCompletion"}
    rbac = list(yaml.safe_load_all((REPO_ROOT / "k8s" / "rbac.yaml").read_text()))
    assert spec["serviceAccountName"] in {d["metadata"]["name"] for d in rbac if d["kind"] == "ServiceAccount"}
    for name in STORE_TEMPLATES:
        retry = container_templates(template)[name]["retryStrategy"]
        assert int(retry["limit"]) >= 1 and retry["retryPolicy"] in {"OnError", "OnFailure", "Always"}
        assert set(retry["backoff"]) >= {"duration", "factor", "maxDuration"}
        # a user error (exit 2: bad config or recordings) would fail the same way again: not retried
        assert "asInt(lastRetry.exitCode) != 2" in retry["expression"], name
    exit_handler = container_templates(template)[spec["onExit"]]
    exit_args = exit_handler["container"]["args"]
    assert exit_args[0] == "push-status" and exit_args[exit_args.index("--status") + 1] == "{{workflow.status}}"
    assert int(exit_handler["retryStrategy"]["limit"]) >= 1


def test_defaults_point_at_the_cluster_services_and_a_pinned_image(template: dict[str, Any]) -> None:
    defaults = parameter_defaults(template)
    image = defaults["image"]
    assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
    service = yaml.safe_load((REPO_ROOT / "k8s" / "pushgateway.yaml").read_text().split("\n---\n")[-1])
    assert defaults["pushgateway"] == f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    assert defaults["store"].startswith("s3://sd1job/")
