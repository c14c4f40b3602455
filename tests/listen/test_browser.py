"""The listening test in a real headless Chromium, served by ``python -m sd1job listen`` in its own process.

A listener who always answers right makes the analysis say audible; a server killed with SIGKILL
mid-session keeps every acknowledged answer and the session resumes in the page; MUSHRA pages
show their scale and store every rating. Needs ``chromium`` and ``chromium-driver``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sd1job.config import Config
from sd1job.layout import RunLayout
from sd1job.listen import answers
from sd1job.listen.design import Session
from sd1job.listen.report import listening_section
from sd1job.store import LocalStore
from tests.listen.fixtures import scored_run

REPO_ROOT = Path(__file__).resolve().parents[2]
WAIT = 20.0
PER_ARM = 4  # ABX trials per arm: 8 a session (4 of 4 correct gives p 0.0625, so the test pools two sessions)


class ListenServer:
    """``python -m sd1job listen`` in a child process; its URL read from its first line."""

    def __init__(self, config_path: Path, *extra: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sd1job", "listen", "-q", "--config", str(config_path), "--port", "0", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO_ROOT,
        )
        line = self.process.stdout.readline() if self.process.stdout else ""
        if "http://" not in line:
            self.process.kill()
            raise AssertionError(
                f"listen did not start: {line!r} {self.process.stderr.read() if self.process.stderr else ''}"
            )
        self.url = line.split("at ", 1)[1].strip()

    def kill(self) -> None:
        """SIGKILL: no chance to flush anything."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, Path]:
    root = tmp_path_factory.mktemp("listen-browser")
    config = scored_run(root, listen__trials_per_arm=PER_ARM)
    path = root / "config.yaml"
    path.write_text(config.to_yaml())
    return config, path


@pytest.fixture
def server(run: tuple[Config, Path]) -> Iterator[ListenServer]:
    started = ListenServer(run[1])
    yield started
    started.stop()


