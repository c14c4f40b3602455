"""The data stage end to end, on a local store and on the real S3 server."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sd1job import cli
from sd1job.config import Config
from sd1job.dataset import decode_arrays, load_split, load_training_audio
from sd1job.layout import RunLayout
from sd1job.stages.data import build_datasets, data_fingerprint, is_finished
from sd1job.store import LocalStore, Store, open_store
from tests.helpers import small_config, toy_dry, toy_pedal, write_pair, write_toy_recordings


def run_data(config: Config, store: Store, export: bool = False) -> dict:
    return build_datasets(config, store, export=export)


def layout_for(config: Config) -> RunLayout:
    return RunLayout(config.run_id)


def is_done(config: Config, store: Store) -> bool:
    return is_finished(store, layout_for(config), data_fingerprint(config.recordings, config.dataset, config.model))


def test_writes_audio_positions_and_manifest(tmp_path: Path) -> None:
    config = small_config(str(tmp_path))
    store = LocalStore(tmp_path)
    write_toy_recordings(store, config)
    manifest = run_data(config, store)
    layout = layout_for(config)
    dry, wet = load_training_audio(store, layout)
    assert len(dry) == len(wet) == manifest["train"]["samples"] == 24_000
    for context in config.dataset.contexts:
        split = load_split(store, layout, context)
        assert (len(split.train), len(split.val)) == (1_500, 500)
        assert manifest["contexts"][str(context)]["train"] == 1_500
        assert split.train.min() >= context - 1
    assert set(manifest["riffs"]) == {"battery", "ohwell"}
    assert manifest["train"]["latency_samples"] == 0
    assert is_done(config, store)


def test_same_config_gives_byte_identical_datasets(tmp_path: Path) -> None:
    stores = []
    for name in ("a", "b"):
        config = small_config(str(tmp_path / name))
        store = LocalStore(tmp_path / name)
        write_toy_recordings(store, config)
        run_data(config, store)
        stores.append(store)
    keys = [k for k in stores[0].list("runs") if not k.endswith("manifest.json")]
    assert keys
    for key in keys:
        assert stores[0].read_bytes(key) == stores[1].read_bytes(key), key


def test_targets_align_with_the_last_window_sample(tmp_path: Path) -> None:
    config = small_config(str(tmp_path))
    store = LocalStore(tmp_path)
    write_toy_recordings(store, config)
    run_data(config, store, export=True)
    layout = layout_for(config)
    dry, wet = load_training_audio(store, layout)
    arrays = decode_arrays(store.read_bytes(layout.export_arrays(16)), "arrays")
    split = load_split(store, layout, 16)
    assert arrays["x_train"].shape == (1_500, 16)
    t = split.train[0]
    np.testing.assert_array_equal(arrays["x_train"][0], dry[t - 15 : t + 1])
    assert arrays["y_train"][0] == wet[t]


def test_rerun_is_skipped_until_the_config_or_recordings_change(tmp_path: Path) -> None:
    config = small_config(str(tmp_path))
    store = LocalStore(tmp_path)
    write_toy_recordings(store, config)
    first = run_data(config, store)
    assert run_data(config, store)["build_seconds"] == first["build_seconds"]  # read back, not rebuilt
    changed = small_config(str(tmp_path), dataset__pairs=1000)
    assert not is_done(changed, store)
    dry = toy_dry(3.0, 8000, seed=9)
    write_pair(store, config.recordings.train.dry, config.recordings.train.wet, dry, toy_pedal(dry), 8000)
    assert not is_done(config, store)


def test_blocked_split_through_the_stage(tmp_path: Path) -> None:
    config = small_config(str(tmp_path), dataset__split="blocked")
    store = LocalStore(tmp_path)
    write_toy_recordings(store, config)
    run_data(config, store)
    split = load_split(store, layout_for(config), 16)
    assert split.train.max() < split.val.min() - 15


def test_latency_is_compensated_when_asked(tmp_path: Path) -> None:
    config = small_config(
        str(tmp_path), recordings={"riffs": ["battery"], "sample_rate": 8000, "compensate_latency": True}
    )
    store = LocalStore(tmp_path)
    write_toy_recordings(store, config)
    dry = toy_dry(3.0, 8000, seed=1)
    late_wet = np.concatenate([np.zeros(29, np.float32), toy_pedal(dry)])
    write_pair(store, config.recordings.train.dry, config.recordings.train.wet, dry, late_wet, 8000)
    manifest = run_data(config, store)
    assert manifest["train"]["latency_samples"] == 29
    assert manifest["train"]["latency_compensated"]
    assert any("compensated" in w for w in manifest["train"]["warnings"])
    aligned_dry, aligned_wet = load_training_audio(store, layout_for(config))
    np.testing.assert_allclose(aligned_wet, toy_pedal(aligned_dry), atol=1e-5)


def test_data_stage_on_s3(s3_bucket: str, tmp_path: Path) -> None:
    config = small_config(f"s3://{s3_bucket}/exp")
    store = open_store(config.store)
    write_toy_recordings(store, config)
    config_file = tmp_path / "c.yaml"
    config_file.write_text(config.to_yaml())
    assert cli.main(["data", "--config", str(config_file)]) == 0
    assert store.exists("runs/test-run/data/manifest.json")
    assert store.exists("runs/test-run/data/c8/positions.npz")
    local = LocalStore(tmp_path / "local")
    write_toy_recordings(local, config)
    run_data(small_config(str(tmp_path / "local")), local)
    assert store.read_bytes("runs/test-run/data/c8/positions.npz") == local.read_bytes(
        "runs/test-run/data/c8/positions.npz"
    )


def test_cli_reports_missing_recording_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_file = tmp_path / "c.yaml"
    config_file.write_text(small_config(str(tmp_path / "store")).to_yaml())
    assert cli.main(["data", "--config", str(config_file)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "d_train.wav: recording not found" in err
    assert "\n" not in err
    assert not (tmp_path / "store" / "runs").exists()


def test_cli_prints_the_unit_list_on_stdout_and_logs_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = small_config(str(tmp_path), train__repeats=2, model__kind=["windowed", "stateful"])
    write_toy_recordings(LocalStore(tmp_path), config, seconds=4.0)
    config_file = tmp_path / "c.yaml"
    config_file.write_text(config.to_yaml())
    for _ in range(2):  # built, then skipped: the same list either way
        assert cli.main(["data", "--config", str(config_file)]) == 0
        out = capsys.readouterr().out
        assert out.count("\n") == 1
        assert json.loads(out) == ["c8-s25", "c8-s26", "c16-s25", "c16-s26", "stateful-s25", "stateful-s26"]


def test_a_stateful_only_config_writes_no_window_positions(tmp_path: Path) -> None:
    config = small_config(str(tmp_path), model__kind="stateful")
    store = LocalStore(tmp_path)
    write_toy_recordings(store, config, seconds=4.0)
    manifest = run_data(config, store)
    assert manifest["contexts"] == {} and manifest["val_fraction"] == 0.25
    assert not store.list("runs/test-run/data/c8")
    assert store.exists(layout_for(config).audio)


def test_warnings_are_logged_only_once_every_check_passed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = small_config(str(tmp_path))
    store = LocalStore(tmp_path)
    write_toy_recordings(store, config)
    dry = toy_dry(3.0, 8000, seed=1)
    write_pair(store, config.recordings.train.dry, config.recordings.train.wet, dry + 0.05, toy_pedal(dry), 8000)
    store.delete("recordings/test/Wet/w_ohwell.wav")  # a later check fails
    with pytest.raises(Exception, match=r"w_ohwell\.wav: recording not found"):
        run_data(config, store)
    assert not [r for r in caplog.records if "DC offset" in r.getMessage()]
    write_toy_recordings(store, config)
    write_pair(store, config.recordings.train.dry, config.recordings.train.wet, dry + 0.05, toy_pedal(dry), 8000)
    run_data(config, store)
    assert [r for r in caplog.records if "DC offset" in r.getMessage()]
