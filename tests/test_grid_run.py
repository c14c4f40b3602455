"""A grid over recording sets and a training field, run stage by stage as the pods run it: one dataset per
recording set, each unit trained on its own set and scored on its own riffs, the report per arm."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from sd1job import cli
from sd1job.audio import decode_wav
from sd1job.layout import RESULTS_JSON, SUMMARY_CSV, RunLayout
from sd1job.scores import esr
from sd1job.store import LocalStore
from tests.helpers import small_config, toy_dry, write_pair

SETS = {"Soft": 2.0, "Hard": 10.0}  # the clipper's drive per recording set
AXES = {"recordings.set": list(SETS), "train.lstm_units": [4, 8]}


def _write_set(store: LocalStore, name: str, drive: float, riffs: list[str], rate: int) -> None:
    def pedal(dry: np.ndarray) -> np.ndarray:  # an asymmetric clipper with a little memory
        smoothed = np.convolve(dry, [0.6, 0.3, 0.1])[: len(dry)]
        return (0.5 * np.tanh(drive * smoothed + 0.2) - 0.5 * np.tanh(0.2)).astype(np.float32)

    dry = toy_dry(3.0, rate, seed=1)  # the same guitar through the pedal at each setting
    write_pair(store, f"sets/{name}/dry.wav", f"sets/{name}/wet.wav", dry, pedal(dry), rate)
    for index, riff in enumerate(riffs):
        riff_dry = toy_dry(0.5, rate, seed=100 + index)
        test = f"sets/{name}/test"
        write_pair(store, f"{test}/Dry/d_{riff}.wav", f"{test}/Wet/w_{riff}.wav", riff_dry, pedal(riff_dry), rate)


@pytest.mark.slow
def test_a_recording_set_grid_runs_data_train_eval_report_per_arm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    riffs = ["battery", "ohwell"]
    sets = {
        name: {"train": {"dry": f"sets/{name}/dry.wav", "wet": f"sets/{name}/wet.wav"}, "test_dir": f"sets/{name}/test"}
        for name in SETS
    }
    config = small_config(
        str(tmp_path / "store"),
        recordings={"riffs": riffs, "sample_rate": 8000, "sets": sets},
        dataset__contexts=[8],
        train={"epochs": 1, "patience": 1, "batch_size": 64, "learning_rate": 0.01},
        sweep={"grid": AXES},
    )
    store = LocalStore(config.store)
    for name, drive in SETS.items():
        _write_set(store, name, drive, riffs, 8000)
    config_path = tmp_path / "grid.yaml"
    config_path.write_text(config.to_yaml())
    args = ["--config", str(config_path), "-q"]

    assert cli.main(["data", *args]) == 0
    units = json.loads(capsys.readouterr().out)  # what the Argo fan-out takes
    assert units == ["Soft_lu4-c8-s25", "Soft_lu8-c8-s25", "Hard_lu4-c8-s25", "Hard_lu8-c8-s25"]
    layout = RunLayout(config.run_id)
    for name in SETS:
        manifest = store.read_json(RunLayout(config.run_id, name).manifest)
        assert manifest["recording_set"] == name and manifest["data_variant"] == name
    for unit in units:
        assert cli.main(["train", *args, "--unit", unit]) == 0
    for unit in units:
        assert cli.main(["eval", *args, "--unit", unit]) == 0
    assert cli.main(["report", *args]) == 0

    by_unit = {u.name: u for u in config.units()}
    histories = {name: store.read_json(layout.history(by_unit[name])) for name in units}
    assert [histories[name]["lstm_units"] for name in units] == [4, 8, 4, 8]
    # each set's trivial reference is its own training data's: a harder clipper is further from its dry signal
    soft, hard = (histories[f"{name}_lu4-c8-s25"]["reference_val_esr"] for name in SETS)
    assert soft < hard
    for name in SETS:  # each unit was scored against its own set's wet riff, not another set's
        unit = by_unit[f"{name}_lu8-c8-s25"]
        scored = next(r["esr"] for r in store.read_json(layout.scores(unit))["rows"] if r["riff"] == "battery")
        output = decode_wav(store.read_bytes(layout.unit_output(unit, "battery")), "output", 8000).samples
        wets = {s: decode_wav(store.read_bytes(f"sets/{s}/test/Wet/w_battery.wav"), s, 8000).samples for s in SETS}
        assert scored == pytest.approx(esr(wets[name], output), rel=0.05)
        assert all(esr(wet, output) > 1.5 * scored for other, wet in wets.items() if other != name)
    reference = store.read_json(layout.eval_file(RESULTS_JSON))["reference"]
    assert [(r["recording_set"], r["riff"]) for r in reference] == [(s, r) for s in SETS for r in riffs]
    soft_wet, hard_wet = (
        store.read_bytes(layout.eval_file(layout.report_wet("battery", name))) for name in SETS
    )  # the page plays each set's own pedal
    assert soft_wet != hard_wet
    rows = list(csv.DictReader(io.StringIO(store.read_text(layout.eval_file(SUMMARY_CSV)))))
    assert [(r["recordings.set"], r["train.lstm_units"]) for r in rows] == [
        ("Soft", "4"),
        ("Soft", "8"),
        ("Hard", "4"),
        ("Hard", "8"),
    ]
    # The listening test hears each arm against its own pedal: one recording set at a time.
    from sd1job.listen.stimuli import StimulusError, build_stimuli

    with pytest.raises(StimulusError, match="--set NAME"):
        build_stimuli(store, config)
    stimuli = build_stimuli(store, config, "Hard")
    assert sorted(stimuli.units.values()) == ["Hard_lu4-c8-s25", "Hard_lu8-c8-s25"]
    with pytest.raises(StimulusError, match="--set Mid: not a recording set"):
        build_stimuli(store, config, "Mid")
    page = store.read_text(layout.eval_file("report.html"))
    assert "No data manifest" not in page
    assert all(f"training recording ({name})" in page for name in SETS)  # each set's recording checks