def wait_for(driver: Any, script: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {script}")


def start_session(driver: Any, url: str, name: str) -> str:
    driver.get(url)
    wait_for(driver, "return window.listenState && window.listenState.ready")
    driver.find_element("id", "listener").send_keys(name)
    driver.find_element("id", "start").click()
    return wait_for(driver, "return window.listenState.session")


def session_key(config: Config, session_id: str) -> Session:
    """The answer key, read the way only the server can: from the store."""
    store = LocalStore(config.store)
    return Session.from_json(store.read_json(answers.session_key(RunLayout(config.run_id), session_id)))


def answer_abx(driver: Any, key: Session, right: bool, count: int | None = None) -> int:
    """Answer ABX trials as a listener: play A, B, X with the keys, then choose; return trials answered."""
    from selenium.webdriver.common.action_chains import ActionChains

    done = 0
    while count is None or done < count:
        state = wait_for(
            driver,
            "const s = window.listenState; return (!document.getElementById('done').hidden && {finished: true})"
            " || (s.loaded && !s.busy && {index: s.index, trial: s.trial.trial})",
        )
        if state.get("finished"):
            break
        for letter in "abx ":
            ActionChains(driver).send_keys(letter).perform()
        trial = key.trials[state["index"]]
        assert trial.trial_id == state["trial"]
        choice = trial.correct if right else ("A" if trial.correct == "B" else "B")
        driver.find_element("id", f"choose-{choice}").click()
        wait_for(
            driver,
            f"return window.listenState.index !== {state['index']} || window.listenState.answered > {state['index']}",
        )
        done += 1
    return done


def severe_console(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


@pytest.mark.slow
def test_a_listener_who_always_hears_it_makes_the_report_say_audible(
    browser: Any, server: ListenServer, run: tuple[Config, Path]
) -> None:
    config, _ = run
    driver = browser
    driver.get_log("browser")
    first = start_session(driver, server.url, "ann")
    wait_for(driver, "return window.listenState.loaded")
    page = driver.execute_script(
        "return {progress: document.getElementById('progress').textContent,"
        " levels: document.getElementById('levels-trial').textContent,"
        " warning: document.getElementById('rate-warning').textContent,"
        " device: window.listenState.deviceRate}"
    )
    assert page["progress"] == f"Trial 1 of {2 * PER_ARM}"
    assert "Levels are matched" in page["levels"]
    assert page["device"] != 8000 and "8000 Hz" in page["warning"]  # the files are 8 kHz: the page says so
    decoded = driver.execute_script(
        "return Object.values(window.listenState.buffers).map(b => [b.duration, b.sampleRate])"
    )
    assert len(decoded) == 3 and all(0.95 < duration <= 1.0 for duration, _ in decoded)
    assert answer_abx(driver, session_key(config, first), right=True) == 2 * PER_ARM
    driver.execute_script("localStorage.clear()")
    second = start_session(driver, server.url, "bob")
    assert answer_abx(driver, session_key(config, second), right=True) == 2 * PER_ARM
    assert driver.find_element("id", "done").is_displayed()
    assert severe_console(driver) == []

    section = listening_section(LocalStore(config.store), config, rows=[])
    assert section is not None
    for arm in ("c8", "c16"):
        stat = section["abx"]["arms"][arm]
        assert (stat["trials"], stat["correct"], stat["listeners"]) == (2 * PER_ARM, 2 * PER_ARM, 2)
        assert stat["verdict"] == "audible" and stat["p"] < 0.05
    told = next(s for s in section["verdict"] if s.startswith("Listeners could tell"))
    assert f"c8 ({2 * PER_ARM} of {2 * PER_ARM} correct, p " in told and "c16 (" in told


@pytest.mark.slow
def test_a_killed_server_keeps_every_acknowledged_answer_and_the_session_resumes(
    browser: Any, run: tuple[Config, Path]
) -> None:
    config, path = run
    driver = browser
    store = LocalStore(config.store)
    first = ListenServer(path)
    try:
        session_id = start_session(driver, first.url, "cleo")
        key = session_key(config, session_id)
        assert answer_abx(driver, key, right=False, count=3) == 3
        wait_for(driver, "return window.listenState.answered === 3 && window.listenState.loaded")
    finally:
        first.kill()
    log_key = answers.answers_key(RunLayout(config.run_id), session_id)
    stored = [json.loads(line) for line in store.read_text(log_key).splitlines()]
    assert [r["index"] for r in stored] == [0, 1, 2] and not any(r["correct"] for r in stored)

    second = ListenServer(path)
    try:
        driver.get(f"{second.url}?session={session_id}")
        label = wait_for(driver, "const b = document.getElementById('resume'); return !b.hidden && b.textContent")
        assert "cleo" in label and f"3 of {2 * PER_ARM} done" in label
        driver.find_element("id", "resume").click()
        wait_for(driver, "return window.listenState.loaded")
        assert driver.find_element("id", "progress").text == f"Trial 4 of {2 * PER_ARM}"
        assert answer_abx(driver, key, right=True) == 2 * PER_ARM - 3
    finally:
        second.stop()
    stored = [json.loads(line) for line in store.read_text(log_key).splitlines()]
    assert [r["index"] for r in stored] == list(range(2 * PER_ARM))
    assert len({r["trial"] for r in stored}) == 2 * PER_ARM


@pytest.mark.slow
def test_a_mushra_page_shows_its_scale_and_stores_every_rating(browser: Any, run: tuple[Config, Path]) -> None:
    config, path = run
    driver = browser
    server = ListenServer(path, "--test", "mushra")
    try:
        driver.execute_script("localStorage.clear()") if driver.current_url.startswith("http") else None
        session_id = start_session(driver, server.url, "dana")
        key = session_key(config, session_id)
        for index in range(len(key.trials)):
            wait_for(
                driver,
                f"return window.listenState.loaded && window.listenState.index === {index} && !window.listenState.busy",
            )
            scale = driver.execute_script(
                "return Array.from(document.querySelectorAll('.scale span')).map(s => s.textContent)"
            )
            assert scale == ["Bad", "Poor", "Fair", "Good", "Excellent"]
            sliders = driver.find_elements("css selector", "#ratings input")
            assert len(sliders) == 4  # hidden reference, anchor, c8, c16
            by_token = {slot.token: slot.condition for slot in key.trials[index].rated()}
            wanted = {"hidden_reference": 100, "anchor": 10, "c8": 40, "c16": 90}
            for slider in sliders:
                value = wanted[by_token[slider.get_attribute("data-id")]]
                driver.execute_script("arguments[0].value = arguments[1]", slider, value)
            driver.find_element("id", "submit-ratings").click()
        wait_for(driver, "return !document.getElementById('done').hidden")
    finally:
        server.stop()
    section = listening_section(LocalStore(config.store), config, rows=[])
    assert section is not None and section["mushra"] is not None
    conditions = section["mushra"]["conditions"]
    assert {name: c["median"] for name, c in conditions.items()} == {
        "hidden_reference": 100,
        "anchor": 10,
        "c8": 40,
        "c16": 90,
    }
    assert section["mushra"]["excluded"] == []
