"""The Argo walker and its podman translation, on small workflow documents and on argo/sweep.yaml.

These need no container engine (the pods are answered by a recording function), so they run in
`make test`; tests/container/test_pods.py runs the real pods.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.container import argo, podman

REPO_ROOT = Path(__file__).resolve().parents[2]

CONTAINER = """
container:
  image: "{{workflow.parameters.image}}"
  command: [python, -m, sd1job]
  args: ARGS
  env: [{name: SD1JOB_RUN_ID, value: "{{workflow.parameters.run-id}}"}]
"""

# What both workflow shapes below start with.
HEADER = """
kind: WorkflowTemplate
spec:
  entrypoint: sweep
  onExit: push-status
  arguments:
    parameters:
      - {{name: image, value: "{image}"}}
      - {{name: run-id, value: "{run}"}}
"""

# The sweep's earlier shape: train fanned out over a workflow parameter, one eval for all.
PARAMETER_FAN_OUT = (
    HEADER.format(image="img:1", run="r1")
    + """      - {name: contexts, value: "[44, 88]"}
  templates:
    - name: sweep
      dag:
        tasks:
          - {name: data, template: data}
          - name: train
            template: train
            depends: data
            withParam: "{{workflow.parameters.contexts}}"
            arguments: {parameters: [{name: context, value: "{{item}}"}]}
          - {name: eval, template: eval, depends: "train.AnySucceeded"}
    - {name: data, <<: *data}
    - {name: train, inputs: {parameters: [{name: context}]}, <<: *train}
    - {name: eval, <<: *eval}
    - {name: push-status, <<: *status}
"""
)

# The current shape: the units are the data task's stdout; a nested DAG per unit.
OUTPUT_FAN_OUT = (
    HEADER.format(image="img:2", run="r2")
    + """  templates:
    - name: sweep
      dag:
        target: unit report
        failFast: false
        tasks:
          - {name: data, template: data}
          - name: unit
            template: unit
            depends: data
            withParam: "{{tasks.data.outputs.result}}"
            arguments: {parameters: [{name: unit, value: "{{item}}"}]}
          - {name: report, template: report, depends: "unit.AnySucceeded"}
    - name: unit
      inputs: {parameters: [{name: unit}]}
      dag:
        tasks:
          - name: train
            template: train
            arguments: {parameters: [{name: unit, value: "{{inputs.parameters.unit}}"}]}
          - name: eval
            template: eval
            depends: train
            arguments: {parameters: [{name: unit, value: "{{inputs.parameters.unit}}"}]}
    - {name: data, <<: *data}
    - {name: train, inputs: {parameters: [{name: unit}]}, retryStrategy: *retry, <<: *unit-train}
    - {name: eval, inputs: {parameters: [{name: unit}]}, <<: *unit-eval}
    - {name: report, <<: *report}
    - {name: push-status, <<: *status}
"""
)

RETRY = """
limit: 3
retryPolicy: Always
expression: lastRetry.status == "Error" or (lastRetry.status == "Failed" and asInt(lastRetry.exitCode) != 2)
"""


def _document(body: str) -> dict[str, Any]:
    """A workflow document with the container templates' bodies defined as YAML anchors."""

    def container(args: str) -> str:
        return "\n".join("    " + line for line in CONTAINER.replace("ARGS", args).strip().splitlines())

    anchors = {
        "data": "[data]",
        "train": '[train, --context, "{{inputs.parameters.context}}"]',
        "eval": "[eval]",
        "unit-train": '[train, --unit, "{{inputs.parameters.unit}}"]',
        "unit-eval": '[eval, --unit, "{{inputs.parameters.unit}}"]',
        "report": "[report]",
        "status": '[push-status, --status, "{{workflow.status}}"]',
    }
    header = "anchors:\n" + "".join(f"  {name}: &{name}\n{container(args)}\n" for name, args in anchors.items())
    header += "  retry: &retry\n" + "".join(f"    {line}\n" for line in RETRY.strip().splitlines())
    return yaml.safe_load(header + body)


class Pods:
    """Answers pod attempts: exit codes by (argv, attempt), stdout for the data task; records every attempt."""

    def __init__(self, stdout: str = "", exits: dict[tuple[str, int], int] | None = None) -> None:
        self.stdout = stdout
        self.exits = exits or {}
        self.seen: list[tuple[str, int]] = []

    def __call__(self, pod: argo.Pod, attempt: int) -> argo.PodResult:
        line = " ".join(pod.args)
        self.seen.append((line, attempt))
        return argo.PodResult(self.exits.get((line, attempt), 0), self.stdout if pod.args[:1] == ["data"] else "", "")


def _walk(doc: dict[str, Any], pods: Pods, **parameters: str) -> argo.Walk:
    return argo.Walker(doc, parameters, pods).run()


