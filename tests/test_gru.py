"""``model.cell: gru``: the GRU in both model kinds, its fast inference equal to Keras, its export refused in one
line, and GRU units (alone, and as a grid axis beside LSTM units) through data -> train -> eval."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from sd1job import cli
from sd1job.config import Config, ConfigError, config_from_mapping
from sd1job.export import ExportError, NamMetadata, build_nam, require_exportable
from sd1job.infer.delayline import DelayLinePredictor
from sd1job.infer.stateful import GruState, StreamingPredictor, keras_predict_stateful
from sd1job.infer.weights import GruWeights, LstmWeights, ModelFileError, weights_from_model
from sd1job.infer.windowed import SlidingWindowPredictor, keras_predict
from sd1job.layout import REPORT_HTML, RunLayout, riff_dry_key
from sd1job.model import build_model, build_stateful_model, flops_per_sample
from sd1job.store import LocalStore
from sd1job.units import Unit
from tests.helpers import PLAIN_LOSS, small_config, write_toy_recordings
from tests.test_evaluate import config_file
from tests.test_train import load_weights, prepare, stateful_mapping

UNITS = 8
# The stateful recipe of test_train, shorter: segments of 0.25 s at 8 kHz, 200 warm-up samples, 500 per update.
TINY_STATEFUL = {"segment_seconds": 0.25, "warmup_samples": 200, "tbptt_samples": 500, "batch_size": 8, **PLAIN_LOSS}


def signal(length: int, seed: int = 0) -> np.ndarray:
    return (0.5 * np.random.default_rng(seed).standard_normal(length)).astype(np.float32)


def randomised(model: keras.Model, seed: int, scale: float = 0.4) -> keras.Model:
    """Every weight drawn (Keras starts biases at zero): a mistake in any gate, bias or the head shows."""
    rng = np.random.default_rng(seed)
    model.set_weights([(scale * rng.standard_normal(w.shape)).astype(np.float32) for w in model.get_weights()])
    return model


@pytest.fixture(scope="module")
def stateful_models() -> dict[int, keras.Model]:
    keras.utils.set_random_seed(11)
    return {units: randomised(build_stateful_model(units, "gru"), units) for units in (UNITS, 64)}


# --------------------------------------------------------------------------------------------- config and design


def test_the_cell_defaults_to_lstm_and_an_lstm_unit_trains_with_the_settings_it_had_before(tmp_path: Path) -> None:
    from sd1job.stages.train import trained_settings

    config = small_config(str(tmp_path))
    assert config.model.cell == "lstm"
    unit = Unit("windowed", 8, 25)
    # Nothing of the option reaches an LSTM unit's fingerprint, so no trained unit or checkpoint is invalidated.
    assert "cell" not in trained_settings(unit, config.train, config.model)
    explicit = small_config(str(tmp_path), model={"cell": "lstm"})
    assert trained_settings(unit, explicit.train, explicit.model) == trained_settings(unit, config.train, config.model)
    gru = small_config(str(tmp_path), model={"cell": "gru"})
    assert trained_settings(unit, gru.train, gru.model)["cell"] == "gru"
    assert "cell" not in trained_settings(Unit("wavenet", None, 25, "nano"), gru.train, gru.model)


def test_an_unknown_cell_is_refused_in_one_line_naming_the_field() -> None:
    with pytest.raises(ConfigError, match=r"^defaults: invalid config: model\.cell: Input should be 'lstm' or 'gru'"):
        config_from_mapping({"model": {"cell": "rnn"}}, source="defaults")
    with pytest.raises(ConfigError, match=r"sweep\.grid: model\.cell\[1\] = 'rnn'"):
        config_from_mapping({"sweep": {"grid": {"model.cell": ["gru", "rnn"]}}})


def test_the_cell_as_a_grid_axis_names_its_arms_and_changes_no_dataset(tmp_path: Path) -> None:
    config = small_config(
        str(tmp_path), model={"kind": ["windowed", "stateful"]}, sweep={"grid": {"model.cell": ["lstm", "gru"]}}
    )
    names = [unit.name for unit in config.units()]
    arms = ["c8", "c16", "stateful"]
    assert names == [f"celllstm-{arm}-s25" for arm in arms] + [f"cellgru-{arm}-s25" for arm in arms]
    assert [config.for_unit(unit).model.cell for unit in config.units()] == ["lstm"] * 3 + ["gru"] * 3
    assert [tag for tag, _ in config.data_variants()] == [""]  # one dataset serves both cells


def test_a_gru_step_counts_three_gates() -> None:
    assert flops_per_sample("stateful", None, UNITS, cell="gru") == 2 * (1 + UNITS) * 3 * UNITS
    assert flops_per_sample("stateful", None, UNITS) == 2 * (1 + UNITS) * 4 * UNITS
    assert flops_per_sample("windowed", 16, UNITS, training=True, cell="gru") == 16 * 3 * 2 * (1 + UNITS) * 3 * UNITS


# --------------------------------------------------------------------------------------------- models and weights


def test_the_gru_models_have_the_signatures_inference_reads(stateful_models: dict[int, keras.Model]) -> None:
    model = stateful_models[UNITS]
    assert [tuple(t.shape) for t in model.inputs] == [(None, None, 1), (None, UNITS)]
    assert [tuple(t.shape) for t in model.outputs] == [(None, None, 1), (None, UNITS)]
    weights = weights_from_model(model, None, "m")
    assert isinstance(weights, GruWeights) and weights.units == UNITS
    assert weights.kernel.shape == weights.bias.shape == weights.recurrent_bias.shape == (3 * UNITS,)
    assert weights.recurrent.shape == (UNITS, 3 * UNITS)
    windowed = build_model(5, UNITS, cell="gru")
    assert windowed.name == "sd1_gru8_c5" and windowed.get_layer("gru").get_config()["reset_after"]
    assert isinstance(weights_from_model(windowed, 5, "w"), GruWeights)
    assert isinstance(weights_from_model(build_model(5, UNITS), 5, "w"), LstmWeights)


def test_a_gru_that_resets_before_its_product_is_refused_naming_the_file() -> None:
    dry = keras.Input(shape=(None, 1))
    sequence = keras.layers.GRU(UNITS, reset_after=False, return_sequences=True, name="gru")(dry)
    model = keras.Model(dry, keras.layers.Dense(1)(sequence))
    with pytest.raises(ModelFileError, match=r"^runs/x/model\.keras: the GRU resets before"):
        weights_from_model(model, None, "runs/x/model.keras")


# --------------------------------------------------------------------------------------------- fast inference


@pytest.mark.parametrize(("units", "length"), [(UNITS, 1), (UNITS, 2000), (64, 3000)])
def test_streaming_gru_equals_keras_predict(stateful_models: dict[int, keras.Model], units: int, length: int) -> None:
    model = stateful_models[units]
    dry = signal(length, seed=units)
    out = StreamingPredictor(weights_from_model(model, None, "m")).predict(dry)
    reference = keras_predict_stateful(model, dry)
    assert out.dtype == np.float32 and out.shape == reference.shape == (length,)
    assert length == 1 or float(np.std(reference)) > 0.02  # a signal, not a constant any bias would match
    # float32 against float32 through 64 units of output weights of size ~0.4: errors scale with the output
    np.testing.assert_allclose(out, reference, atol=1e-5 * max(1.0, float(np.max(np.abs(reference)))), rtol=0)


def test_a_start_state_and_the_end_state_match_keras(stateful_models: dict[int, keras.Model]) -> None:
    model = stateful_models[UNITS]
    start = GruState(np.random.default_rng(3).uniform(-0.9, 0.9, UNITS).astype(np.float32))
    dry = signal(300, seed=9)
    out, end = StreamingPredictor(weights_from_model(model, None, "m")).stream(dry, start)
    wet, h = model.predict([dry[None, :, None], start.h[None]], verbose=0)
    np.testing.assert_allclose(out, wet[0, :, 0], atol=1e-5, rtol=0)
    np.testing.assert_allclose(end.h, h[0], atol=1e-5, rtol=0)
    assert np.max(np.abs(out - StreamingPredictor(weights_from_model(model, None, "m")).predict(dry))) > 1e-3


def test_chunked_streaming_equals_one_call(stateful_models: dict[int, keras.Model]) -> None:
    fast = StreamingPredictor(weights_from_model(stateful_models[64], None, "m"))
    dry = signal(4000, seed=2)
    whole, whole_end = fast.stream(dry)
    pieces, state, start = [], None, 0
    for size in (1, 0, 999, 7, 1500, 1493):
        chunk, state = fast.stream(dry[start : start + size], state)
        pieces.append(chunk)
        start += size
    assert start == len(dry) and isinstance(state, GruState)
    np.testing.assert_array_equal(np.concatenate(pieces), whole)
    np.testing.assert_array_equal(state.h, whole_end.h)


@pytest.mark.parametrize("context", [1, 7])
def test_the_xla_block_loop_equals_keras_predict_for_a_windowed_gru(context: int) -> None:
    keras.utils.set_random_seed(3)
    model = randomised(build_model(context, UNITS, cell="gru"), seed=context)
    dry = signal(300, seed=context)
    fast = SlidingWindowPredictor(weights_from_model(model, context, "m"), context, block=64).predict(dry)
    reference = keras_predict(model, dry, context)
    assert float(np.std(reference)) > 0.005
    np.testing.assert_allclose(fast, reference, atol=1e-5, rtol=0)


def test_the_delay_line_runs_a_gru_at_other_rates(stateful_models: dict[int, keras.Model]) -> None:
    weights = weights_from_model(stateful_models[UNITS], None, "m")
    dry = signal(1500, seed=4)
    base = StreamingPredictor(weights).predict(dry)
    # M = 1 is the model as trained; at M = 2 with every sample held twice, each phase is that model again
    # (to float32 rounding: the two compiled loops may order their sums differently).
    np.testing.assert_allclose(DelayLinePredictor(weights, 44100, 44100).predict(dry), base, atol=1e-6, rtol=0)
    doubled = DelayLinePredictor(weights, 44100, 88200).predict(np.repeat(dry, 2))
    np.testing.assert_allclose(doubled[0::2], base, atol=1e-6, rtol=0)
    np.testing.assert_allclose(doubled[1::2], base, atol=1e-6, rtol=0)
    # A non-integer M interpolates; streamed in chunks it is still one call.
    fast = DelayLinePredictor(weights, 44100, 48000)
    whole, _ = fast.stream(dry)
    first, state = fast.stream(dry[:700])
    second, end = fast.stream(dry[700:], state)
    np.testing.assert_array_equal(np.concatenate([first, second]), whole)
    assert end.ring.shape == (fast.length, UNITS) and end.h.shape == (UNITS,)
    assert not np.array_equal(whole, base)


# --------------------------------------------------------------------------------------------- export


def test_nam_export_of_a_gru_is_refused_in_one_line(stateful_models: dict[int, keras.Model]) -> None:
    with pytest.raises(ExportError, match=r"^cellgru-stateful-s25: a GRU model cannot be exported to \.nam: NAM"):
        require_exportable("stateful", "gru", "cellgru-stateful-s25")
    require_exportable("stateful", "lstm", "stateful-s25")
    require_exportable("wavenet", "gru")  # a WaveNet has no cell: the option does not touch it
    from datetime import UTC, datetime

    weights = weights_from_model(stateful_models[UNITS], None, "m")
    with pytest.raises(ExportError, match="LSTM and WaveNet models only"):
        build_nam(weights, 48000.0, NamMetadata(name="x", date=datetime.now(UTC)))


# --------------------------------------------------------------------------------------------- training


def gru_stateful_mapping(root: Path, **train: Any) -> dict[str, Any]:
    mapping = stateful_mapping(root, lstm_units=UNITS)
    mapping["train"].update({"learning_rate": 0.02, "epochs": 4, **train})
    mapping["model"]["cell"] = "gru"
    return mapping


STATEFUL = Unit("stateful", None, 7)


@pytest.fixture(scope="module")
def gru_trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from sd1job.stages.train import train_unit

    config, store = prepare(gru_stateful_mapping(tmp_path_factory.mktemp("gru") / "store"))
    return {"config": config, "store": store, "history": train_unit(config, store, STATEFUL)}


def test_a_stateful_gru_unit_learns_and_records_its_cell(gru_trained: dict[str, Any]) -> None:
    history, store = gru_trained["history"], gru_trained["store"]
    assert history["cell"] == "gru" and history["lstm_units"] == UNITS and history["epochs_run"] == 4
    assert history["train_settings"]["cell"] == "gru"
    assert history["parameter_count"] == 3 * UNITS * (1 + UNITS + 2) + UNITS + 1
    # Eight units in four epochs: not yet past the trivial model on this near-linear pair, but learning fast.
    val_losses = [entry["val_loss"] for entry in history["epochs"]]
    assert history["best_val_loss"] < min(0.2, val_losses[0] / 3), val_losses
    summary = store.read_json(RunLayout(gru_trained["config"].run_id).summary(STATEFUL))
    assert summary["flops_per_sample_inference"] == 2 * (1 + UNITS) * 3 * UNITS


def test_a_stateful_gru_unit_resumes_from_its_checkpoint_to_the_same_weights(
    gru_trained: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sd1job.stages import train

    config, store = prepare(gru_stateful_mapping(tmp_path / "store"))
    original = train.UnitRun.on_epoch

    def killed_after_the_first(self: Any, epoch: int, *args: Any) -> bool:
        result = original(self, epoch, *args)
        if epoch == 1:
            raise KeyboardInterrupt  # right after the first checkpoint landed
        return result

    with monkeypatch.context() as patch:
        patch.setattr(train.UnitRun, "on_epoch", killed_after_the_first)
        with pytest.raises(KeyboardInterrupt):
            train.train_unit(config, store, STATEFUL)
    assert store.exists(RunLayout(config.run_id).checkpoint(STATEFUL))
    history = train.train_unit(config, store, STATEFUL)
    assert history["resumed_at_epochs"] == [1]
    expected = gru_trained["history"]
    assert [e["val_loss"] for e in history["epochs"]] == [e["val_loss"] for e in expected["epochs"]]
    for got, want in zip(
        load_weights(store, config, STATEFUL),
        load_weights(gru_trained["store"], gru_trained["config"], STATEFUL),
        strict=True,
    ):
        assert np.array_equal(got, want)


def test_a_diverging_gru_unit_is_rolled_back_and_left_finite(tmp_path: Path) -> None:
    from sd1job.stages.train import train_unit

    config, store = prepare(gru_stateful_mapping(tmp_path / "store", epochs=2, learning_rate=50.0, max_recoveries=1))
    history = train_unit(config, store, STATEFUL)
    assert len(history["recoveries"]) >= 1 and history["recoveries"][0]["learning_rate"] == pytest.approx(25.0)
    assert all(np.all(np.isfinite(w)) for w in load_weights(store, config, STATEFUL))


# --------------------------------------------------------------------------------------------- data -> train -> eval


def run_stages(config: Config) -> LocalStore:
    """The data stage, every unit's training, then eval over the CLI (as the sweep runs them)."""
    from sd1job.stages.data import build_datasets
    from sd1job.stages.train import train_unit

    store = LocalStore(config.store)
    write_toy_recordings(store, config, seconds=3.0, riff_seconds=0.5)
    build_datasets(config, store)
    for unit in config.units():
        train_unit(config, store, unit)
    root = Path(config.store).parent
    assert cli.main(["eval", "-q", "--config", config_file(config, root)]) == 0
    return store


