"""The report with a listening test: new metric columns for every unit, the listening section and sentence."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from sd1job.layout import REPORT_HTML, RESULTS_CSV, RESULTS_JSON, SUMMARY_CSV, RunLayout
from sd1job.listen.server import ListeningTest
from sd1job.listen.stimuli import build_stimuli
from sd1job.perceptual import PERCEPTUAL_NAMES
from sd1job.stages import report
from sd1job.store import LocalStore
from tests.test_report import scored_run


def test_the_report_shows_metrics_beyond_esr_and_what_listeners_heard(tmp_path: Path) -> None:
    config = scored_run(tmp_path, listen__trials_per_arm=6)
    store = LocalStore(config.store)
    layout = RunLayout(config.run_id)
    report.write_report(config, store)
    rows = list(csv.DictReader(io.StringIO(store.read_text(layout.eval_file(RESULTS_CSV)))))
    assert all(float(row[name]) == float(row[name]) for row in rows for name in ("esr_aw", "mel"))  # set, not NaN
    assert all(row["loudness_diff"] != "" for row in rows)
    summary = list(csv.DictReader(io.StringIO(store.read_text(layout.eval_file(SUMMARY_CSV)))))
    assert all(name in summary[0] for name in PERCEPTUAL_NAMES)
    assert "listening-test" not in store.read_text(layout.eval_file(REPORT_HTML))  # nobody has listened yet

    test = ListeningTest(store, layout, build_stimuli(store, config), "abx", 6)
    for listener in ("ann", "bob"):  # ann hears every arm; bob hears only the stateful model
        session_id = test.start(listener)["session"]
        for trial in test.sessions[session_id].trials:
            right = listener == "ann" or trial.arm == "stateful"
            wrong = "A" if trial.correct == "B" else "B"
            test.answer(session_id, {"trial": trial.trial_id, "choice": trial.correct if right else wrong})
    assert report.is_finished(store, layout, config) is False  # answers make the report stale
    report.write_report(config, store)
    results = json.loads(store.read_text(layout.eval_file(RESULTS_JSON)))
    section = results["listening_test"]
    assert section["abx"]["arms"]["stateful"]["verdict"] == "audible"
    assert section["abx"]["arms"]["stateful"]["correct"] == 12
    assert set(section["correlations"]["abx_proportion_correct"]) == {
        "esr",
        "esr_pre",
        "stft",
        "esr_aw",
        "mel",
        "loudness_diff",
    }
    assert any(
        "Listeners could tell" in s and "stateful (12 of 12 correct" in s for s in results["statistics"]["verdict"]
    )
    page = store.read_text(layout.eval_file(REPORT_HTML))
    assert 'id="listening-test"' in page and "12 of 12 correct" in page and "esr_aw" in page
