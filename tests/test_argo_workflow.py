"""argo/sweep.yaml: strictly valid Argo objects, a fan-out over exactly the configured contexts,
container commands that the real CLI parses, and references that match k8s/."""

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
from sd1job.config import SEED_CONTEXTS, load_config

REPO_ROOT = Path(__file__).resolve().parents[1]
SWEEP = REPO_ROOT / "argo" / "sweep.yaml"
JOB_CONFIG = REPO_ROOT / "k8s" / "config" / "sd1job.yaml"
K8S_VERSION = "1.32.0"
PLACEHOLDER = re.compile(r"\{\{\s*([^}]+?)\s*\}\}")


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


def placeholder_values(template: dict[str, Any], context: int) -> dict[str, str]:
    values = {f"workflow.parameters.{k}": v for k, v in parameter_defaults(template).items()}
    values.update({"item": str(context), "inputs.parameters.context": str(context), "workflow.status": "Succeeded"})
    return values


def container_templates(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: t for name, t in templates_by_name(template).items() if "container" in t}


# --- schema -------------------------------------------------------------------------------


def test_both_documents_validate_strictly_against_the_argo_schema(documents: dict[str, dict[str, Any]]) -> None:
    for kind, doc in documents.items():
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in strict_validator(kind).iter_errors(doc)]
        assert errors == [], kind


@pytest.mark.parametrize(
    "path",
    [
        ("spec", "templates", 1, "container", "comand"),
        ("spec", "templates", 1, "retryStrategy", "backoff", "maxDurationSeconds"),
        ("spec", "templates", 0, "dag", "tasks", 1, "withparam"),
        ("spec", "podGc"),
    ],
)
def test_strict_schema_rejects_a_misspelt_field(template: dict[str, Any], path: tuple[Any, ...]) -> None:
    doc = copy.deepcopy(template)
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = "x"
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
        for key in PLACEHOLDER.findall(json.dumps(tmpl)):
            if key.startswith("workflow.parameters."):
                assert key.removeprefix("workflow.parameters.") in declared, (name, key)
            elif key.startswith("inputs.parameters."):
                assert key.removeprefix("inputs.parameters.") in inputs, (name, key)
            else:
                assert key in {"item", "workflow.status"}, (name, key)
        for task in tmpl.get("dag", {}).get("tasks", []):
            assert task["template"] in named
            wanted = {p["name"] for p in named[task["template"]].get("inputs", {}).get("parameters", [])}
            given = {p["name"] for p in task.get("arguments", {}).get("parameters", [])}
            assert given == wanted, task["name"]


def test_dag_is_data_then_train_per_context_then_eval(template: dict[str, Any]) -> None:
    tasks = {t["name"]: t for t in templates_by_name(template)[template["spec"]["entrypoint"]]["dag"]["tasks"]}
    assert set(tasks) == {"data", "train", "eval"}
    assert "depends" not in tasks["data"]
    assert tasks["train"]["depends"] == "data"
    assert tasks["eval"]["depends"] == "train.AnySucceeded"  # after every train pod, scoring what trained
    assert tasks["train"]["withParam"] == "{{workflow.parameters.contexts}}"
    assert tasks["train"]["arguments"]["parameters"] == [{"name": "context", "value": "{{item}}"}]


def test_fan_out_covers_exactly_the_configured_contexts(template: dict[str, Any]) -> None:
    contexts = json.loads(parameter_defaults(template)["contexts"])
    assert contexts == SEED_CONTEXTS
    assert contexts == load_config(JOB_CONFIG).dataset.contexts


# --- commands ---------------------------------------------------------------------------------


def test_every_container_runs_a_real_sd1job_command_that_parses(template: dict[str, Any]) -> None:
    defaults = parameter_defaults(template)
    expected = {"data": "data", "train": "train", "eval": "eval", "push-status": "push-status"}
    containers = container_templates(template)
    assert set(containers) == set(expected)
    for name, tmpl in containers.items():
        container = tmpl["container"]
        argv = [substitute(a, placeholder_values(template, 176)) for a in container["command"] + container["args"]]
        assert argv[:3] == ["python", "-m", "sd1job"], name
        args = build_parser(argv[3]).parse_args(argv[3:])
        assert args.command == expected[name]
        assert args.config == defaults["config"]
        if name == "train":
            assert str(args.context) == "176"
        if name == "push-status":
            assert args.status == "Succeeded"


def test_environment_overrides_reach_the_config(template: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The plain env values the pods get are real SD1JOB_* overrides of the mounted config."""
    defaults = parameter_defaults(template)
    for tmpl in container_templates(template).values():
        for env in tmpl["container"]["env"]:
            if "value" in env:
                monkeypatch.setenv(env["name"], substitute(env["value"], placeholder_values(template, 44)))
        config = load_config(JOB_CONFIG)
        assert config.store == defaults["store"]
        assert config.run_id == defaults["run-id"]
        assert config.metrics.pushgateway == defaults["pushgateway"]


# --- pods ---------------------------------------------------------------------------------------


def test_train_and_eval_pods_get_one_gpu_each(template: dict[str, Any]) -> None:
    containers = container_templates(template)
    for name in ("train", "eval"):
        resources = containers[name]["container"]["resources"]
        assert resources["limits"]["nvidia.com/gpu"] == "1"
        assert resources.get("requests", {}).get("nvidia.com/gpu", "1") == "1"
    for name in ("data", "push-status"):
        assert "nvidia.com/gpu" not in containers[name]["container"]["resources"]["limits"]


def test_gpu_placement_parameters_patch_into_a_valid_pod(template: dict[str, Any]) -> None:
    values = placeholder_values(template, 44)
    values["workflow.parameters.gpu-node-selector"] = '{"nvidia.com/gpu.product": "NVIDIA-L4"}'
    for name in ("train", "eval"):
        for selector in (
            parameter_defaults(template)["gpu-node-selector"],
            values["workflow.parameters.gpu-node-selector"],
        ):
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
    for name in ("data", "train", "eval"):
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
    assert 0 < spec["parallelism"] <= len(SEED_CONTEXTS)
    assert int(spec["activeDeadlineSeconds"]) > 0
    assert spec["podGC"]["strategy"] in {"OnPodSuccess", "OnPodCompletion", "OnWorkflowSuccess", "OnWorkflowCompletion"}
    rbac = list(yaml.safe_load_all((REPO_ROOT / "k8s" / "rbac.yaml").read_text()))
    assert spec["serviceAccountName"] in {d["metadata"]["name"] for d in rbac if d["kind"] == "ServiceAccount"}
    for name in ("data", "train", "eval"):
        retry = container_templates(template)[name]["retryStrategy"]
        assert int(retry["limit"]) >= 1 and retry["retryPolicy"] in {"OnError", "OnFailure", "Always"}
        assert set(retry["backoff"]) >= {"duration", "factor", "maxDuration"}
    exit_args = container_templates(template)[spec["onExit"]]["container"]["args"]
    assert exit_args[0] == "push-status" and exit_args[exit_args.index("--status") + 1] == "{{workflow.status}}"


def test_defaults_point_at_the_cluster_services_and_a_pinned_image(template: dict[str, Any]) -> None:
    defaults = parameter_defaults(template)
    image = defaults["image"]
    assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
    service = yaml.safe_load((REPO_ROOT / "k8s" / "pushgateway.yaml").read_text().split("\n---\n")[-1])
    assert defaults["pushgateway"] == f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    assert defaults["store"].startswith("s3://sd1job/")