def end_to_end_config(root: Path, **overrides: Any) -> Config:
    return small_config(
        str(root / "store"),
        dataset__contexts=[8],
        train={"epochs": 2, "patience": 2, "batch_size": 64, "lstm_units": UNITS},
        eval__batch_size=512,
        **overrides,
    )


@pytest.fixture(scope="module")
def gru_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, LocalStore]:
    """``model.cell: gru`` for both kinds, through data, train and eval."""
    root = tmp_path_factory.mktemp("gru-run")
    config = end_to_end_config(root, model={"kind": ["windowed", "stateful"], "cell": "gru", "stateful": TINY_STATEFUL})
    return config, run_stages(config)


@pytest.fixture(scope="module")
def cell_grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, LocalStore]:
    """The grid ``model.cell: [lstm, gru]`` over stateful units, through the local sweep (data, train, eval, export,
    report)."""
    from sd1job.stages.sweep import run_sweep

    root = tmp_path_factory.mktemp("cell-grid")
    config = end_to_end_config(
        root, model={"kind": "stateful", "stateful": TINY_STATEFUL}, sweep={"grid": {"model.cell": ["lstm", "gru"]}}
    )
    store = LocalStore(config.store)
    write_toy_recordings(store, config, seconds=3.0, riff_seconds=0.5)
    progress = run_sweep(config, store)
    assert not progress.failed
    return config, store


