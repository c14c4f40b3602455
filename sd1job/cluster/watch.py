"""A workflow as a user follows it: its steps, one line per change, a summary table, an exit status.

A step is one unit of work as the DAG names it: ``data``, ``train c44-s25`` (the task ``train``
of the fan-out item ``c44-s25``), ``report``, the exit handler ``push-status (onExit)``. A task
with a retryStrategy is a ``Retry`` node whose children are its attempts (``<node>(0)``,
``<node>(1)``, ...); its step shows the Retry node's phase and counts the attempts. DAG and
TaskGroup nodes only group steps and are not shown. Labels come from node names, not display
names: inside a nested DAG every unit's pods have the same display name (``train(0)``).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from sd1job.cluster.client import ArgoUnreachableError
from sd1job.errors import UserError
from sd1job.formatting import format_duration, one_line

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 5.0
WATCH_MAX_FAILURES = 5  # consecutive unreachable polls tolerated while watching
FINAL_PHASES = frozenset({"Succeeded", "Failed", "Error"})
UNSUCCESSFUL_PHASES = frozenset({"Failed", "Error"})
DONE_PHASES = FINAL_PHASES | {"Skipped", "Omitted"}
# Node types that are one piece of work; DAG, TaskGroup, Steps and StepGroup nodes only group them.
WORK_NODE_TYPES = frozenset({"Pod", "Container", "Skipped", "Suspend", "HTTP", "Plugin"})
EXIT_SUCCEEDED = 0
EXIT_FAILED = 1
EXIT_NOT_FINISHED = 3  # `status` on a workflow still pending or running

_MESSAGE_LIMIT = 240
_LABEL_WIDTH = 32
_SEGMENT = re.compile(r"^(?P<task>[^()]+)\((?P<index>\d+):(?P<item>.*)\)$")


@dataclass(frozen=True)
class Attempt:
    """One try of a step (a pod), or the step's only node when it has no retryStrategy."""

    id: str
    phase: str
    started: datetime | None
    finished: datetime | None
    message: str


@dataclass(frozen=True)
class Step:
    """One unit of work of a workflow as last seen, with its attempts in order."""

    id: str
    label: str
    phase: str
    started: datetime | None
    finished: datetime | None
    message: str
    attempts: tuple[Attempt, ...]

    @property
    def failed_attempts(self) -> list[Attempt]:
        """The attempts that ended Failed or Error."""
        return [attempt for attempt in self.attempts if attempt.phase in UNSUCCESSFUL_PHASES]

    def summary_message(self) -> str:
        """What the table says about the step: why it failed, what it survived, or what it waits for."""
        failed = self.failed_attempts
        if self.phase in UNSUCCESSFUL_PHASES and failed:
            last = failed[-1].message
            return f"{last} ({self.message})" if self.message and self.message != last else last
        if self.phase == "Succeeded" and failed:
            plural = "s" if len(failed) > 1 else ""
            return f"after {len(failed)} failed attempt{plural}; last: {failed[-1].message}"
        if self.message:
            return self.message
        return self.attempts[-1].message if self.attempts else ""


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp from the API (None, "" and unparseable values -> None)."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def workflow_phase(workflow: Mapping[str, Any]) -> str:
    """status.phase, or Pending for a workflow the controller has not picked up yet."""
    return str((workflow.get("status") or {}).get("phase") or "Pending")


def workflow_name(workflow: Mapping[str, Any]) -> str:
    """metadata.name ("?" when absent)."""
    return str((workflow.get("metadata") or {}).get("name") or "?")


def _natural_key(text: str) -> list[Any]:
    """'train 88' sorts before 'train 440'."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _segments(path: str) -> list[str]:
    """``unit(0:c44-s25).train`` -> [``unit(0:c44-s25)``, ``train``]: split on dots outside parentheses."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(path):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "." and depth == 0:
            parts.append(path[start:index])
            start = index + 1
    parts.append(path[start:])
    return [part for part in parts if part]


def step_label(path: str) -> str:
    """The task's name followed by the fan-out items it runs under: ``unit(0:c44-s25).train`` -> ``train c44-s25``."""
    items, task = [], path
    for segment in _segments(path):
        match = _SEGMENT.match(segment)
        task = match["task"] if match else segment
        if match:
            items.append(match["item"])
    return " ".join([task, "/".join(items)]) if items else task


def _relative_name(node: Mapping[str, Any], workflow: str) -> str:
    name = str(node.get("name") or node.get("id") or "")
    prefix = f"{workflow}."
    return name[len(prefix) :] if name.startswith(prefix) else str(node.get("displayName") or name)


