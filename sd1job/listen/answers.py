"""Sessions and answers in the store, under ``runs/<run_id>/listening/``::

    design.json              the stimulus set (units, riffs, gains): server-side
    sessions/<id>.json       a session with its blinding key, written once when it starts
    answers/<id>.jsonl       one JSON line per answer, in the order they arrived

An answer is written before it is acknowledged: the log object is replaced with its previous
lines plus the new one, through the Store interface (on a local store: written to a temporary file,
flushed, fsynced and renamed over the old; on S3 one PUT, visible only when complete). So a
server killed at any moment keeps every acknowledged answer, and a torn line cannot exist.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

from sd1job.layout import RunLayout
from sd1job.listen.design import Session
from sd1job.store import Store

SESSION_ID = re.compile(r"^[0-9a-f]{32}$")
DESIGN = "design.json"


def session_key(layout: RunLayout, session_id: str) -> str:
    """Where a session (with its key) is kept."""
    return layout.listening_file(f"sessions/{session_id}.json")


def answers_key(layout: RunLayout, session_id: str) -> str:
    """Where a session's answers are kept."""
    return layout.listening_file(f"answers/{session_id}.jsonl")


class AnswerLog:
    """The answers of one session: read back on resume, appended one line per answer."""

    def __init__(self, store: Store, key: str) -> None:
        self.store = store
        self.key = key
        self.lock = threading.Lock()
        self.lines: list[str] = store.read_text(key).splitlines() if store.exists(key) else []

    @property
    def records(self) -> list[dict[str, Any]]:
        """Every stored answer, parsed."""
        return [json.loads(line) for line in self.lines if line.strip()]

    def append(self, record: dict[str, Any]) -> None:
        """Store one more answer durably (returns only once it is written)."""
        line = json.dumps(record, allow_nan=False, separators=(",", ":"))
        self.store.write_text(self.key, "\n".join([*self.lines, line]) + "\n")
        self.lines.append(line)


def save_session(store: Store, layout: RunLayout, session: Session) -> None:
    """Write a new session (with its key) before it is handed to the page."""
    store.write_json(session_key(layout, session.session_id), session.to_json())


def load_sessions(store: Store, layout: RunLayout) -> list[Session]:
    """Every session in the store (to resume them), oldest id order."""
    prefix = layout.listening_file("sessions")
    return [Session.from_json(store.read_json(key)) for key in store.list(prefix) if key.endswith(".json")]


def read_answers(store: Store, layout: RunLayout) -> list[dict[str, Any]]:
    """Every answer of every session, as stored (for the analysis)."""
    records = []
    for key in store.list(layout.listening_file("answers")):
        if key.endswith(".jsonl"):
            records.extend(json.loads(line) for line in store.read_text(key).splitlines() if line.strip())
    return records