def test_gru_units_of_both_kinds_train_and_score_with_their_fast_inference(gru_run: tuple[Config, LocalStore]) -> None:
    from sd1job.audio import decode_wav
    from sd1job.infer.weights import load_model_bytes

    config, store = gru_run
    layout = RunLayout(config.run_id)
    assert [unit.name for unit in config.units()] == ["c8-s25", "stateful-s25"]  # the names without a grid
    for unit in config.units():
        history = store.read_json(layout.history(unit))
        assert history["cell"] == "gru" and history["epochs_run"] == 2
        scores = store.read_json(layout.scores(unit))
        assert scores["flops_per_sample"] == (unit.context or 1) * 2 * (1 + UNITS) * 3 * UNITS
        assert all(np.isfinite(row["esr"]) and row["esr"] < 1.5 for row in scores["rows"])
        # What eval wrote is the Keras model's own output (24-bit WAV: within its rounding).
        model = load_model_bytes(store.read_bytes(layout.model(unit)), "model")
        assert model.get_layer("gru") is not None
        riff = config.recordings.riffs[0]
        dry = decode_wav(store.read_bytes(riff_dry_key(config.recordings.test_dir, riff)), "dry").samples
        written = decode_wav(store.read_bytes(layout.unit_output(unit, riff)), "out").samples
        stateful = unit.kind == "stateful"
        reference = keras_predict_stateful(model, dry) if stateful else keras_predict(model, dry, 8)
        np.testing.assert_allclose(written, np.clip(reference, -1, 1), atol=1e-5, rtol=0)


