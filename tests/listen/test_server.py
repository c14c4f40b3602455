"""The listening server over real HTTP on loopback: bad requests are refused and write nothing; nothing served tells
which stimulus is which; stimuli are loudness-matched."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sd1job.audio import decode_wav
from sd1job.config import Config
from sd1job.layout import RunLayout
from sd1job.listen import answers
from sd1job.listen.design import Session
from sd1job.listen.server import ListeningTest, make_server
from sd1job.listen.stimuli import TARGET_LUFS, build_stimuli
from sd1job.perceptual import integrated_loudness
from sd1job.store import LocalStore
from tests.listen.fixtures import scored_run


class Client:
    """Raw HTTP to the server: paths are sent exactly as given (no normalisation)."""

    def __init__(self, port: int) -> None:
        self.port = port

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def json(self, method: str, path: str, value: Any = None) -> tuple[int, Any]:
        status, body = self.request(method, path, None if value is None else json.dumps(value).encode())
        return status, json.loads(body) if body else None


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Config, LocalStore, ListeningTest, Client]]:
    config = scored_run(tmp_path_factory.mktemp("listen-http"), listen__trials_per_arm=3)
    store = LocalStore(config.store)
    test = ListeningTest(store, RunLayout(config.run_id), build_stimuli(store, config), "abx", 3)
    server = make_server(test, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield config, store, test, Client(server.server_address[1])
    server.shutdown()
    server.server_close()


def strings_of(value: Any) -> set[str]:
    """Every string (keys and values) in a JSON document."""
    if isinstance(value, dict):
        return set(value) | {s for v in value.values() for s in strings_of(v)}
    if isinstance(value, list):
        return {s for v in value for s in strings_of(v)}
    return {value} if isinstance(value, str) else set()


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_bad_requests_get_a_4xx_and_write_nothing(served: tuple[Config, LocalStore, ListeningTest, Client]) -> None:
    config, store, _, client = served
    status, started = client.json("POST", "/api/sessions", {"listener": "eve"})
    assert status == 201
    session = started["session"]
    status, trial = client.json("GET", f"/api/sessions/{session}/trials/0")
    assert status == 200
    answer_path = f"/api/sessions/{session}/answers"
    unanswered = client.json("GET", f"/api/sessions/{session}/trials/1")[1]["trial"]
    assert client.json("POST", answer_path, {"trial": trial["trial"], "choice": "A"})[0] == 200
    before = snapshot(store.root)
    refused = [
        (client.request("POST", answer_path, b"{not json"), 400),
        (client.request("POST", answer_path, b'["trial"]'), 400),
        (client.request("POST", answer_path, json.dumps({"trial": unanswered, "choice": "C"}).encode()), 400),
        (client.request("POST", answer_path, json.dumps({"trial": unanswered, "ratings": {}}).encode()), 400),
        (client.request("POST", answer_path, json.dumps({"trial": trial["trial"], "choice": "C"}).encode()), 409),
        (client.request("POST", answer_path, json.dumps({"trial": "0" * 16, "choice": "A"}).encode()), 404),
        (client.request("POST", answer_path, json.dumps({"trial": trial["trial"], "choice": "B"}).encode()), 409),
        (client.request("POST", f"/api/sessions/{'f' * 32}/answers", b'{"trial": "x", "choice": "A"}'), 404),
        (client.request("POST", answer_path, b"x" * 70_000), 413),
        (client.request("POST", "/api/sessions", b'{"listener": ""}'), 400),
        (client.request("POST", "/api/sessions", b"{oops"), 400),
        (client.request("GET", f"/api/sessions/{session}/trials/999"), 404),
        (client.request("GET", "/static/../../../../etc/passwd"), 404),
        (client.request("GET", "/static/..%2f..%2fconfig.py"), 404),
        (client.request("GET", "/audio/../../runs/test-run/listening/design.json"), 404),
        (client.request("GET", f"/api/sessions/{session}/../../listening/sessions/{session}.json"), 404),
        (client.request("GET", "/runs/test-run/listening/design.json"), 404),
        (client.request("POST", f"/api/sessions/{session}/answers/../../../x", b"{}"), 404),
        (client.request("GET", "/audio/0000000000000000.wav"), 404),
    ]
    statuses = [response[0] for response, _ in refused]
    assert statuses == [expected for _, expected in refused]
    assert snapshot(store.root) == before
    log = store.read_text(answers.answers_key(RunLayout(config.run_id), session)).splitlines()
    assert len(log) == 1


def test_the_answer_key_appears_in_nothing_served(served: tuple[Config, LocalStore, ListeningTest, Client]) -> None:
    config, store, test, client = served
    status, started = client.json("POST", "/api/sessions", {"listener": "fay"})
    assert status == 201
    session_id = started["session"]
    key = Session.from_json(store.read_json(answers.session_key(RunLayout(config.run_id), session_id)))
    served_text = [client.request("GET", path)[1].decode() for path in ("/", "/static/listen.js", "/static/listen.css")]
    served_text.append(json.dumps(client.json("GET", "/api/info")[1]))
    served_text.append(json.dumps(client.json("GET", f"/api/sessions/{session_id}")[1]))
    tokens: list[str] = []
    for index, trial in enumerate(key.trials):
        public = client.json("GET", f"/api/sessions/{session_id}/trials/{index}")[1]
        assert set(public) == {"trial", "index", "total", "kind", "stimuli"}
        assert all(set(s) == {"id", "label"} for s in public["stimuli"])
        assert [s["label"] for s in public["stimuli"]] == ["A", "B", "X"]
        tokens += [s["id"] for s in public["stimuli"]]
        served_text.append(json.dumps(public))
        wavs = []
        for stimulus in public["stimuli"]:
            wav = client.request("GET", f"/audio/{stimulus['id']}.wav")[1]
            assert b"LIST" not in wav[:200] and not any(name.encode() in wav for name in test.stimuli.units.values())
            wavs.append(wav)
        # X repeats A or B, but no served file is byte-identical to another: comparing files gives nothing away
        assert len(set(wavs)) == 3
        a, b, x = (decode_wav(w, "served").samples for w in wavs)
        repeated = a if trial.correct == "A" else b
        assert float(np.max(np.abs(x - repeated))) <= 2.0**-22 + 1e-9
        answered = client.json("POST", f"/api/sessions/{session_id}/answers", {"trial": trial.trial_id, "choice": "A"})[
            1
        ]
        served_text.append(json.dumps(answered))
    secrets_of_the_key = [*test.stimuli.arms, *test.stimuli.units.values(), "hidden_reference", "anchor", "correct"]
    json_strings = set()
    for text in served_text:
        if text.startswith("{"):
            json_strings |= strings_of(json.loads(text))
    for secret in secrets_of_the_key:
        # as a whole string value or key; as a substring too, where a random hex token cannot contain it
        assert secret not in json_strings, secret
        if not all(c in "0123456789abcdef" for c in secret):
            assert not any(secret in text for text in json_strings), secret
    pages = "".join(served_text[:3])
    assert not any(arm in pages for arm in test.stimuli.units.values())
    assert str(key.seed) not in "".join(served_text)
    assert len(set(tokens)) == len(tokens)  # a new token in every slot of every trial


def test_stimuli_are_excerpts_at_one_loudness(served: tuple[Config, LocalStore, ListeningTest, Client]) -> None:
    config, _, test, _ = served
    stimuli = test.stimuli
    assert set(stimuli.arms) == {"c8", "c16"} and stimuli.units["c8"] in {"c8-s25", "c8-s26"}
    rate = config.recordings.sample_rate
    for (condition, riff), wav in stimuli.wavs.items():
        samples = decode_wav(wav, f"{condition}/{riff}").samples
        assert samples.size == rate * 1  # the 1 s riff, whole (under the excerpt limit)
        loudness = integrated_loudness(samples, rate)
        assert loudness == pytest.approx(TARGET_LUFS, abs=0.1), (condition, riff)
        assert float(np.max(np.abs(samples))) <= 0.99


@pytest.mark.slow
def test_sessions_and_answers_live_in_an_s3_store_too(s3_bucket: str) -> None:
    """The same logs on a real S3 server (SeaweedFS): written per answer, read back by a restarted server."""
    from sd1job.listen.design import decode_answer, new_session
    from sd1job.store import S3Store

    store = S3Store(s3_bucket, "team")
    layout = RunLayout("run-1")
    session = new_session("c" * 32, "gil", "abx", 9, ["c44", "c440"], ["battery"], 2, "d")
    answers.save_session(store, layout, session)
    log = answers.AnswerLog(store, answers.answers_key(layout, session.session_id))
    for trial in session.trials[:3]:
        log.append(decode_answer(session, {"trial": trial.trial_id, "choice": "A"}, set()))
    resumed = answers.load_sessions(S3Store(s3_bucket, "team"), layout)
    assert resumed == [session]
    reread = answers.AnswerLog(S3Store(s3_bucket, "team"), answers.answers_key(layout, session.session_id))
    assert [r["trial"] for r in reread.records] == [t.trial_id for t in session.trials[:3]]
    assert len(answers.read_answers(store, layout)) == 3