def test_parameter_fan_out_runs_in_dependency_order_with_items_substituted() -> None:
    pods = Pods()
    walk = _walk(_document(PARAMETER_FAN_OUT), pods, **{"run-id": "mine"})
    assert [line for line, _ in pods.seen] == [
        "data",
        "train --context 44",
        "train --context 88",
        "eval",
        "push-status --status Succeeded",
    ]
    assert walk.status == argo.SUCCEEDED
    assert {run.pod.image for run in walk.runs} == {"img:1"}
    assert all(run.pod.env == [{"name": "SD1JOB_RUN_ID", "value": "mine"}] for run in walk.runs)
    assert [run.pod.node for run in walk.pods("train")] == ["sweep.train(0:44)", "sweep.train(1:88)"]


def test_output_fan_out_takes_the_data_tasks_stdout_into_nested_dags() -> None:
    pods = Pods(stdout='["c44-s25", "c88-s25"]\n')
    walk = _walk(_document(OUTPUT_FAN_OUT), pods)
    assert [line for line, _ in pods.seen] == [
        "data",
        "train --unit c44-s25",
        "eval --unit c44-s25",
        "train --unit c88-s25",
        "eval --unit c88-s25",
        "report",
        "push-status --status Succeeded",
    ]
    assert walk.status == argo.SUCCEEDED
    assert walk.pods("eval")[1].pod.node == "sweep.unit(1:c88-s25).eval"


def test_a_killed_pod_is_retried_and_a_user_error_is_not() -> None:
    killed = Pods(stdout='["a", "b"]', exits={("train --unit a", 0): 137})
    walk = _walk(_document(OUTPUT_FAN_OUT), killed)
    assert [attempt for line, attempt in killed.seen if line == "train --unit a"] == [0, 1]
    assert walk.status == argo.SUCCEEDED

    user_error = Pods(stdout='["a", "b"]', exits={("train --unit a", 0): 2})
    walk = _walk(_document(OUTPUT_FAN_OUT), user_error)
    lines = [line for line, _ in user_error.seen]
    # Not retried; its eval is not run; the other unit and the report still run (unit.AnySucceeded),
    # and the sweep fails because the fan-out is one of the DAG's targets.
    assert lines.count("train --unit a") == 1 and "eval --unit a" not in lines
    assert lines[-3:] == ["eval --unit b", "report", "push-status --status Failed"]
    assert walk.status == argo.FAILED


def test_a_dag_is_judged_by_its_targets_or_leaves() -> None:
    # Targets "unit report": a failed data task leaves both out, and its failure fails the sweep.
    pods = Pods(exits={("data", 0): 2})
    assert _walk(_document(OUTPUT_FAN_OUT), pods).status == argo.FAILED
    assert [line for line, _ in pods.seen] == ["data", "push-status --status Failed"]
    # No target: the leaves decide, so an eval that ran on the trains that succeeded passes the
    # DAG although one train failed (why the current sweep names its fan-out as a target).
    doc = _document(PARAMETER_FAN_OUT)
    doc["spec"]["templates"][0]["dag"]["failFast"] = False
    pods = Pods(exits={("train --context 44", 0): 2})
    walk = _walk(doc, pods)
    assert [line for line, _ in pods.seen][2:] == ["train --context 88", "eval", "push-status --status Succeeded"]
    assert walk.status == argo.SUCCEEDED


def test_retries_stop_at_the_limit() -> None:
    pods = Pods(stdout='["a"]', exits={("train --unit a", attempt): 1 for attempt in range(10)})
    walk = _walk(_document(OUTPUT_FAN_OUT), pods)
    assert [attempt for line, attempt in pods.seen if line == "train --unit a"] == [0, 1, 2, 3]
    assert walk.status == argo.FAILED and "report" not in [line for line, _ in pods.seen]


@pytest.mark.parametrize(("fail_fast", "expected"), [(None, ["a"]), (True, ["a"]), (False, ["a", "b"])])
def test_fail_fast_stops_a_dag_after_a_failure(fail_fast: bool | None, expected: list[str]) -> None:
    doc = _document(PARAMETER_FAN_OUT)
    doc["spec"].pop("onExit")
    dag: dict[str, Any] = {"tasks": [{"name": "a", "template": "data"}, {"name": "b", "template": "eval"}]}
    if fail_fast is not None:
        dag["failFast"] = fail_fast
    doc["spec"]["templates"][0]["dag"] = dag
    pods = Pods(exits={("data", 0): 1})
    walk = _walk(doc, pods)
    assert [{"data": "a", "eval": "b"}[line] for line, _ in pods.seen] == expected
    assert walk.status == argo.FAILED


