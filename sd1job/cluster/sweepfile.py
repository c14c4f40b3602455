"""argo/sweep.yaml: the Workflow ``submit`` sends and the WorkflowTemplate it references.

The same file ``argo submit`` reads (no second copy of the workflow): a multi-document YAML
with one Workflow and, usually, the WorkflowTemplate its ``spec.workflowTemplateRef`` names.
``-p name=value`` overrides are applied to the Workflow's arguments and checked against the
parameters the template declares (names, and values against an ``enum``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sd1job.errors import UserError

DEFAULT_FILE = Path("argo") / "sweep.yaml"
REPOSITORY = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class SweepFile:
    """The Workflow to submit and, when the same file defines it, the WorkflowTemplate it references."""

    path: Path
    workflow: dict[str, Any]
    template: dict[str, Any] | None

    @property
    def template_name(self) -> str | None:
        """spec.workflowTemplateRef.name of the Workflow (None for a self-contained Workflow)."""
        ref = (self.workflow.get("spec") or {}).get("workflowTemplateRef") or {}
        return ref.get("name")


def find_sweep_file(option: str | None, cwd: Path | None = None) -> Path:
    """--file as given, else argo/sweep.yaml in the working directory, else in the repository."""
    if option:
        path = Path(option)
        if not path.is_file():
            raise UserError(f"{path}: no such file (--file)")
        return path
    candidates = [(cwd or Path.cwd()) / DEFAULT_FILE, REPOSITORY / DEFAULT_FILE]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise UserError(f"{DEFAULT_FILE} not found in {candidates[0].parent.parent} or the repository: pass --file")


def _documents(path: Path) -> list[dict[str, Any]]:
    try:
        documents = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read: {error}") from error
    except yaml.YAMLError as error:
        raise UserError(f"{path}: invalid YAML: {error}") from error
    if not all(isinstance(doc, dict) for doc in documents):
        raise UserError(f"{path}: every YAML document must be a mapping (a Kubernetes object)")
    return documents


def load_sweep_file(path: Path) -> SweepFile:
    """Read the multi-document YAML and pick out the Workflow and the WorkflowTemplate it references.

    UserError when the file is unreadable, not YAML, or has no single Workflow with metadata, a
    generateName (or name) and a spec.
    """
    documents = _documents(path)
    workflows = [doc for doc in documents if doc.get("kind") == "Workflow"]
    if len(workflows) != 1:
        raise UserError(f"{path}: expected exactly one Workflow document (kind: Workflow), found {len(workflows)}")
    workflow = workflows[0]
    if not isinstance(workflow.get("spec"), dict) or not isinstance(workflow.get("metadata"), dict):
        raise UserError(f"{path}: the Workflow needs metadata and spec mappings")
    meta = workflow["metadata"]
    if not (meta.get("name") or meta.get("generateName")):
        raise UserError(f"{path}: the Workflow needs metadata.generateName (or metadata.name)")
    sweep = SweepFile(path=path, workflow=workflow, template=None)
    name = sweep.template_name
    templates = [
        doc
        for doc in documents
        if name is not None
        and doc.get("kind") == "WorkflowTemplate"
        and (doc.get("metadata") or {}).get("name") == name
    ]
    return SweepFile(path=path, workflow=workflow, template=templates[0] if templates else None)


def parse_overrides(items: Sequence[str] | None) -> dict[str, str]:
    """``-p name=value`` items -> {name: value}; the last one wins, as with ``argo submit -p``."""
    overrides: dict[str, str] = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UserError(f"-p {item!r}: expected NAME=VALUE")
        overrides[name.strip()] = value
    return overrides


def parameter_value(value: Any) -> str:
    """Argo parameter values are strings; YAML numbers and booleans become their JSON text (44, true)."""
    return value if isinstance(value, str) else json.dumps(value)


def argument_parameters(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """spec.arguments.parameters of a Workflow or WorkflowTemplate (an empty list when absent)."""
    params = ((document.get("spec") or {}).get("arguments") or {}).get("parameters") or []
    return [param for param in params if isinstance(param, dict) and "name" in param]


def declared_parameters(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The parameters a template declares, by name."""
    return {str(param["name"]): param for param in argument_parameters(document)}


def apply_overrides(workflow: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, Any]:
    """A copy of the Workflow with each override set (replacing or appending) and every value a string."""
    result = copy.deepcopy(dict(workflow))
    arguments = result["spec"].setdefault("arguments", {}) or {}
    result["spec"]["arguments"] = arguments
    params = [dict(param) for param in argument_parameters(result)]
    remaining = dict(overrides)
    for param in params:
        if param["name"] in remaining:
            param["value"] = remaining.pop(param["name"])
        if "value" in param:
            param["value"] = parameter_value(param["value"])
    params.extend({"name": name, "value": value} for name, value in remaining.items())
    arguments["parameters"] = params
    return result


# Parameters earlier versions of argo/sweep.yaml declared, and where their setting lives now.
RETIRED_PARAMETERS = {
    "contexts": "the sweep's units come from the config now: edit dataset.contexts and train.repeats there",
}


def check_parameters(
    given: Mapping[str, str], declared: Mapping[str, Mapping[str, Any]], where: str, hint: str = ""
) -> None:
    """UserError unless every given parameter is declared by the template (and within its enum, if any)."""
    for name, value in given.items():
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            retired = f"; {RETIRED_PARAMETERS[name]}" if name in RETIRED_PARAMETERS else ""
            raise UserError(f"parameter {name!r} is not declared by {where} (declared: {known}){retired}{hint}")
        allowed = declared[name].get("enum")
        if allowed and value not in [parameter_value(item) for item in allowed]:
            choices = ", ".join(parameter_value(item) for item in allowed)
            raise UserError(f"parameter {name}={value!r} is not one of {choices} ({where})")