def test_a_grid_over_the_cell_sweeps_an_lstm_and_a_gru_arm_and_exports_only_the_lstm(
    cell_grid: tuple[Config, LocalStore], capsys: pytest.CaptureFixture
) -> None:
    config, store = cell_grid
    layout = RunLayout(config.run_id)
    lstm, gru = config.units()
    assert (lstm.name, gru.name) == ("celllstm-stateful-s25", "cellgru-stateful-s25")
    assert [store.read_json(layout.history(unit))["cell"] for unit in (lstm, gru)] == ["lstm", "gru"]
    counts = [store.read_json(layout.history(unit))["parameter_count"] for unit in (lstm, gru)]
    assert counts == [4 * UNITS * (1 + UNITS + 1) + UNITS + 1, 3 * UNITS * (1 + UNITS + 2) + UNITS + 1]
    assert all(store.exists(layout.scores(unit)) for unit in (lstm, gru))
    # The sweep exported the LSTM arm's unit and left the GRU's alone (NAM cannot load it).
    assert store.exists(layout.export(lstm)) and not store.exists(layout.export(gru))
    assert store.exists(layout.eval_file(REPORT_HTML))
    path = config_file(config, Path(config.store).parent)
    capsys.readouterr()
    assert cli.main(["export", "-q", "--config", path, "--unit", gru.name]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [
        f"error: {gru.name}: a GRU model cannot be exported to .nam: NAM's players load LSTM and WaveNet models only"
    ]
    # Without --unit, every exportable unit: the LSTM arm's.
    assert cli.main(["export", "-q", "--config", path]) == 0
    assert store.exists(layout.export(lstm)) and not store.exists(layout.export(gru))


def test_render_runs_a_gru_unit_at_twice_its_rate_through_the_delay_line(
    gru_run: tuple[Config, LocalStore], tmp_path: Path
) -> None:
    from sd1job.audio import decode_wav, encode_wav
    from sd1job.infer.weights import load_weights

    config, store = gru_run
    unit = config.units()[1]
    rate = config.recordings.sample_rate
    riff = config.recordings.riffs[0]
    dry = decode_wav(store.read_bytes(riff_dry_key(config.recordings.test_dir, riff)), "dry").samples
    source = tmp_path / "di.wav"
    source.write_bytes(encode_wav(np.repeat(dry, 2), 2 * rate))
    held = decode_wav(source.read_bytes(), "di").samples  # as render reads it
    output = tmp_path / "out.wav"
    path = config_file(config, tmp_path)
    args = ["render", "-q", "--config", path, "--unit", unit.name, "--input", str(source), "--output", str(output)]
    assert cli.main([*args, "--method", "delay"]) == 0
    rendered = decode_wav(output.read_bytes(), "out")
    assert rendered.sample_rate == 2 * rate and len(rendered.samples) == 2 * len(dry)
    # M = 2 on a held signal: each phase is the unit at its training rate.
    weights = load_weights(store.read_bytes(RunLayout(config.run_id).model(unit)), "model", None)
    expected = StreamingPredictor(weights).predict(held[0::2])
    np.testing.assert_allclose(rendered.samples[0::2], expected, atol=1e-6, rtol=0)
    np.testing.assert_allclose(rendered.samples[1::2], expected, atol=1e-6, rtol=0)