def test_with_items_of_objects() -> None:
    doc = _document(PARAMETER_FAN_OUT)
    train = doc["spec"]["templates"][0]["dag"]["tasks"][1]
    del train["withParam"]
    train["withItems"] = [{"n": 8, "tag": "small"}, {"n": 16, "tag": "big"}]
    train["arguments"]["parameters"][0]["value"] = "{{item.n}}-{{item.tag}}"
    pods = Pods()
    _walk(doc, pods)
    assert [line for line, _ in pods.seen][1:3] == ["train --context 8-small", "train --context 16-big"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["spec"]["templates"][0]["dag"]["tasks"][2].update(depends="nothing"), "unknown dependency"),
        (lambda d: d["spec"]["templates"][2]["container"]["args"].append("{{workflow.parameters.nope}}"), "nope"),
        (lambda d: d["spec"]["templates"][0]["dag"]["tasks"][1].update(withParam="[1, 2"), "not JSON"),
        (lambda d: d["spec"]["templates"][0]["dag"]["tasks"][0].update(depends="eval"), "cycle"),
    ],
)
def test_walker_refuses_what_it_cannot_honour(change: Any, message: str) -> None:
    doc = _document(PARAMETER_FAN_OUT)
    change(doc)
    with pytest.raises(argo.WorkflowError, match=message):
        _walk(doc, Pods())


def test_undeclared_parameter_is_refused() -> None:
    with pytest.raises(argo.WorkflowError, match="not declared"):
        _walk(_document(PARAMETER_FAN_OUT), Pods(), contexts2="[1]")


def _sweep_template() -> dict[str, Any]:
    return argo.workflow_template(list(yaml.safe_load_all((REPO_ROOT / "argo" / "sweep.yaml").read_text())))


def _units_stdout(template: dict[str, Any]) -> str:
    """What the data step prints when the sweep fans out over its output (two units), else nothing."""
    tasks = json.dumps(template["spec"]["templates"])
    return '["c8-s1", "c16-s1"]' if "outputs.result" in tasks else ""


def test_the_repository_sweep_walks_through_every_container_template() -> None:
    template = _sweep_template()
    pods = Pods(stdout=_units_stdout(template))
    walk = argo.Walker(template, {"image": "localhost/x:1"}, pods).run()
    containers = {t["name"] for t in template["spec"]["templates"] if "container" in t}
    assert {run.pod.template for run in walk.runs} == containers
    assert walk.status == argo.SUCCEEDED
    assert all(run.pod.image == "localhost/x:1" for run in walk.runs)
    assert all("{{" not in word for run in walk.runs for word in run.pod.args)


def _cluster(tmp_path: Path) -> podman.Cluster:
    return podman.Cluster(
        config_maps={
            "sd1job-config": {"config.yaml": "store: x\n", "AWS_ENDPOINT_URL": "http://s3", "AWS_REGION": "r"}
        },
        secrets={"sd1job-s3": {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"}},
        workdir=tmp_path,
    )


def test_the_sweeps_pods_become_podman_flags_from_their_security_context(tmp_path: Path) -> None:
    template = _sweep_template()
    walk = argo.Walker(template, {}, Pods(stdout=_units_stdout(template))).run()
    train = walk.pods("train")[0].pod
    argv = podman.run_argv(train, _cluster(tmp_path), "c1", image_user="10001:10001")
    security = template["spec"]["securityContext"]
    joined = " ".join(argv)
    assert f"--user {security['runAsUser']}:{security['runAsGroup']}" in joined
    assert f"--group-add {security['fsGroup']}" in joined
    assert "--read-only --read-only-tmpfs=false" in joined
    assert "--security-opt no-new-privileges" in joined and "--cap-drop ALL" in joined
    assert "--tmpfs /tmp:rw,exec,mode=0777,size=" in joined
    assert f"--volume {tmp_path / 'c1' / 'config'}:/etc/sd1job:ro" in joined
    assert (tmp_path / "c1" / "config" / "config.yaml").read_text() == "store: x\n"
    assert argv[argv.index("--entrypoint") + 1] == json.dumps(train.command)
    assert argv[-len(train.args) :] == train.args and argv[-len(train.args) - 1] == train.image
    env = (tmp_path / "c1" / "env").read_text().splitlines()
    assert "AWS_SECRET_ACCESS_KEY=secret" in env and "AWS_ENDPOINT_URL=http://s3" in env
    assert "secret" not in argv  # credentials reach the container through the env file only


def test_pods_the_kubelet_would_refuse_are_refused(tmp_path: Path) -> None:
    with pytest.raises(podman.PodRejectedError, match="runAsNonRoot"):
        podman.security_flags({"runAsNonRoot": True}, image_user="")
    with pytest.raises(podman.PodRejectedError, match="runAsNonRoot"):
        podman.security_flags({"runAsNonRoot": True, "runAsUser": 0}, image_user="10001")
    cluster = _cluster(tmp_path)
    with pytest.raises(podman.PodRejectedError, match="no key AWS_NOPE"):
        missing = {"secretKeyRef": {"name": "sd1job-s3", "key": "AWS_NOPE"}}
        podman.resolve_env([{"name": "X", "valueFrom": missing}], cluster)
    assert (
        podman.resolve_env(
            [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "other", "key": "k", "optional": True}}}], cluster
        )
        == {}
    )


@pytest.mark.parametrize(("text", "value"), [("100m", 0.1), ("2", 2.0), ("8Gi", 8 * 2**30), ("256Mi", 256 * 2**20)])
def test_quantities(text: str, value: float) -> None:
    assert podman.quantity(text) == pytest.approx(value)
