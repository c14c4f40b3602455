"""The render command: a DI file through a tiny trained unit, equal to eval at the training rate, any rate else."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from sd1job import cli
from sd1job.audio import decode_wav
from sd1job.config import Config
from sd1job.layout import RunLayout, riff_dry_key
from sd1job.resample import resample
from sd1job.stages.data import build_datasets
from sd1job.store import LocalStore, open_store
from sd1job.units import Unit
from tests.helpers import PLAIN_LOSS, small_config, toy_dry, write_toy_recordings

RATE = 8000
STATEFUL = Unit("stateful", None, 25)
WINDOWED = Unit("windowed", 4, 25)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny trained unit of each kind (4 LSTM units, 1 epoch), scored by eval, with its config file."""
    import keras

    from sd1job.stages.train import train_unit

    root = tmp_path_factory.mktemp("render")
    keras.utils.set_random_seed(3)
    config = small_config(
        str(root / "store"),
        dataset__contexts=[4],
        model={
            "kind": ["windowed", "stateful"],
            "stateful": {
                "segment_seconds": 0.25,
                "warmup_samples": 100,
                "tbptt_samples": 500,
                "batch_size": 8,
                **PLAIN_LOSS,
            },
        },
        train={"epochs": 1, "lstm_units": 4, "batch_size": 64, "learning_rate": 0.01},
        eval__batch_size=256,
    )
    store = open_store(config.store)
    write_toy_recordings(store, config, seconds=2.0, riff_seconds=0.4)
    build_datasets(config, store)
    for unit in (WINDOWED, STATEFUL):
        train_unit(config, store, unit)
    path = root / "config.yaml"
    path.write_text(config.to_yaml())
    assert cli.main(["eval", "-q", "--config", str(path)]) == 0
    return {"config": config, "store": store, "path": str(path), "root": root}


def render(run: dict[str, Any], unit: str, source: Path, output: Path, *extra: str) -> int:
    return cli.main(
        [
            "render",
            "-q",
            "--config",
            run["path"],
            "--unit",
            unit,
            "--input",
            str(source),
            "--output",
            str(output),
            *extra,
        ]
    )


def eval_prediction(config: Config, store: LocalStore, unit: Unit, riff: str) -> np.ndarray:
    return decode_wav(store.read_bytes(RunLayout(config.run_id).unit_output(unit, riff)), "eval output").samples


@pytest.mark.parametrize("unit", [STATEFUL, WINDOWED], ids=lambda u: u.name)
def test_at_the_training_rate_render_equals_eval(run: dict[str, Any], unit: Unit, tmp_path: Path) -> None:
    config, store = run["config"], run["store"]
    riff = config.recordings.riffs[0]
    source = tmp_path / "di.wav"
    source.write_bytes(store.read_bytes(riff_dry_key(config.recordings.test_dir, riff)))
    output = tmp_path / "out.wav"
    assert render(run, unit.name, source, output) == 0
    info = sf.info(str(output))
    assert (info.subtype, info.samplerate, info.channels) == ("FLOAT", RATE, 1)
    rendered, _ = sf.read(str(output), dtype="float32")
    expected = eval_prediction(config, store, unit, riff)  # eval writes 24-bit PCM
    assert len(rendered) == len(expected) == info.frames and float(np.std(expected)) > 1e-3
    np.testing.assert_allclose(np.clip(rendered, -1, 1), expected, atol=2e-7, rtol=0)


@pytest.mark.parametrize(
    ("method", "rate", "subtype"),
    [("delay", 16000, "PCM_16"), ("delay", 12000, "PCM_24"), ("resample", 12000, "FLOAT"), ("naive", 6000, "DOUBLE")],
)
def test_any_rate_and_subtype_in_gives_float_at_that_rate_and_length_out(
    run: dict[str, Any], tmp_path: Path, method: str, rate: int, subtype: str
) -> None:
    dry = toy_dry(0.5, rate, seed=9)
    source = tmp_path / "di.wav"
    sf.write(str(source), dry, rate, subtype=subtype)
    output = tmp_path / "out.wav"
    assert render(run, STATEFUL.name, source, output, "--method", method) == 0
    rendered, out_rate = sf.read(str(output), dtype="float32")
    assert out_rate == rate and len(rendered) == len(dry) and np.all(np.isfinite(rendered))
    assert float(np.std(rendered)) > 1e-3


