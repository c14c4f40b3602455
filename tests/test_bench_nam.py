"""bench-nam's pure parts: the split both tools read, the models, the table (no PyTorch, no training)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from bench import bench_nam
from bench.nam_compare import (
    HEADLINE_PAIRS,
    MODELS,
    RECIPES,
    capture_split,
    markdown_table,
    models_named,
    recipe_model_name,
    recipes_named,
    summarise,
)
from sd1job.audio import decode_wav
from sd1job.config import StatefulConfig
from sd1job.dataset import blocked_split, stateful_segments
from sd1job.units import Unit


def test_split_is_captures_holdout_then_sd1jobs_blocked_cut() -> None:
    split = capture_split(1_440_000, 48_000, test_fraction=0.15, val_fraction=0.25)
    # sd1job capture: cut = round(len * (1 - test_fraction)); the rest is training recording
    assert split.test_start == round(1_440_000 * 0.85) == 1_224_000
    ranges = split.ranges()
    assert ranges == {"train": (0, 918_000), "validation": (918_000, 1_224_000), "test": (1_224_000, 1_440_000)}
    assert split.seconds() == {"train": 19.125, "validation": 6.375, "test": 4.5}
    # sd1job's own cut of a training recording of test_start samples lands on the same sample
    assert stateful_segments(split.test_start, 24_000, 0.25, 1000).val_start == split.validation_start
    windows = blocked_split(split.test_start, 48, 2000, 0.25, seed=1)
    assert windows.train.max() < split.validation_start <= windows.val.min() - 47


@pytest.mark.parametrize("length", [10, 1001, 44_100 * 5 + 3])
def test_split_ranges_tile_the_pair_and_refuse_too_short(length: int) -> None:
    split = capture_split(length, 44_100)
    starts_stops = list(split.ranges().values())
    assert starts_stops[0][0] == 0 and starts_stops[-1][1] == length
    assert all(a[1] == b[0] for a, b in itertools.pairwise(starts_stops))
    assert all(stop > start for start, stop in starts_stops)
    with pytest.raises(ValueError, match="too few"):
        capture_split(2, 44_100)
    with pytest.raises(ValueError, match="fractions"):
        capture_split(length, 44_100, test_fraction=1.0)


def test_models_cover_the_issue_and_names_are_checked() -> None:
    names = {m.name for m in MODELS}
    assert {"nam-wavenet-standard", "nam-wavenet-lite", "nam-wavenet-feather", "nam-lstm-64"} <= names
    assert {"sd1job-wavenet-standard", "sd1job-stateful-64", "sd1job-windowed-1ms", "sd1job-windowed-10ms"} <= names
    assert all(ours in names and theirs in names for ours, theirs in HEADLINE_PAIRS)
    assert [m.name for m in models_named(["sd1job-stateful-64", "nam-lstm-64"])] == [
        "nam-lstm-64",
        "sd1job-stateful-64",
    ]
    with pytest.raises(ValueError, match="nam-lstm-32"):
        models_named(["nam-lstm-32"])
    by_name = {m.name: m for m in MODELS}
    assert bench_nam.sd1job_unit(by_name["sd1job-windowed-10ms"], 26, 48_000) == Unit("windowed", 480, 26)
    assert bench_nam.sd1job_unit(by_name["sd1job-windowed-1ms"], 25, 44_100) == Unit("windowed", 44, 25)
    assert bench_nam.sd1job_unit(by_name["sd1job-wavenet-standard"], 25, 48_000) == Unit(
        "wavenet", None, 25, "standard"
    )


def _rows(model: str, tool: str, esrs: list[float], parameters: int = 1000) -> list[dict]:
    return [
        {"model": model, "tool": tool, "architecture": model, "seed": 25 + i, "esr": e, "esr_pre": 2 * e,
         "parameters": parameters, "train_seconds": 150.0 + i, "epochs": 10 + i}
        for i, e in enumerate(esrs)
    ]  # fmt: skip


def test_table_intervals_best_and_seed_noise() -> None:
    rows = (
        _rows("nam-wavenet-standard", "NAM", [0.078, 0.080, 0.076])
        + _rows("sd1job-wavenet-standard", "sd1job", [0.079, 0.075, 0.081])  # the same within noise
        + _rows("nam-lstm-64", "NAM", [0.184, 0.180, 0.188])
        + _rows("sd1job-stateful-64", "sd1job", [0.234, 0.236, 0.232])  # clearly worse
        + _rows("sd1job-windowed-1ms", "sd1job", [0.2])
        + _rows("sd1job-windowed-10ms", "sd1job", [float("nan"), 0.126])
    )
    summary = summarise(rows)
    models = {entry["model"]: entry for entry in summary["models"]}
    standard = models["nam-wavenet-standard"]
    assert standard["esr"]["mean"] == pytest.approx(math.exp(np.mean(np.log([0.078, 0.080, 0.076]))))
    assert standard["esr"]["low"] < standard["esr"]["mean"] < standard["esr"]["high"]
    assert standard["esr_pre"]["mean"] == pytest.approx(2 * standard["esr"]["mean"])
    assert standard["seeds"] == 3 and standard["train_seconds"] == pytest.approx(151.0) and standard["epochs"] == 11
    assert summary["best"] in {"nam-wavenet-standard", "sd1job-wavenet-standard"}
    assert models["sd1job-stateful-64"]["vs_best"].startswith("worse")
    assert models["sd1job-windowed-1ms"]["vs_best"] == "untested (one seed)"
    assert models["sd1job-windowed-1ms"]["esr"]["low"] is None
    assert models["sd1job-windowed-10ms"]["seeds"] == 1 and models["sd1job-windowed-10ms"]["failed"] == 1
    verdicts = {c["sd1job"]: c["verdict"] for c in summary["comparisons"]}
    assert verdicts == {"sd1job-wavenet-standard": "within seed noise", "sd1job-stateful-64": "sd1job worse"}
    change = next(c for c in summary["comparisons"] if c["sd1job"] == "sd1job-stateful-64")["change_percent"]
    assert change["mean"] == pytest.approx(
        100 * (0.234 / math.exp(np.mean(np.log([0.184, 0.180, 0.188]))) - 1), rel=1e-3
    )
    table = markdown_table(summary)
    lines = table.splitlines()
    assert sum(line.startswith("| ") for line in lines) == 1 + 6  # the header, then one line per model
    assert lines[-3] == "" and lines[-2].startswith("- sd1job-wavenet-standard vs nam-wavenet-standard: ESR ")
    assert "| LSTM(64)" not in table and "sd1job-stateful-64 vs nam-lstm-64: ESR +27 %" in table
    assert "(1 failed)" in table and "within seed noise" in table


def test_a_model_that_failed_everywhere_is_listed_not_tested() -> None:
    rows = [
        *_rows("nam-lstm-64", "NAM", [0.2, 0.21]),
        {"model": "sd1job-stateful-64", "tool": "sd1job", "architecture": "x", "seed": 25, "esr": float("nan"),
         "esr_pre": float("nan"), "parameters": None},
    ]  # fmt: skip
    summary = summarise(rows)
    failed = next(e for e in summary["models"] if e["model"] == "sd1job-stateful-64")
    assert failed["vs_best"] == "failed" and "esr" not in failed and summary["comparisons"] == []
    assert "| x | sd1job | 0 (1 failed) | - |" in markdown_table(summary)


def test_score_uses_sd1jobs_esr_and_marks_a_missing_prediction(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    wet = rng.standard_normal(1000).astype(np.float32)
    prediction = wet + 0.1 * rng.standard_normal(1000).astype(np.float32)
    np.save(tmp_path / "p.npy", prediction)
    row = bench_nam.score({"model": "m", "prediction": str(tmp_path / "p.npy")}, wet)
    expected = np.sum((wet.astype(np.float64) - prediction) ** 2) / np.sum(wet.astype(np.float64) ** 2)
    assert row["esr"] == pytest.approx(expected, rel=1e-6) and "prediction" not in row
    assert 0 < row["esr"] < row["esr_pre"]  # the error is white, the pre-emphasis weighs its highs
    missing = bench_nam.score({"model": "m", "prediction": str(tmp_path / "none.npy")}, wet)
    assert math.isnan(missing["esr"]) and math.isnan(missing["esr_pre"])
    diverged = bench_nam.score({"model": "m", "prediction": str(tmp_path / "p.npy"), "outcome": "diverged"}, wet)
    assert math.isnan(diverged["esr"]) and diverged["failed"] == "diverged"  # a failure, not a point of noise
    assert diverged["esr_of_failed"]["esr"] == pytest.approx(expected, rel=1e-6)
    summary = summarise([{**diverged, "tool": "sd1job", "architecture": "m", "seed": 25}])
    assert summary["models"][0]["failed"] == 1 and summary["models"][0]["seeds"] == 0


def test_split_files_hold_the_same_samples_for_both_tools(tmp_path: Path) -> None:
    rate = 8000
    dry = np.linspace(-0.5, 0.5, 4 * rate, dtype=np.float32)
    wet = np.tanh(3 * dry).astype(np.float32)
    split = capture_split(len(dry), rate)
    bench_nam.write_split(split, dry, wet, tmp_path, "toy")
    v, t = split.validation_start, split.test_start

    def read(path: Path) -> np.ndarray:
        return decode_wav(path.read_bytes(), str(path)).samples

    np.testing.assert_array_equal(read(tmp_path / "train_dry.wav"), dry[:v])
    np.testing.assert_array_equal(read(tmp_path / "validation_wet.wav"), wet[v:t])
    np.testing.assert_array_equal(np.load(tmp_path / "test_wet.npy"), wet[t:])
    store = tmp_path / "sd1job-store" / "recordings"
    np.testing.assert_array_equal(read(store / "train" / "Wet" / "w_train.wav"), wet[:t])
    np.testing.assert_array_equal(read(store / "test" / "Dry" / "d_holdout.wav"), dry[t:])
    bench_nam.write_split(split, dry, wet, tmp_path, "toy")  # the same split again: reused
    with pytest.raises(SystemExit, match="another split"):
        bench_nam.write_split(capture_split(len(dry) - 1, rate), dry[:-1], wet[:-1], tmp_path, "toy")


def test_sd1job_runs_the_capture_profile_on_the_split_with_one_thread_and_the_budget(tmp_path: Path) -> None:
    profile = Path(bench_nam.REPO) / "configs" / "capture.yaml"
    split = capture_split(1_440_000, 48_000)
    models = models_named(["sd1job-windowed-10ms", "sd1job-wavenet-standard", "sd1job-stateful-64", "nam-lstm-64"])
    config = bench_nam.sd1job_config(profile, split, tmp_path / "store", 150.0, [25, 26, 27], models)
    assert config.dataset.split == "blocked" and config.dataset.contexts == [480]
    assert config.train.threads == 1 and config.train.max_train_seconds == 150.0
    assert (config.train.seed, config.train.repeats) == (25, 3)
    assert config.model.kind == ["windowed", "stateful", "wavenet"] and config.model.wavenet.presets == ["standard"]
    assert config.recordings.riffs == ["holdout"] and config.recordings.sample_rate == 48_000
    names = {u.name for u in config.units()}
    assert {"c480-s25", "stateful-s27", "wavenet-standard-s26"} <= names and len(names) == 9


def test_recipes_override_the_profile_only_for_the_kinds_they_change(tmp_path: Path) -> None:
    profile = Path(bench_nam.REPO) / "configs" / "capture.yaml"
    split = capture_split(1_440_000, 48_000)
    models = models_named(["sd1job-windowed-10ms", "sd1job-wavenet-standard", "sd1job-stateful-64"])
    segments = RECIPES["nam-segments"]
    assert [m.name for m in bench_nam.recipe_models(segments, models)] == ["sd1job-stateful-64"]
    chosen = bench_nam.recipe_models(segments, models)
    config = bench_nam.sd1job_config(profile, split, tmp_path / "store", 150.0, [25], chosen, segments)
    stateful = config.model.stateful
    assert (stateful.warmup_samples, stateful.tbptt_samples, stateful.batch_size) == (4096, 512, 16)
    assert (stateful.pre_emphasis_weight, stateful.mrstft_weight) == (1.0, 2.0e-4)
    assert stateful.lr_decay == 0.995 and config.model.kind == ["stateful"]
    assert config.run_id == "bench-nam-nam-segments"
    plain = bench_nam.sd1job_config(profile, split, tmp_path / "store", 150.0, [25], models)
    assert plain.model.stateful == StatefulConfig() and plain.run_id == "bench-nam-profile"  # the defaults
    literature = bench_nam.sd1job_config(profile, split, tmp_path / "store", 150.0, [25], chosen, RECIPES["literature"])
    old = literature.model.stateful  # the settings before the measurement chose the defaults
    assert (old.segment_seconds, old.warmup_samples, old.tbptt_samples, old.batch_size) == (0.5, 1000, 2048, 50)
    assert old.lr_decay is None and old.pre_emphasis_weight == old.mrstft_weight == 0.0
    assert [r.name for r in recipes_named(None)] == ["profile"]
    with pytest.raises(ValueError, match="nam-everything"):
        recipes_named(["nam-loss", "nam-everything"])


def test_each_recipe_is_compared_with_the_profiles_model() -> None:
    rows = (
        _rows("sd1job-stateful-64", "sd1job", [0.234, 0.236, 0.232])
        + _rows(recipe_model_name("sd1job-stateful-64", "nam-loss"), "sd1job", [0.150, 0.155, 0.145])
        + _rows(recipe_model_name("sd1job-stateful-64", "nam-segments"), "sd1job", [0.230, 0.250, 0.220])
        + _rows("nam-lstm-64", "NAM", [0.184, 0.180, 0.188])
    )
    summary = summarise(rows)
    verdicts = {c["sd1job"]: c["verdict"] for c in summary["recipes"]}
    assert verdicts == {
        "sd1job-stateful-64+nam-loss": "sd1job-stateful-64+nam-loss better",
        "sd1job-stateful-64+nam-segments": "within seed noise",
    }
    assert all(c["nam"] == "sd1job-stateful-64" for c in summary["recipes"])
    assert "- sd1job-stateful-64+nam-loss vs sd1job-stateful-64: ESR -36 %" in markdown_table(summary)
