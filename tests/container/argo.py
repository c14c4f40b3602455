"""Walk an Argo WorkflowTemplate as the controller would, one container at a time.

What the test needs of Argo's semantics, read from the YAML and nothing restated: workflow
parameters (defaults, overrides), ``{{...}}`` substitution (workflow parameters, template inputs,
``item``, a task's ``outputs.result``, ``workflow.status``), DAG templates (nested too) run in
dependency order (``depends`` expressions or ``dependencies`` lists), fan-outs (``withItems``,
``withParam`` over a JSON list from a parameter or another task's stdout), ``retryStrategy``
(limit and expression), the ``onExit`` handler, and for every container template the pod it
would get: image, command, args, env, security contexts, volumes and resources.

The walk is sequential (no ``parallelism``) and retries at once (no backoff wait); scheduling
fields (``podSpecPatch``, node selectors, GPU requests) have no meaning here and are not used.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

SUCCEEDED, FAILED, SKIPPED, OMITTED = "Succeeded", "Failed", "Skipped", "Omitted"
# A task left out because a task it depends on failed: it carries that branch's failure to the DAG.
OMITTED_AFTER_FAILURE = "Omitted after a failure"
_REFERENCE = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")


class WorkflowError(Exception):
    """The workflow document uses something this walker does not understand, or refers to nothing."""


@dataclass(frozen=True)
class Mount:
    """One volumeMount with the volume it names."""

    path: str
    read_only: bool
    volume: dict[str, Any]


@dataclass(frozen=True)
class Pod:
    """The pod a container template gets: everything but scheduling."""

    node: str  # where in the DAG, e.g. "sweep.unit(0:c8-s25).train"
    template: str
    image: str
    command: list[str]
    args: list[str]
    env: list[dict[str, Any]]  # Kubernetes EnvVar objects, values substituted, valueFrom as written
    security: dict[str, Any]  # the pod's securityContext merged with the container's (the container's wins)
    mounts: list[Mount]
    resources: dict[str, Any]
    working_dir: str | None = None
    deadline_seconds: float | None = None


@dataclass(frozen=True)
class PodResult:
    """How a pod's main container ended."""

    exit_code: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class PodRun:
    """One attempt at one pod."""

    pod: Pod
    attempt: int
    result: PodResult


RunPod = Callable[[Pod, int], PodResult]


@dataclass
class Walk:
    """The record of one workflow run: every attempt in order, and the final status."""

    runs: list[PodRun] = field(default_factory=list)
    status: str = SUCCEEDED

    def pods(self, subcommand: str) -> list[PodRun]:
        """The attempts whose container's first argument is ``subcommand`` (e.g. "train")."""
        return [run for run in self.runs if run.pod.args[:1] == [subcommand]]


