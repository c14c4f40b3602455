"""The config: defaults are the seed's, unknown keys and wrong types are refused, env overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sd1job.config import SEED_CONTEXTS, SEED_RIFFS, Config, ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults_are_the_seed_values() -> None:
    config = load_config(None)
    assert config.dataset.contexts == SEED_CONTEXTS == [44 * k for k in range(1, 11)]
    assert config.recordings.riffs == SEED_RIFFS
    assert (config.dataset.pairs, config.dataset.val_fraction, config.dataset.seed) == (100_000, 0.25, 25)
    train = config.train
    assert (train.lstm_units, train.learning_rate, train.batch_size, train.epochs, train.patience, train.seed) == (
        64,
        0.001,
        64,
        100,
        15,
        25,
    )
    assert config.recordings.sample_rate == 44100
    assert config.dataset.split == "random"
    assert config.eval.batch_size == 4096
    assert config.metrics.pushgateway is None and config.metrics.port == 0


def test_good_file_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "run_id: r1\ntrain: {epochs: 7}\ndataset: {split: blocked}\n"))
    assert config.run_id == "r1" and config.train.epochs == 7 and config.dataset.split == "blocked"
    assert config.train.patience == 15


def test_shipped_profiles_validate() -> None:
    for path in sorted((REPO / "configs").glob("*.yaml")):
        assert isinstance(load_config(path), Config)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("trian: {epochs: 3}\n", "trian: unknown key"),
        ("train: {epoch: 3}\n", "train.epoch: unknown key"),
        ("train: {epochs: many}\n", "train.epochs"),
        ("dataset: {contexts: [44, 0]}\n", "dataset.contexts"),
        ("dataset: {contexts: [-44]}\n", "dataset.contexts"),
        ("dataset: {val_fraction: 1.0}\n", "dataset.val_fraction"),
        ("dataset: {val_fraction: 0}\n", "dataset.val_fraction"),
        ("dataset: {split: sideways}\n", "dataset.split"),
        ("store: ftp://host/x\n", "unknown store scheme"),
        ("run_id: ../escape\n", "run_id"),
        ("eval: {waveform_riff: nope}\n", "waveform_riff"),
        ("- just\n- a list\n", "must be a YAML mapping"),
        ("train: {epochs: [\n", "not valid YAML"),
    ],
)
def test_bad_config_is_one_line_naming_the_field(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    message = str(caught.value)
    assert needle in message
    assert "\n" not in message
    assert str(tmp_path / "config.yaml") in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "train: {epochs: 7, patience: 3}\nstore: /data\n")
    monkeypatch.setenv("SD1JOB_TRAIN__EPOCHS", "5")
    monkeypatch.setenv("SD1JOB_STORE", "s3://bucket/prefix")
    monkeypatch.setenv("SD1JOB_DATASET__CONTEXTS", "[88, 44]")
    config = load_config(path)
    assert config.train.epochs == 5
    assert config.train.patience == 3
    assert config.store == "s3://bucket/prefix"
    assert config.dataset.contexts == [44, 88]


def test_bad_environment_value_names_the_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SD1JOB_TRAIN__EPOCHS", "-1")
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        load_config(write(tmp_path, "{}\n"))


def test_config_round_trips_through_yaml(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "run_id: r2\ndataset: {pairs: 500}\n"))
    again = load_config(write(tmp_path, config.to_yaml()))
    assert again == config


def test_units_come_from_kinds_contexts_and_repeats() -> None:
    from sd1job.config import config_from_mapping

    config = config_from_mapping(
        {"dataset": {"contexts": [440, 44]}, "train": {"seed": 25, "repeats": 2}, "model": {"kind": "stateful"}}
    )
    assert [u.name for u in config.units()] == ["stateful-s25", "stateful-s26"]
    both = config_from_mapping({"dataset": {"contexts": [440, 44]}, "model": {"kind": ["stateful", "windowed"]}})
    assert both.model.kind == ["windowed", "stateful"]
    assert [u.name for u in both.units()] == ["c44-s25", "c440-s25", "stateful-s25"]
    assert [u.name for u in Config().units()] == [f"c{n}-s25" for n in SEED_CONTEXTS]  # the seed: ten units


def test_context_ms_gives_the_same_duration_at_any_rate() -> None:
    from sd1job.config import config_from_mapping

    at_44k = config_from_mapping({"dataset": {"context_ms": [1, 5, 10]}})
    at_48k = config_from_mapping({"dataset": {"context_ms": [1, 5, 10]}, "recordings": {"sample_rate": 48000}})
    assert at_44k.dataset.contexts == [44, 220, 441]
    assert at_48k.dataset.contexts == [48, 240, 480]
    again = config_from_mapping(yaml.safe_load(at_48k.to_yaml()))  # the effective config reloads as it was
    assert again.dataset.contexts == [48, 240, 480]
    with pytest.raises(ConfigError, match="disagree"):
        config_from_mapping({"dataset": {"context_ms": [1], "contexts": [44, 88]}})
    with pytest.raises(ConfigError, match="repeated sizes"):
        config_from_mapping({"dataset": {"context_ms": [1, 1.001]}})


@pytest.mark.parametrize(
    ("mapping", "suggestion"),
    [
        ({"datset": {}}, "datset: unknown key (did you mean dataset?)"),
        ({"train": {"repeat": 3}}, "train.repeat: unknown key (did you mean repeats?)"),
        ({"model": {"stateful": {"warmup": 10}}}, "model.stateful.warmup: unknown key (did you mean warmup_samples?)"),
        ({"zzz": 1}, "zzz: unknown key"),
    ],
)
def test_a_typo_suggests_the_nearest_key(mapping: dict, suggestion: str) -> None:
    from sd1job.config import config_from_mapping

    with pytest.raises(ConfigError) as caught:
        config_from_mapping(mapping)
    assert suggestion in str(caught.value)
    if "did you mean" not in suggestion:
        assert "did you mean" not in str(caught.value)
