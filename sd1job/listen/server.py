"""The listening test's HTTP server (stdlib ``ThreadingHTTPServer``): the page, the audio, the answers.

Routes (every response ``Cache-Control: no-store``; anything else is 404 and writes nothing)::

    GET  /                                   the page (static/index.html)
    GET  /static/listen.js | listen.css      its script and style
    GET  /api/info                           the test, trial count, sample rate, level note
    POST /api/sessions                       {"listener": name} -> 201 {"session", "total", "answered"}
    GET  /api/sessions/<id>                  resume: {"session", "listener", "total", "answered"}
    GET  /api/sessions/<id>/trials/<k>       trial k (0-based): opaque ids and labels only
    POST /api/sessions/<id>/answers          one answer -> 200 once it is stored
    GET  /audio/<token>.wav                  one stimulus of one trial, by its opaque token

A bad request gets a 4xx and writes nothing: malformed JSON or a wrong shape 400, an unknown session,
trial or path 404 (a path can never reach outside the run: audio is looked up by token and static
files by name, never by a path), an answer to an already answered trial 409, a body over
``MAX_BODY`` bytes 413. What the page is sent never says which stimulus is which.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from sd1job.layout import RunLayout
from sd1job.listen import answers
from sd1job.listen.design import MUSHRA_LABELS, AnswerError, Session, decode_answer, new_session, public_trial
from sd1job.listen.stimuli import TARGET_LUFS, StimulusSet
from sd1job.store import Store

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
MAX_LISTENER = 80
STATIC = {"listen.js": "text/javascript; charset=utf-8", "listen.css": "text/css; charset=utf-8"}
SESSION_PATH = re.compile(r"^/api/sessions/([0-9a-f]{32})$")
TRIAL_PATH = re.compile(r"^/api/sessions/([0-9a-f]{32})/trials/(\d{1,6})$")
ANSWER_PATH = re.compile(r"^/api/sessions/([0-9a-f]{32})/answers$")
AUDIO_PATH = re.compile(r"^/audio/([0-9a-f]{16})\.wav$")


class ListeningTest:
    """The test's state: stimuli, sessions (resumed from the store), the token map. Thread-safe."""

    def __init__(self, store: Store, layout: RunLayout, stimuli: StimulusSet, test: str, trials_per_arm: int) -> None:
        self.store = store
        self.layout = layout
        self.stimuli = stimuli
        self.test = test
        self.trials_per_arm = trials_per_arm
        self.lock = threading.Lock()
        self.sessions: dict[str, Session] = {}
        self.logs: dict[str, answers.AnswerLog] = {}
        self.audio: dict[str, tuple[str, str]] = {}  # token -> (condition, riff)
        store.write_json(layout.listening_file(answers.DESIGN), stimuli.describe())
        for session in answers.load_sessions(store, layout):
            if session.design != stimuli.fingerprint:
                log.warning("listen: session %s was drawn for other stimuli; it cannot be resumed", session.session_id)
                continue
            self._register(session)

    def _register(self, session: Session) -> None:
        self.sessions[session.session_id] = session
        self.logs[session.session_id] = answers.AnswerLog(
            self.store, answers.answers_key(self.layout, session.session_id)
        )
        for trial in session.trials:
            for slot in trial.slots:
                self.audio[slot.token] = (slot.source, slot.riff)

    def info(self) -> dict[str, Any]:
        """What the page shows before a session starts."""
        sample = new_session("0" * 32, "", self.test, 0, self.stimuli.arms, self.stimuli.riffs, self.trials_per_arm, "")
        return {
            "test": self.test,
            "trials": len(sample.trials),
            "sample_rate": self.stimuli.sample_rate,
            "excerpt_seconds": self.stimuli.seconds,
            "levels": f"Levels are matched: every sound plays at the same loudness ({TARGET_LUFS:.0f} LUFS, "
            "ITU-R BS.1770).",
            "labels": list(MUSHRA_LABELS),
        }

    def start(self, listener: str) -> dict[str, Any]:
        """A new session for a listener, stored (with its key) before it is returned."""
        session_id = secrets.token_hex(16)
        seed = secrets.randbits(63)
        session = new_session(
            session_id,
            listener,
            self.test,
            seed,
            self.stimuli.arms,
            self.stimuli.riffs,
            self.trials_per_arm,
            self.stimuli.fingerprint,
        )
        answers.save_session(self.store, self.layout, session)
        with self.lock:
            self._register(session)
        log.info("listen: %s started session %s (%d trials)", listener, session_id, len(session.trials))
        return self.progress(session_id)

    def progress(self, session_id: str) -> dict[str, Any]:
        """How far a session has come (KeyError if unknown)."""
        session = self.sessions[session_id]
        return {
            "session": session_id,
            "listener": session.listener,
            "test": session.test,
            "total": len(session.trials),
            "answered": len(self.logs[session_id].lines),
        }

    def answer(self, session_id: str, payload: Any) -> dict[str, Any]:
        """Decode, store, then acknowledge one answer (AnswerError if refused, nothing written)."""
        session = self.sessions[session_id]
        answer_log = self.logs[session_id]
        with answer_log.lock:
            done = {record["trial"] for record in answer_log.records}
            record = decode_answer(session, payload, done)
            answer_log.append(record)
        return self.progress(session_id)