def workflow_template(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """The one WorkflowTemplate among ``documents`` (a multi-document YAML file's contents)."""
    templates = [doc for doc in documents if doc and doc.get("kind") == "WorkflowTemplate"]
    if len(templates) != 1:
        raise WorkflowError(f"expected one WorkflowTemplate, found {len(templates)}")
    return templates[0]


def workflow_parameters(template: dict[str, Any], overrides: Mapping[str, str]) -> dict[str, str]:
    """The workflow's parameters: declared defaults, then ``overrides`` (which must be declared)."""
    declared = {p["name"]: str(p.get("value", "")) for p in template["spec"].get("arguments", {}).get("parameters", [])}
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise WorkflowError(f"parameters not declared by the workflow: {', '.join(unknown)}")
    return {**declared, **{name: str(value) for name, value in overrides.items()}}


def substitute(text: str, scope: Mapping[str, str]) -> str:
    """``text`` with every ``{{name}}`` replaced from ``scope``; an unknown name is an error."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in scope:
            raise WorkflowError(f"{{{{{name}}}}} refers to nothing here (known: {', '.join(sorted(scope))})")
        return scope[name]

    return _REFERENCE.sub(replace, text)


def substitute_all(value: Any, scope: Mapping[str, str]) -> Any:
    """Substitute in every string of a nested structure of dicts and lists."""
    if isinstance(value, str):
        return substitute(value, scope)
    if isinstance(value, list):
        return [substitute_all(item, scope) for item in value]
    if isinstance(value, dict):
        return {key: substitute_all(item, scope) for key, item in value.items()}
    return value


def depends_on(task: dict[str, Any]) -> list[str]:
    """Names of the tasks ``task`` waits for (from ``depends`` or ``dependencies``)."""
    if "depends" in task:
        words = re.split(r"&&|\|\||[!()\s]+", str(task["depends"]))
        return list(dict.fromkeys(word.split(".")[0] for word in words if word))
    return list(task.get("dependencies", []))


def dag_order(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tasks in an order where each comes after every task it depends on (file order otherwise)."""
    names = {task["name"] for task in tasks}
    done: list[str] = []
    pending = list(tasks)
    while pending:
        ready = next((t for t in pending if all(d in done for d in depends_on(t))), None)
        if ready is None:
            missing = {d for t in pending for d in depends_on(t)} - names
            raise WorkflowError(f"DAG cycle or unknown dependency: {sorted(missing) or [t['name'] for t in pending]}")
        done.append(ready["name"])
        pending.remove(ready)
    return [next(t for t in tasks if t["name"] == name) for name in done]


def task_property(phases: list[str], prop: str | None) -> bool:
    """A ``depends`` term: ``task`` alone or ``task.Succeeded|Failed|Skipped|AnySucceeded|AllFailed``."""
    if prop is None:
        return bool(phases) and all(p in (SUCCEEDED, SKIPPED) for p in phases)
    checks: dict[str, Callable[[], bool]] = {
        "Succeeded": lambda: bool(phases) and all(p == SUCCEEDED for p in phases),
        "Failed": lambda: bool(phases) and all(p == FAILED for p in phases),
        "Skipped": lambda: bool(phases) and all(p in (SKIPPED, OMITTED) for p in phases),
        "AnySucceeded": lambda: any(p == SUCCEEDED for p in phases),
        "AllFailed": lambda: bool(phases) and all(p == FAILED for p in phases),
        "Errored": lambda: False,
        "Daemoned": lambda: False,
    }
    if prop not in checks:
        raise WorkflowError(f"depends: unknown task result .{prop}")
    return checks[prop]()


def depends_satisfied(task: dict[str, Any], phases: Mapping[str, list[str]]) -> bool:
    """Whether ``task`` runs, given the phases of the tasks before it (one per fan-out instance)."""
    if "depends" not in task:
        return all(task_property(phases[name], "Succeeded") for name in task.get("dependencies", []))
    expression = str(task["depends"]).replace("&&", " and ").replace("||", " or ")
    expression = re.sub(r"!(?!=)", " not ", expression)
    values: dict[str, bool] = {}

    def term(match: re.Match[str]) -> str:
        name, _, prop = match.group(0).partition(".")
        if name in ("and", "or", "not"):
            return name
        key = f"_t{len(values)}"
        values[key] = task_property(phases[name], prop or None)
        return key

    python = re.sub(r"[A-Za-z0-9_-]+(?:\.[A-Za-z]+)?", term, expression)
    return bool(_evaluate(python, values))


def retry_allowed(strategy: dict[str, Any] | None, attempt: int, result: PodResult) -> bool:
    """Whether a ``retryStrategy`` retries after ``attempt`` (0-based) ended with ``result``.

    A container that exited non-zero is a "Failed" node (Argo's "Error" is a pod lost to the
    infrastructure, which cannot happen here): ``retryPolicy`` OnError never retries it, OnFailure
    (the default) and Always do, up to ``limit`` retries and while ``expression`` holds.
    """
    if not strategy or result.exit_code == 0 or attempt >= int(strategy.get("limit", 0)):
        return False
    if strategy.get("retryPolicy", "OnFailure") == "OnError":
        return False
    expression = strategy.get("expression")
    if not expression:
        return True
    last = {"status": FAILED, "exitCode": str(result.exit_code)}
    python = expression.replace("&&", " and ").replace("||", " or ")
    python = re.sub(r"lastRetry\.(\w+)", lambda m: repr(last[m.group(1)]), python)
    return bool(_evaluate(python, {"asInt": int}))


def _evaluate(expression: str, names: Mapping[str, Any]) -> Any:
    """Evaluate a small boolean expression: names, literals, comparisons, and/or/not, calls of ``names``."""
    tree = ast.parse(expression.strip(), mode="eval")
    allowed = (
        ast.Expression,
        ast.BoolOp,
        ast.UnaryOp,
        ast.Compare,
        ast.Call,
        ast.Name,
        ast.Constant,
        ast.Load,
        ast.And,
        ast.Or,
        ast.Not,
        ast.Eq,
        ast.NotEq,
        ast.Lt,
        ast.LtE,
        ast.Gt,
        ast.GtE,
    )
    for node in ast.walk(tree):
        if not isinstance(node, allowed) or (isinstance(node, ast.Name) and node.id not in names):
            raise WorkflowError(f"expression not understood: {expression!r}")
    return eval(compile(tree, "<argo expression>", "eval"), {"__builtins__": {}}, dict(names))


def fan_out(task: dict[str, Any], scope: Mapping[str, str]) -> list[Any] | None:
    """The items of a ``withItems`` / ``withParam`` task, or None for a single instance."""
    if "withItems" in task:
        return list(task["withItems"])
    if "withParam" in task:
        text = substitute(str(task["withParam"]), scope)
        try:
            items = json.loads(text)
        except json.JSONDecodeError as error:
            raise WorkflowError(f"task {task['name']}: withParam is not JSON: {text[:200]!r}") from error
        if not isinstance(items, list):
            raise WorkflowError(f"task {task['name']}: withParam is not a JSON list: {text[:200]!r}")
        return items
    return None


def item_scope(item: Any) -> dict[str, str]:
    """``{{item}}`` (and ``{{item.KEY}}`` for an object) as Argo renders them: strings as they are, the rest as JSON."""
    scope = {"item": item if isinstance(item, str) else json.dumps(item)}
    if isinstance(item, dict):
        scope.update({f"item.{k}": v if isinstance(v, str) else json.dumps(v) for k, v in item.items()})
    return scope


def _item_label(item: Any) -> str:
    return item if isinstance(item, str) else json.dumps(item, separators=(",", ":"))


@dataclass(frozen=True)
class Outcome:
    """How a template call ended: its phase, and a container's stdout (its ``outputs.result``)."""

    phase: str
    result: str | None = None


class Walker:
    """Runs one WorkflowTemplate's DAG through ``run_pod``, which starts one pod attempt and waits for it."""

    def __init__(self, template: dict[str, Any], parameters: Mapping[str, str], run_pod: RunPod) -> None:
        self.spec = template["spec"]
        self.templates = {t["name"]: t for t in self.spec["templates"]}
        self.parameters = workflow_parameters(template, parameters)
        self.run_pod = run_pod
        self.walk = Walk()

    def run(self) -> Walk:
        """Run the entrypoint, then the onExit handler with the workflow's status; return the record."""
        outcome = self.call(self.spec["entrypoint"], {}, self.spec["entrypoint"])
        self.walk.status = outcome.phase
        if "onExit" in self.spec:
            self.call(self.spec["onExit"], {}, "onExit", {"workflow.status": self.walk.status})
        return self.walk

    def call(self, name: str, inputs: Mapping[str, str], node: str, extra: Mapping[str, str] | None = None) -> Outcome:
        """Run template ``name`` with its input parameters."""
        template = self.template(name)
        scope = self.scope(template, inputs, extra)
        if "dag" in template:
            return self.run_dag(template["dag"], scope, node)
        if "container" in template:
            return self.run_container(template, scope, node)
        raise WorkflowError(f"template {name}: only dag and container templates are supported")

    def template(self, name: str) -> dict[str, Any]:
        """The template called ``name``."""
        if name not in self.templates:
            raise WorkflowError(f"no template named {name!r}")
        return self.templates[name]

    def scope(
        self, template: dict[str, Any], inputs: Mapping[str, str], extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The names ``{{...}}`` may use in ``template`` called with ``inputs`` (declared ones; defaults filled in)."""
        declared = template.get("inputs", {}).get("parameters", [])
        values = {p["name"]: str(p["value"]) for p in declared if "value" in p} | dict(inputs)
        missing = [p["name"] for p in declared if p["name"] not in values]
        if missing:
            raise WorkflowError(f"template {template['name']}: input parameters not given: {', '.join(missing)}")
        scope = {f"workflow.parameters.{k}": v for k, v in self.parameters.items()}
        return scope | {f"inputs.parameters.{k}": v for k, v in values.items()} | dict(extra or {})

    def pod(self, name: str, inputs: Mapping[str, str] | None = None) -> Pod:
        """The pod container template ``name`` gets when called with ``inputs``, without running it."""
        template = self.template(name)
        return container_pod(self.spec, template, self.scope(template, inputs or {}), name)

    def run_dag(self, dag: dict[str, Any], scope: dict[str, str], node: str) -> Outcome:
        """Run a DAG's tasks in dependency order.

        As Argo judges a DAG: by its target tasks (``target``, by default the leaves, the tasks
        nothing depends on), Failed when one failed or was left out because a task before it in its
        branch failed. With ``failFast`` (the default) no task starts after a failure.
        """
        phases: dict[str, list[str]] = {}
        fail_fast = dag.get("failFast", True)
        for task in dag_order(dag["tasks"]):
            stopped = fail_fast and any(FAILED in p for p in phases.values())
            if stopped or not depends_satisfied(task, phases):
                failed_before = {FAILED, OMITTED_AFTER_FAILURE} & {p for d in depends_on(task) for p in phases[d]}
                phases[task["name"]] = [OMITTED_AFTER_FAILURE if stopped or failed_before else OMITTED]
                continue
            items = fan_out(task, scope)
            phases[task["name"]] = []
            for index, item in enumerate([None] if items is None else items):
                local = scope if item is None else {**scope, **item_scope(item)}
                arguments = {
                    p["name"]: substitute(str(p["value"]), local)
                    for p in task.get("arguments", {}).get("parameters", [])
                }
                label = task["name"] if item is None else f"{task['name']}({index}:{_item_label(item)})"
                outcome = self.call(task["template"], arguments, f"{node}.{label}")
                phases[task["name"]].append(outcome.phase)
                if item is None and outcome.result is not None:
                    scope[f"tasks.{task['name']}.outputs.result"] = outcome.result
        required = {d for task in dag["tasks"] for d in depends_on(task)}
        targets = str(dag.get("target", "")).split() or [name for name in phases if name not in required]
        failed = any({FAILED, OMITTED_AFTER_FAILURE} & set(phases.get(name, [])) for name in targets)
        return Outcome(FAILED if failed else SUCCEEDED)

    def run_container(self, template: dict[str, Any], scope: dict[str, str], node: str) -> Outcome:
        """Run a container template's pod, retrying as its retryStrategy says."""
        pod = container_pod(self.spec, template, scope, node)
        attempt = 0
        while True:
            result = self.run_pod(pod, attempt)
            self.walk.runs.append(PodRun(pod, attempt, result))
            if result.exit_code == 0:
                return Outcome(SUCCEEDED, result.stdout.strip())
            if not retry_allowed(template.get("retryStrategy"), attempt, result):
                return Outcome(FAILED)
            attempt += 1


def container_pod(spec: dict[str, Any], template: dict[str, Any], scope: Mapping[str, str], node: str) -> Pod:
    """The pod ``template`` (a container template of the workflow ``spec``) gets, substituted with ``scope``."""
    container = substitute_all(template["container"], scope)
    volumes = {v["name"]: v for v in [*spec.get("volumes", []), *template.get("volumes", [])]}
    mounts = []
    for mount in container.get("volumeMounts", []):
        if mount["name"] not in volumes:
            raise WorkflowError(f"template {template['name']}: volumeMount {mount['name']} names no volume")
        mounts.append(Mount(mount["mountPath"], bool(mount.get("readOnly", False)), volumes[mount["name"]]))
    pod_security = template.get("securityContext", spec.get("securityContext", {}))
    deadline = template.get("activeDeadlineSeconds")
    return Pod(
        node=node,
        template=template["name"],
        image=container["image"],
        command=[str(word) for word in container.get("command", [])],
        args=[str(word) for word in container.get("args", [])],
        env=list(container.get("env", [])),
        security={**pod_security, **container.get("securityContext", {})},
        mounts=mounts,
        resources=container.get("resources", {}),
        working_dir=container.get("workingDir"),
        deadline_seconds=float(deadline) if deadline is not None else None,
    )