def _is_exit_handler(node: Mapping[str, Any], path: str) -> bool:
    return bool((node.get("nodeFlag") or {}).get("hooked")) or _segments(path)[-1:] == ["onExit"]


def _attempt(node: Mapping[str, Any]) -> Attempt:
    return Attempt(
        id=str(node.get("id") or node.get("name")),
        phase=str(node.get("phase") or "Pending"),
        started=parse_time(node.get("startedAt")),
        finished=parse_time(node.get("finishedAt")),
        message=one_line(node.get("message") or "")[:_MESSAGE_LIMIT],
    )


def _step(node: Mapping[str, Any], workflow: str, attempts: list[Attempt]) -> Step:
    path = _relative_name(node, workflow)
    label = f"{node.get('templateName') or 'onExit'} (onExit)" if _is_exit_handler(node, path) else step_label(path)
    own = _attempt(node)
    phase = own.phase
    if phase not in DONE_PHASES and attempts and attempts[-1].phase in ("Pending", "Running"):
        phase = attempts[-1].phase  # a Retry node is Running from its creation; its pod may still be Pending
    return Step(own.id, label, phase, own.started, own.finished, own.message, tuple(attempts))


def workflow_steps(workflow: Mapping[str, Any]) -> list[Step]:
    """The workflow's steps (retried tasks with their attempts, single pods, omitted tasks, the exit
    handler), in start order, then natural label order."""
    nodes = {
        str(node.get("id")): node
        for node in ((workflow.get("status") or {}).get("nodes") or {}).values()
        if isinstance(node, dict)
    }
    name = workflow_name(workflow)
    attempt_ids: set[str] = set()
    steps = []
    for node in nodes.values():
        if node.get("type") != "Retry":
            continue
        children = [nodes[child] for child in node.get("children") or [] if child in nodes]
        if any(child.get("type") not in WORK_NODE_TYPES for child in children):
            continue  # a retried DAG: its pods are steps of their own
        attempt_ids.update(str(child.get("id")) for child in children)
        steps.append(_step(node, name, [_attempt(child) for child in children]))
    steps.extend(
        _step(node, name, [_attempt(node)])
        for node_id, node in nodes.items()
        if node.get("type") in WORK_NODE_TYPES and node_id not in attempt_ids
    )
    never = datetime.max.replace(tzinfo=UTC)
    return sorted(steps, key=lambda step: (step.started or never, _natural_key(step.label)))


def _seconds(start: datetime | None, end: datetime | None, now: datetime) -> float | None:
    if start is None:
        return None
    return ((end or now) - start).total_seconds()


def _event_time(attempt: Attempt) -> datetime | None:
    """When the attempt reached its phase: its end once done (an omitted task has no finishedAt: it is
    decided when created), else its start."""
    if attempt.phase in DONE_PHASES:
        return attempt.finished or attempt.started
    return attempt.started


def changed_attempts(seen: dict[str, str], steps: Iterable[Step]) -> list[tuple[Step, int]]:
    """(step, attempt number from 1) of every attempt whose phase differs from ``seen`` (which is
    updated), in the order the changes happened."""
    changed = []
    for step in steps:
        for number, attempt in enumerate(step.attempts, start=1):
            if seen.get(attempt.id) != attempt.phase:
                seen[attempt.id] = attempt.phase
                changed.append((step, number))
    never = datetime.max.replace(tzinfo=UTC)
    return sorted(changed, key=lambda change: _event_time(change[0].attempts[change[1] - 1]) or never)


def format_change(step: Step, number: int, workflow_started: datetime | None, now: datetime) -> str:
    """One watch line: time since the workflow started, the step (and attempt), its new phase, how long it
    took, why it failed and whether it will be retried."""
    attempt = step.attempts[number - 1]
    offset = _seconds(workflow_started, _event_time(attempt) or now, now) if workflow_started else None
    label = step.label if number == 1 else f"{step.label} (attempt {number})"
    line = f"[{format_duration(offset):>7}] {label:<{_LABEL_WIDTH}} {attempt.phase}"
    if attempt.finished is not None and attempt.started is not None:
        line += f" after {format_duration(_seconds(attempt.started, attempt.finished, now))}"
    message = _strip_prefix(attempt.message, f"{attempt.phase}:")
    if message and attempt.phase not in ("Succeeded", "Running"):
        line += f": {message}"
    if attempt.phase in UNSUCCESSFUL_PHASES and attempt.id != step.id:
        last = number == len(step.attempts) and step.phase in DONE_PHASES
        line += "; no retries left" if last else "; retrying"
    return line