def test_twice_the_rate_by_delay_line_tracks_the_trained_output(run: dict[str, Any], tmp_path: Path) -> None:
    """The same riff at 16 kHz through the delay line, brought back to 8 kHz, is near the 8 kHz output."""
    config, store = run["config"], run["store"]
    riff = config.recordings.riffs[1]
    dry = decode_wav(store.read_bytes(riff_dry_key(config.recordings.test_dir, riff)), "dry").samples
    source = tmp_path / "di16k.wav"
    sf.write(str(source), resample(dry, RATE, 2 * RATE), 2 * RATE, subtype="FLOAT")
    outputs = {}
    for method in ("delay", "naive"):
        assert render(run, STATEFUL.name, source, tmp_path / f"{method}.wav", "--method", method) == 0
        outputs[method] = resample(sf.read(str(tmp_path / f"{method}.wav"), dtype="float32")[0], 2 * RATE, RATE)
    expected = eval_prediction(config, store, STATEFUL, riff)
    errors = {m: float(np.sum((o[: len(expected)] - expected) ** 2) / np.sum(expected**2)) for m, o in outputs.items()}
    assert errors["delay"] < 0.05 and errors["delay"] < errors["naive"], errors


def test_below_the_training_rate_the_delay_line_resamples_and_says_so(
    run: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "di.wav"
    sf.write(str(source), toy_dry(0.3, 4000, seed=4), 4000, subtype="PCM_24")
    assert cli.main(["render", "--config", run["path"], "--unit", "stateful-s25", "--input", str(source),
                     "--output", str(tmp_path / "o.wav")]) == 0  # fmt: skip
    assert "below the training rate" in caplog.text and "resampling instead" in caplog.text
    assert "real time" in caplog.text


def test_pcm_output_clips_with_a_warning_float_keeps_the_overshoot(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from sd1job.stages.render import write_output

    signal = np.array([0.0, 1.5, -0.5, -1.25], np.float32)
    write_output(tmp_path / "f.wav", signal, RATE, "FLOAT")
    np.testing.assert_array_equal(sf.read(str(tmp_path / "f.wav"), dtype="float32")[0], signal)
    write_output(tmp_path / "p.wav", signal, RATE, "PCM_24")
    assert float(np.max(np.abs(sf.read(str(tmp_path / "p.wav"))[0]))) <= 1.0
    assert "2 samples beyond full scale clipped" in caplog.text


def valid(path: Path) -> None:
    sf.write(str(path), toy_dry(0.2, RATE, seed=5), RATE)


def stereo(path: Path) -> None:
    sf.write(str(path), np.zeros((100, 2), np.float32) + 0.1, RATE)


def eight_bit(path: Path) -> None:
    sf.write(str(path), np.full(100, 0.1, np.float32), RATE, subtype="PCM_U8")


def silent(path: Path) -> None:
    sf.write(str(path), np.zeros(100, np.float32), RATE, subtype="FLOAT")


@pytest.mark.parametrize(
    ("make_input", "unit", "output", "message"),
    [
        (None, "stateful-s25", "out.wav", "di.wav: file not found"),
        (stereo, "stateful-s25", "out.wav", "di.wav: has 2 channels; recordings must be mono"),
        (eight_bit, "stateful-s25", "out.wav", "di.wav: sample format PCM_U8 is not supported"),
        (silent, "stateful-s25", "out.wav", "di.wav: is silent"),
        (valid, "stateful-s99", "out.wav", "stateful-s99"),
        (valid, "stateful-s25", "missing/out.wav", "does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture, make_input: Any, unit: str, output: str,
    message: str,
) -> None:  # fmt: skip
    source = tmp_path / "di.wav"
    if make_input is not None:
        make_input(source)
    assert render(run, unit, source, tmp_path / output) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "\n" not in error and message in error, error
    assert not (tmp_path / "out.wav").exists()


def test_an_untrained_unit_is_a_one_line_error(
    run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config = small_config(str(tmp_path / "empty"), model__kind=["stateful"], recordings__sample_rate=RATE)
    path = tmp_path / "config.yaml"
    path.write_text(config.to_yaml())
    source = tmp_path / "di.wav"
    sf.write(str(source), toy_dry(0.2, RATE, seed=1), RATE)
    status = cli.main(["render", "--config", str(path), "--unit", "stateful-s25", "--input", str(source),
                       "--output", str(tmp_path / "o.wav")])  # fmt: skip
    assert status == 2
    assert "stateful-s25: not trained" in capsys.readouterr().err


def test_the_input_buffer_is_any_pcm_or_float(tmp_path: Path) -> None:
    """The reader is the data stage's: 16-bit PCM and 64-bit float decode to the same samples."""
    from sd1job.stages.render import read_input

    dry = toy_dry(0.1, RATE, seed=2)
    for subtype in ("PCM_16", "DOUBLE"):
        buffer = io.BytesIO()
        sf.write(buffer, dry, RATE, subtype=subtype, format="WAV")
        (tmp_path / f"{subtype}.wav").write_bytes(buffer.getvalue())
        recording = read_input(tmp_path / f"{subtype}.wav")
        assert recording.sample_rate == RATE and recording.subtype == subtype
        np.testing.assert_allclose(recording.samples, dry, atol=1e-4)


def test_long_inputs_log_their_progress_every_tenth(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from sd1job.audio import Recording
    from sd1job.stages.render import _progress_logger

    assert _progress_logger(STATEFUL, Recording(np.zeros(RATE, np.float32), RATE, "short.wav")) is None
    report = _progress_logger(STATEFUL, Recording(np.zeros(60 * RATE, np.float32), RATE, "long.wav"))
    assert report is not None
    with caplog.at_level(logging.INFO, logger="sd1job"):
        for fraction in (0.05, 0.1, 0.15, 0.25, 0.26, 1.0):
            report(fraction)
    assert [r.getMessage().split(": ")[1] for r in caplog.records] == [" 10 % done", " 25 % done", "100 % done"]


def test_eval_scores_riffs_recorded_at_another_rate_apart_from_the_training_rate(
    run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from sd1job.audio import encode_wav
    from tests.helpers import toy_pedal

    config, store = run["config"], run["store"]
    layout = RunLayout(config.run_id)
    test_dir = "recordings/test16k"
    for index, riff in enumerate(config.recordings.riffs):
        dry = toy_dry(0.4, 2 * RATE, seed=200 + index)
        store.write_bytes(riff_dry_key(test_dir, riff), encode_wav(dry, 2 * RATE))
        store.write_bytes(f"{test_dir}/Wet/w_{riff}.wav", encode_wav(toy_pedal(dry), 2 * RATE))
    before = store.read_bytes(layout.scores(STATEFUL))
    command = ["eval", "-q", "--config", run["path"], "--unit", "stateful-s25", "--rate", str(2 * RATE)]
    assert cli.main(command) == 2
    assert "needs --test-dir" in capsys.readouterr().err
    assert cli.main([*command, "--test-dir", test_dir]) == 0
    document = store.read_json(layout.scores(STATEFUL, 2 * RATE))
    assert (document["sample_rate"], document["training_rate"], document["method"]) == (2 * RATE, RATE, "delay")
    assert [row["riff"] for row in document["rows"]] == config.recordings.riffs
    assert all(0 < row["esr"] < 1 for row in document["rows"])
    output = sf.info(io.BytesIO(store.read_bytes(layout.unit_output(STATEFUL, "battery", 2 * RATE))))
    assert output.samplerate == 2 * RATE and output.frames == int(0.4 * 2 * RATE)
    assert store.read_bytes(layout.scores(STATEFUL)) == before  # the training rate's scores stay as they were
    key = layout.scores(STATEFUL, 2 * RATE)
    written = store.read_bytes(key)
    assert cli.main([*command, "--test-dir", test_dir]) == 0 and store.read_bytes(key) == written  # up to date
    assert cli.main([*command, "--test-dir", test_dir, "--method", "resample"]) == 0
    assert store.read_json(key)["method"] == "resample"


def test_a_windowed_unit_at_another_rate_resamples_and_says_so(
    run: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dry = toy_dry(0.3, 12000, seed=6)
    source = tmp_path / "di.wav"
    sf.write(str(source), dry, 12000, subtype="PCM_24")
    assert render(run, WINDOWED.name, source, tmp_path / "o.wav") == 0
    rendered, rate = sf.read(str(tmp_path / "o.wav"), dtype="float32")
    assert rate == 12000 and len(rendered) == len(dry) and float(np.std(rendered)) > 1e-3
    assert "windowed unit's context is in samples at 8000 Hz: resampling instead" in caplog.text
