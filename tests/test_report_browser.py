"""The report in a real headless browser (Debian's chromium, driven by selenium).

The page is opened from the store's directory with ``file://``: no console errors, every image
decoded, every audio player's metadata loaded. A screenshot is kept at ``artifacts/report.png``.
Needs ``chromium`` and ``chromium-driver`` (``apt-get install -y chromium chromium-driver``).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sd1job.layout import REPORT_HTML, RunLayout
from sd1job.stages import report
from sd1job.store import LocalStore
from tests.test_report import FIGURES, scored_run

REPO_ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO_ROOT / "artifacts" / "report.png"
CHROMIUM = ("/usr/bin/chromium", "chromium")
CHROMEDRIVER = ("/usr/bin/chromedriver", "chromedriver")
CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--window-size=1300,1000",
)
LOAD_TIMEOUT = 20.0

# What the page reports about its media once loaded: one entry per <img> and <audio>.
MEDIA_STATE = """
return {
  images: Array.from(document.images).map(i => ({src: i.getAttribute('src'), complete: i.complete,
                                                  width: i.naturalWidth})),
  audio: Array.from(document.querySelectorAll('audio')).map(a => ({src: a.getAttribute('src'),
          ready: a.readyState, duration: a.duration, error: a.error ? a.error.code : null})),
};
"""


def _find(candidates: tuple[str, ...]) -> str:
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return found
    pytest.fail(
        f"{candidates[0]} is not installed: run `apt-get update && apt-get install -y chromium chromium-driver`",
        pytrace=False,
    )


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A headless chromium with a fresh profile, logging its console."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _find(CHROMIUM)
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=_find(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(LOAD_TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()


def open_and_wait(driver: Any, path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Open a page from disk, wait until its media settle; return their states and the SEVERE console entries."""
    driver.get_log("browser")  # drop anything logged before this page
    driver.get(path.as_uri())
    deadline = time.monotonic() + LOAD_TIMEOUT
    while True:
        state = driver.execute_script(MEDIA_STATE)
        settled = all(i["complete"] for i in state["images"]) and all(
            a["ready"] >= 1 or a["error"] is not None for a in state["audio"]
        )
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    severe = [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]
    return state, severe


def problems(state: dict[str, Any], severe: list[dict[str, Any]]) -> list[str]:
    """Everything wrong with a loaded page: console errors, undecoded images, audio without metadata."""
    found = [f"console: {entry['message']}" for entry in severe]
    found += [f"image {i['src']} not decoded" for i in state["images"] if not i["width"]]
    found += [
        f"audio {a['src']}: readyState {a['ready']}, duration {a['duration']}, error {a['error']}"
        for a in state["audio"]
        if not (a["ready"] >= 1 and a["duration"] and a["duration"] > 0)
    ]
    return found


@pytest.mark.slow
def test_report_loads_cleanly_in_chromium(browser: Any, tmp_path: Path) -> None:
    config = scored_run(tmp_path)
    store = LocalStore(config.store)
    report.write_report(config, store)
    page = Path(store.url(RunLayout(config.run_id).eval_file(REPORT_HTML)))

    state, severe = open_and_wait(browser, page)

    assert problems(state, severe) == []
    assert len(state["images"]) == len(FIGURES)
    assert len(state["audio"]) == 2 * (2 + 3)  # riffs x (dry, wet, c4, c12, stateful)
    riff_seconds = {round(a["duration"], 2) for a in state["audio"]}
    assert riff_seconds == {0.3}
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1300, min(int(height) + 100, 16000))
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000


@pytest.mark.slow
def test_the_browser_check_catches_a_broken_page(browser: Any, tmp_path: Path) -> None:
    """The checks above can fail: a missing image, a missing audio file and a script error are all seen."""
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body>'
        '<img src="missing.png"><audio preload="metadata" src="missing.wav"></audio>'
        "<script>undefinedFunction();</script></body></html>"
    )
    state, severe = open_and_wait(browser, page)
    found = problems(state, severe)
    assert any("image missing.png" in p for p in found)
    assert any("audio missing.wav" in p for p in found)
    assert any("undefinedFunction" in p for p in found)
