"""The report stage: every unit's scores gathered into results, statistics, plots and a page that stands alone."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest

from sd1job import cli, scores
from sd1job.audio import decode_wav
from sd1job.config import Config
from sd1job.layout import REPORT_HTML, RESULTS_CSV, RESULTS_JSON, SUMMARY_CSV, RunLayout, riff_dry_key, riff_wet_key
from sd1job.stages import evaluate, report
from sd1job.stages.export import export_unit
from sd1job.store import LocalStore, open_store
from sd1job.units import Unit
from tests.test_evaluate import RIFF_SECONDS, config_file, make_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURES = ("esr_vs_context", "esr_vs_compute", "epoch_time_vs_context", "loss_curves", "waveforms", "spectra")


def scored_run(root: Path, store_url: str = "", **overrides: object) -> Config:
    """Two contexts x two seeds plus a stateful arm, every unit scored, the stateful units exported."""
    config = make_run(root, store_url=store_url, model__kind=["windowed", "stateful"], train__repeats=2, **overrides)
    store = open_store(config.store)
    evaluate.score_units(config, store, config.units(), explicit=True)
    for unit in config.units():
        if unit.kind == "stateful":
            export_unit(store, RunLayout(config.run_id), unit, config.recordings.sample_rate, config.run_id)
    return config


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, LocalStore]:
    root = tmp_path_factory.mktemp("report")
    config = scored_run(root)
    assert cli.main(["report", "-q", "--config", config_file(config, root)]) == 0
    return config, LocalStore(config.store)


def page_references(page: str) -> list[str]:
    """Every relative src/href of a page (anchors and data: URIs left out), URL-decoded."""
    return [unquote(ref) for ref in re.findall(r'(?:src|href)="([^"#:]+)"', page)]


def test_results_have_one_row_per_unit_and_riff_with_a_seed_column(reported: tuple[Config, LocalStore]) -> None:
    config, store = reported
    layout = RunLayout(config.run_id)
    rows = list(csv.DictReader(io.StringIO(store.read_text(layout.eval_file(RESULTS_CSV)))))
    assert list(rows[0]) == list(report.ROW_COLUMNS)
    expected = {(u.name, r) for u in config.units() for r in config.recordings.riffs}
    assert {(r["unit"], r["riff"]) for r in rows} == expected and len(rows) == len(expected) == 12
    assert {r["seed"] for r in rows} == {"25", "26"}
    windowed = [r for r in rows if r["kind"] == "windowed"]
    assert all(float(r["context_ms"]) == pytest.approx(1000 * int(r["context"]) / 8000) for r in windowed)
    assert all(r["context"] == "" for r in rows if r["kind"] == "stateful")
    for row in rows:  # each row is that unit's scores.json entry
        document = store.read_json(layout.scores(next(u for u in config.units() if u.name == row["unit"])))
        entry = next(e for e in document["rows"] if e["riff"] == row["riff"])
        assert float(row["esr"]) == entry["esr"] and float(row["stft"]) == entry["stft"]


def test_summary_has_one_row_per_arm_with_its_interval_and_test(reported: tuple[Config, LocalStore]) -> None:
    config, store = reported
    layout = RunLayout(config.run_id)
    results = json.loads(store.read_text(layout.eval_file(RESULTS_JSON)))
    summary = results["summary"]
    assert [s["arm"] for s in summary] == ["c4", "c12", "stateful"]
    statistics = {a["arm"]: a for a in results["statistics"]["arms"]}
    for entry in summary:
        mine = [r for r in results["rows"] if r["unit"].startswith(entry["arm"] + "-")]
        assert entry["units"] == 2 and entry["esr"] == pytest.approx(np.mean([r["esr"] for r in mine]))
        assert entry["esr_low"] < entry["esr_gmean"] < entry["esr_high"]
        assert entry["esr_gmean"] == pytest.approx(statistics[entry["arm"]]["interval"]["mean"])
        assert entry["stft"] == pytest.approx(np.mean([r["stft"] for r in mine]))
        assert entry["seconds_per_epoch_sd"] == pytest.approx(0.0) and entry["epochs_run"] == 6
        assert entry["test_over_val"] == pytest.approx(entry["esr_gmean"] / entry["val_esr"])
    best = results["statistics"]["best"]
    assert best in {"c4", "c12"}
    other = next(s for s in summary if s["kind"] == "windowed" and s["arm"] != best)
    assert other["p_worse_than_best"] is not None and other["significantly_worse"] in (True, False)
    assert results["statistics"]["verdict"] and results["statistics"]["stateful"]["against"] == best
    csv_rows = list(csv.DictReader(io.StringIO(store.read_text(layout.eval_file(SUMMARY_CSV)))))
    assert [r["arm"] for r in csv_rows] == ["c4", "c12", "stateful"] and list(csv_rows[0]) == list(
        report.SUMMARY_COLUMNS
    )


def test_reference_scores_the_dry_signal_against_the_wet(reported: tuple[Config, LocalStore]) -> None:
    config, store = reported
    results = json.loads(store.read_text(RunLayout(config.run_id).eval_file(RESULTS_JSON)))
    for entry in results["reference"]:
        dry = decode_wav(store.read_bytes(riff_dry_key(config.recordings.test_dir, entry["riff"])), "d").samples
        wet = decode_wav(store.read_bytes(riff_wet_key(config.recordings.test_dir, entry["riff"])), "w").samples
        assert entry["esr_dry_vs_wet"] == pytest.approx(scores.esr(wet, dry))
        assert entry["seconds"] == pytest.approx(RIFF_SECONDS)


def test_figures_are_non_empty_pngs(reported: tuple[Config, LocalStore]) -> None:
    config, store = reported
    layout = RunLayout(config.run_id)
    for name in FIGURES:
        data = store.read_bytes(layout.eval_file(f"{name}.png"))
        assert data.startswith(PNG_SIGNATURE), name
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert width >= 400 and height >= 200, name
        assert len(data) > 10_000, name  # a blank canvas of that size compresses to a few kB


def test_the_page_shows_the_verdict_first_and_references_only_files_that_exist(
    reported: tuple[Config, LocalStore],
) -> None:
    config, store = reported
    layout = RunLayout(config.run_id)
    page = store.read_text(layout.eval_file(REPORT_HTML))
    results = json.loads(store.read_text(layout.eval_file(RESULTS_JSON)))
    verdict = results["statistics"]["verdict"][0]
    assert page.index('id="verdict"') < page.index('id="results"')
    assert verdict.replace("'", "&#39;") in page
    references = page_references(page)
    # 2 riffs x (dry, wet, one seed of each of the 3 arms), each a player and a link
    assert len([r for r in references if r.endswith(".wav")]) == 2 * 2 * 5
    eval_dir = Path(store.url(layout.eval_dir))
    for reference in references:
        assert (eval_dir / reference).is_file(), reference
    assert "exports/stateful-s25.nam" in references and "exports/stateful-s26.nam" in references
    size = len(store.read_bytes(layout.export(Unit("stateful", None, 25))))
    assert f"{size / 1024:.1f} KiB" in page
    assert "training recording" in page and "run_id: test-run" in page


def test_on_s3_the_eval_prefix_alone_makes_a_working_page(s3_bucket: str, tmp_path: Path) -> None:
    config = scored_run(tmp_path, store_url=f"s3://{s3_bucket}/team/sd1", contexts=(4,))
    store = open_store(config.store)
    report.write_report(config, store)
    eval_dir = RunLayout(config.run_id).eval_dir
    download = tmp_path / "download"
    for key in store.list(eval_dir):  # what `aws s3 cp --recursive s3://.../eval/ .` would fetch
        target = download / key[len(eval_dir) + 1 :]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(store.read_bytes(key))
    page = (download / REPORT_HTML).read_text()
    references = page_references(page)
    assert len([r for r in references if r.endswith(".png")]) == len(FIGURES)
    for reference in references:
        assert (download / reference).is_file(), reference
    assert f"s3://{s3_bucket}/team/sd1/runs/test-run" in page


def test_a_missing_unit_is_listed_and_the_rest_reported(tmp_path: Path) -> None:
    config = scored_run(tmp_path)
    store = LocalStore(config.store)
    layout = RunLayout(config.run_id)
    store.delete(layout.scores(Unit("windowed", 12, 26)))  # trained, not scored
    store.delete_prefix(layout.unit_dir(Unit("windowed", 4, 26)))  # never trained
    results = report.write_report(config, store)
    assert results is not None
    assert {r["unit"] for r in results["rows"]} == {"c4-s25", "c12-s25", "stateful-s25", "stateful-s26"}
    assert results["missing"] == ["c4-s26: not trained", "c12-s26: trained but not scored"]
    assert [a["seeds"] for a in results["statistics"]["arms"]] == [[25], [25], [25, 26]]
    page = store.read_text(layout.eval_file(REPORT_HTML))
    assert "Not in this report" in page and "c12-s26: trained but not scored" in page


def test_an_up_to_date_report_is_skipped_and_a_new_score_redoes_it(tmp_path: Path) -> None:
    config = scored_run(tmp_path, contexts=(4,))
    store = LocalStore(config.store)
    layout = RunLayout(config.run_id)
    assert report.write_report(config, store) is not None
    written = store.read_bytes(layout.eval_file(RESULTS_JSON))
    assert report.write_report(config, store) is None
    assert store.read_bytes(layout.eval_file(RESULTS_JSON)) == written
    unit = Unit("windowed", 4, 25)
    evaluate.score_units(config, store, [unit], explicit=True, force=True)  # new timings: new scores.json
    assert not report.is_finished(store, layout, config)
    assert report.write_report(config, store) is not None


def test_nothing_scored_is_a_one_line_error_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = make_run(tmp_path)
    assert cli.main(["report", "--config", config_file(config, tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: no scored unit in") and "c4-s25: trained but not scored" in error
    assert "\n" not in error
    assert not LocalStore(config.store).list(RunLayout(config.run_id).eval_dir)