def _strip_prefix(text: str, prefix: str) -> str:
    """``text`` without a leading ``prefix`` (any case): "omitted: depends ..." after "Omitted" says it twice."""
    return text[len(prefix) :].strip() if text.lower().startswith(prefix.lower()) else text


def _duration(step: Step, now: datetime) -> float | None:
    """How long the step ran (so far); None when unknown or when it never ran (omitted, skipped)."""
    if step.phase in DONE_PHASES and step.finished is None:
        return None
    return _seconds(step.started, step.finished, now)


def _counts(steps: list[Step]) -> str:
    phases: dict[str, int] = {}
    for step in steps:
        phases[step.phase] = phases.get(step.phase, 0) + 1
    text = ", ".join(f"{count} {phase}" for phase, count in sorted(phases.items()))
    failed = sum(len(step.failed_attempts) for step in steps)
    return text + (f"; {failed} attempt{'s' if failed > 1 else ''} failed" if failed else "")


def format_summary(workflow: Mapping[str, Any], now: datetime | None = None) -> str:
    """The workflow's name, phase, duration and message, then one table row per step."""
    now = now or datetime.now(UTC)
    status = workflow.get("status") or {}
    meta = workflow.get("metadata") or {}
    started, finished = parse_time(status.get("startedAt")), parse_time(status.get("finishedAt"))
    lines = [f"workflow  {workflow_name(workflow)}  (namespace {meta.get('namespace', '?')})"]
    when = f"started {started:%Y-%m-%d %H:%M:%S}Z, " if started else ""
    verb = "ran" if finished else "running for"
    lines.append(
        f"phase     {workflow_phase(workflow)}  ({when}{verb} {format_duration(_seconds(started, finished, now))})"
    )
    if status.get("message"):
        lines.append(f"message   {one_line(status['message'])[:_MESSAGE_LIMIT]}")
    steps = workflow_steps(workflow)
    if not steps:
        return "\n".join(lines)
    lines.append(f"steps     {_counts(steps)}")
    rows = [("STEP", "PHASE", "ATTEMPTS", "START", "DURATION", "MESSAGE")]
    for step in steps:
        offset = _seconds(started, step.started, now) if started and step.started else None
        rows.append(
            (
                step.label,
                step.phase,
                str(len(step.attempts)),
                f"+{format_duration(offset)}" if offset is not None else "-",
                format_duration(_duration(step, now)),
                step.summary_message(),
            )
        )
    widths = [max(len(row[col]) for row in rows) for col in range(5)]
    lines.append("")
    lines.extend(
        "  ".join([*(cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True)), row[5]]).rstrip()
        for row in rows
    )
    return "\n".join(lines)


def exit_code_for_phase(phase: str) -> int:
    """0 Succeeded, 1 Failed or Error, 3 not finished yet."""
    if phase == "Succeeded":
        return EXIT_SUCCEEDED
    if phase in FINAL_PHASES:
        return EXIT_FAILED
    return EXIT_NOT_FINISHED


def watch_workflow(
    fetch: Callable[[str], Mapping[str, Any]],
    name: str,
    interval: float = DEFAULT_INTERVAL,
    out: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Mapping[str, Any]:
    """Poll ``fetch(name)`` until the workflow finishes, printing one line per workflow phase and attempt
    state change; return its last state. Up to WATCH_MAX_FAILURES polls in a row may find the server
    unreachable; then a UserError says the workflow keeps running."""
    out = out or sys.stdout
    seen: dict[str, str] = {}
    failures = 0
    last_phase = None
    while True:
        try:
            workflow = fetch(name)
            failures = 0
        except ArgoUnreachableError as error:
            failures += 1
            if failures >= WATCH_MAX_FAILURES:
                raise UserError(
                    f"lost the Argo Server while watching {name} ({error}); the workflow keeps running: "
                    f"python -m sd1job status {name}"
                ) from error
            log.warning("poll %d failed, retrying: %s", failures, error)
            sleep(interval)
            continue
        now = datetime.now(UTC)
        phase = workflow_phase(workflow)
        if phase != last_phase and phase not in FINAL_PHASES:
            print(f"workflow {name} {phase}", file=out, flush=True)
        last_phase = phase
        started = parse_time((workflow.get("status") or {}).get("startedAt"))
        for step, number in changed_attempts(seen, workflow_steps(workflow)):
            print(format_change(step, number, started, now), file=out, flush=True)
        if phase in FINAL_PHASES:
            return workflow
        sleep(interval)