class Handler(BaseHTTPRequestHandler):
    """One request: routed by exact patterns; never touches the file system by a request's path."""

    server_version = "sd1job-listen"
    test: ListeningTest  # set on the class made by make_server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: Any) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            return self._send(200, _static("index.html"), "text/html; charset=utf-8")
        if path.startswith("/static/") and path[len("/static/") :] in STATIC:
            name = path[len("/static/") :]
            return self._send(200, _static(name), STATIC[name])
        if path == "/api/info":
            return self._json(200, self.test.info())
        if match := AUDIO_PATH.match(path):
            found = self.test.audio.get(match.group(1))
            if found is None:
                return self._error(404, "unknown stimulus")
            return self._send(200, self.test.stimuli.served_wav(found, match.group(1)), "audio/wav")
        if match := SESSION_PATH.match(path):
            if match.group(1) not in self.test.sessions:
                return self._error(404, "unknown session")
            return self._json(200, self.test.progress(match.group(1)))
        if match := TRIAL_PATH.match(path):
            session = self.test.sessions.get(match.group(1))
            index = int(match.group(2))
            if session is None or index >= len(session.trials):
                return self._error(404, "unknown session or trial")
            return self._json(200, public_trial(session, index))
        return self._error(404, "not found")

    do_HEAD = do_GET  # noqa: N815 (the stdlib's name)

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/api/sessions":
            payload = self._read_json()
            if payload is None:
                return None
            listener = payload.get("listener") if isinstance(payload, dict) else None
            if not isinstance(listener, str) or not listener.strip() or len(listener) > MAX_LISTENER:
                return self._error(400, f"a session needs a listener name of 1 to {MAX_LISTENER} characters")
            return self._json(201, self.test.start(listener.strip()))
        if match := ANSWER_PATH.match(path):
            if match.group(1) not in self.test.sessions:
                return self._error(404, "unknown session")
            payload = self._read_json()
            if payload is None:
                return None
            try:
                return self._json(200, self.test.answer(match.group(1), payload))
            except AnswerError as error:
                return self._error(error.status, str(error))
        return self._error(404, "not found")

    def _read_json(self) -> Any:
        """The request body parsed as JSON, or None after sending the 4xx that says why."""
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._error(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
            return None
        if length > MAX_BODY or length < 0:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY} bytes")
            return None
        try:
            return json.loads(self.rfile.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError):
            self._error(400, "malformed JSON")
            return None


def _static(name: str) -> bytes:
    return resources.files("sd1job.listen").joinpath("static", name).read_bytes()


class _Server(ThreadingHTTPServer):
    # The stdlib's listen backlog of 5 overflows with a few pages fetching three WAVs at once; a full
    # backlog drops SYNs, which clients retry after 1 s, then 2 s (measured: a 2 s answer at 32 listeners).
    request_queue_size = 128


def make_server(test: ListeningTest, host: str, port: int) -> ThreadingHTTPServer:
    """A threading HTTP server bound to (host, port) serving ``test`` (port 0: any free port)."""
    handler = type("BoundHandler", (Handler,), {"test": test})
    server = _Server((host, port), handler)
    server.daemon_threads = True
    return server
