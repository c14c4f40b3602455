"""The wavenet kind: NAM's presets, the Keras model, block-streaming inference, the .nam export, unit names, and a
tiny unit trained, resumed and scored through the train stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sd1job import dataset
from sd1job.config import Config, ConfigError, config_from_mapping
from sd1job.export import NamFileError, NamMetadata, decode_nam, encode_nam, require_exportable
from sd1job.layout import RunLayout
from sd1job.store import LocalStore
from sd1job.units import Unit, parse_unit, sweep_units
from sd1job.wavenet_presets import LayerArray, WavenetSpec, preset_spec

# A test-only WaveNet: NAM's shape (two arrays, the first's head feeding the second) at a tenth of the size.
TINY = WavenetSpec(
    (
        LayerArray(1, 4, 2, (1, 2, 4), head_bias=False),
        LayerArray(4, 2, 1, (8, 1, 16), head_bias=True),
    )
)
UNIT = Unit("wavenet", None, 7, "nano")


def random_model(spec: WavenetSpec, seed: int = 3, scale: float = 0.3) -> Any:
    """sd1job's Keras WaveNet of ``spec`` with every weight (biases included) drawn from a seeded normal."""
    from sd1job.wavenet_model import build_wavenet

    model = build_wavenet(spec)
    rng = np.random.default_rng(seed)
    model.set_weights([(scale * rng.standard_normal(w.shape)).astype(np.float32) for w in model.get_weights()])
    return model


def test_presets_are_nams_with_a_receptive_field_of_4093_and_standard_has_13801_weights() -> None:
    for name in ("standard", "lite", "feather", "nano"):
        assert preset_spec(name).receptive_field == 4093
    assert preset_spec("standard").parameter_count() == 13_801  # the 13.8 k of NAM's standard model
    assert TINY.receptive_field == 1 + 2 * (7 + 25)
    with pytest.raises(ValueError, match="not one of"):
        preset_spec("huge")


def test_unit_names_parse_back_and_the_config_makes_one_arm_per_preset(tmp_path: Path) -> None:
    assert parse_unit("wavenet-standard-s25") == Unit("wavenet", None, 25, "standard")
    assert Unit("wavenet", None, 26, "lite").path == "wavenet-lite/s26"
    config = config_from_mapping({"store": str(tmp_path), "model": {"kind": ["stateful", "wavenet"]}})
    assert [u.name for u in config.units()] == ["stateful-s25", "wavenet-standard-s25"]
    units = sweep_units(["wavenet"], [44], 5, 2, ("lite", "feather"))
    assert [u.name for u in units] == ["wavenet-lite-s5", "wavenet-lite-s6", "wavenet-feather-s5", "wavenet-feather-s6"]
    with pytest.raises(ConfigError, match=r"model\.wavenet\.presets"):
        config_from_mapping({"store": str(tmp_path), "model": {"wavenet": {"presets": "huge"}}})
    with pytest.raises(ValueError, match="needs preset"):
        Unit("wavenet", None, 1)


@pytest.mark.parametrize("spec", [TINY, preset_spec("nano")], ids=["tiny", "nano"])
def test_block_streaming_equals_keras_predict_and_does_not_depend_on_the_blocks(spec: WavenetSpec) -> None:
    from sd1job.infer.wavenet import WavenetPredictor, wavenet_weights_from_model
    from sd1job.wavenet_model import predict_signal, receptive_field_of

    model = random_model(spec)
    assert receptive_field_of(model) == spec.receptive_field
    rng = np.random.default_rng(0)
    dry = (0.5 * rng.standard_normal(9000)).astype(np.float32)
    expected = predict_signal(model, dry, spec.receptive_field, chunk=2500)  # zeros in front, as NAM pads
    weights = wavenet_weights_from_model(model, spec)
    output = WavenetPredictor(weights, block=700).predict(dry)
    assert np.max(np.abs(output - expected)) < 1e-5 and np.std(expected) > 1e-3
    predictor = WavenetPredictor(weights, block=256)
    first, state = predictor.stream(dry[:1234])
    rest, _ = predictor.stream(dry[1234:], state)
    assert np.max(np.abs(np.concatenate([first, rest]) - output)) < 1e-6


def test_nam_export_round_trips_and_its_checks_name_the_fault() -> None:
    from datetime import datetime

    from sd1job.export_wavenet import build_wavenet_nam, wavenet_nam_weights, wavenet_weights_from_nam
    from sd1job.infer.wavenet import WavenetPredictor, wavenet_weights_from_model

    model = random_model(TINY, seed=5)
    weights = wavenet_weights_from_model(model, TINY)
    document = build_wavenet_nam(weights, 48_000, NamMetadata(name="tiny", date=datetime(2026, 1, 2)))
    assert document["architecture"] == "WaveNet" and document["config"]["head_scale"] == 0.02
    assert len(document["weights"]) == TINY.parameter_count() + 1 == model.count_params() + 2 * 2 + 2 + 1
    read = decode_nam(encode_nam(document), "tiny.nam")
    back = wavenet_weights_from_nam(read, "tiny.nam")
    assert np.array_equal(wavenet_nam_weights(back), wavenet_nam_weights(weights))
    dry = np.random.default_rng(1).standard_normal(3000).astype(np.float32)
    assert np.array_equal(WavenetPredictor(back).predict(dry), WavenetPredictor(weights).predict(dry))
    broken = json.loads(json.dumps(document))
    broken["weights"] = broken["weights"][:-1]
    with pytest.raises(NamFileError, match=r"tiny.nam: weights has \d+ numbers"):
        encode_nam(broken, "tiny.nam")
    require_exportable("wavenet")


# ------------------------------------------------------------------------------ a tiny unit through the stage


def synthetic_pair(samples: int = 16_000) -> tuple[np.ndarray, np.ndarray]:
    """Sines under a slow envelope (dry) through a soft clipper with a one-sample memory (wet)."""
    t = np.arange(samples) / 8000.0
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t)
    dry = envelope * (0.3 * np.sin(2 * np.pi * 110 * t) + 0.2 * np.sin(2 * np.pi * 233 * t + 1))
    wet = np.tanh(3 * dry) + 0.3 * np.tanh(3 * np.concatenate([[0.0], dry[:-1]]))
    return dry.astype(np.float32), wet.astype(np.float32)


def prepare(root: Path) -> tuple[Config, LocalStore]:
    """What the data stage writes for a wavenet unit: the audio and the held-out fraction."""
    config = config_from_mapping(
        {
            "store": str(root),
            "run_id": "wavenet-test",
            "recordings": {"sample_rate": 8000},
            "model": {
                "kind": "wavenet",
                "wavenet": {"presets": ["nano"], "segment_samples": 1024, "batch_size": 3, "learning_rate": 0.01},
            },
            "train": {"epochs": 3, "patience": 3, "seed": 7},
            "dataset": {"val_fraction": 0.25},
        }
    )
    store = LocalStore(config.store)
    layout = RunLayout(config.run_id)
    dry, wet = synthetic_pair()
    store.write_bytes(layout.audio, dataset.encode_arrays(dry=dry, wet=wet))
    store.write_json(layout.manifest, {"val_fraction": 0.25})
    return config, store


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from sd1job.stages.train import train_unit

    config, store = prepare(tmp_path_factory.mktemp("wavenet") / "store")
    return {"config": config, "store": store, "history": train_unit(config, store, UNIT)}


def test_a_wavenet_unit_trains_on_segments_and_eval_scores_it(trained: dict[str, Any]) -> None:
    from sd1job.stages.evaluate import make_predictor

    config, store, history = trained["config"], trained["store"], trained["history"]
    layout = RunLayout(config.run_id)
    assert history["unit"] == "wavenet-nano-s7" and history["kind"] == "wavenet" and history["lstm_units"] is None
    # 12,000 training samples: (12,000 - 4,092) // 1,024 = 7 segments, two batches of 3 per epoch.
    assert history["train_windows"] == 2 * 3 * 1024 and history["val_windows"] == 4000
    losses = [e["val_loss"] for e in history["epochs"]]
    assert history["epochs_run"] == 3 and min(losses) < losses[0] and np.isfinite(losses).all()
    assert history["train_settings"]["wavenet"]["preset"] == "nano"
    predictor = make_predictor(store.read_bytes(layout.model(UNIT)), "model", UNIT, 4096)
    dry, wet = synthetic_pair()
    output = predictor.predict(dry[12_000:])
    esr = float(np.sum((output - wet[12_000:]) ** 2) / np.sum(wet[12_000:] ** 2))
    # The stage's val ESR had the 4,092 samples before the stretch as context; eval starts from silence.
    assert abs(esr - history["best_val_loss"]) < 0.05 * history["best_val_loss"] + 1e-3


def test_a_wavenet_unit_resumes_from_its_checkpoint_to_the_same_model(
    trained: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sd1job.stages import train

    config, store = prepare(tmp_path / "store")
    layout = RunLayout(config.run_id)
    original = train.UnitRun.on_epoch

    def stop_after_one(self: Any, epoch: int, *args: Any) -> bool:
        result = original(self, epoch, *args)
        if epoch == 1:
            raise KeyboardInterrupt  # killed right after the first checkpoint landed
        return result

    with monkeypatch.context() as patch:
        patch.setattr(train.UnitRun, "on_epoch", stop_after_one)
        with pytest.raises(KeyboardInterrupt):
            train.train_unit(config, store, UNIT)
    assert store.exists(layout.checkpoint(UNIT)) and not store.exists(layout.history(UNIT))
    history = train.train_unit(config, store, UNIT)
    assert history["resumed_at_epochs"] == [1]
    expected = trained["history"]
    assert [e["val_loss"] for e in history["epochs"]] == [e["val_loss"] for e in expected["epochs"]]


def test_recipe_loss_is_esr_plus_the_weighted_pre_emphasised_terms() -> None:
    from sd1job.losses import mrstft, pre_emphasised, recipe_loss

    rng = np.random.default_rng(2)
    y = rng.standard_normal((2, 3000)).astype(np.float32)
    p = (y + 0.1 * rng.standard_normal((2, 3000))).astype(np.float32)
    plain = float(np.sum((y - p) ** 2) / np.sum(y**2))
    assert float(recipe_loss(y[..., None], p[..., None])) == pytest.approx(plain, rel=1e-5)
    yp, pp = y[:, 1:] - 0.85 * y[:, :-1], p[:, 1:] - 0.85 * p[:, :-1]
    pre = float(np.sum((yp - pp) ** 2) / np.sum(yp**2))
    assert float(recipe_loss(y, p, pre_emphasis_weight=2.0)) == pytest.approx(plain + 2 * pre, rel=1e-5)
    stft = float(mrstft(pre_emphasised(y), pre_emphasised(p)))
    assert stft > 0 and float(mrstft(y, y)) == pytest.approx(0.0, abs=1e-6)
    assert float(recipe_loss(y, p, mrstft_weight=0.5)) == pytest.approx(plain + 0.5 * stft, rel=1e-5)
    assert float(mrstft(y[:, :200], p[:, :200])) == 0.0  # no resolution's window fits 200 samples


def test_mrstft_of_a_chunk_whose_length_is_known_only_at_run_time_is_finite_with_finite_gradients() -> None:
    import tensorflow as tf

    from sd1job.losses import mrstft

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)] * 2)
    def loss_and_gradient(y: tf.Tensor, p: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch(p)
            loss = mrstft(y, p)
        return loss, tape.gradient(loss, p)

    rng = np.random.default_rng(5)
    y = rng.standard_normal((2, 3000)).astype(np.float32)
    p = (y + 0.1 * rng.standard_normal((2, 3000))).astype(np.float32)
    for length, expected in ((3000, float(mrstft(y, p))), (472, float(mrstft(y[:, :472], p[:, :472]))), (200, 0.0)):
        loss, gradient = loss_and_gradient(y[:, :length], p[:, :length])  # the stateful trainer's last chunk
        assert float(loss) == pytest.approx(expected, rel=1e-5, abs=1e-7)
        assert np.all(np.isfinite(gradient.numpy()))
    assert float(mrstft(y[:, :472], p[:, :472])) > 0  # 472 samples fit the 240-sample window only


def test_the_fitter_trains_a_custom_architecture_with_every_loss_term() -> None:
    from sd1job.config import WavenetConfig
    from sd1job.wavenet_training import WavenetFitter, wavenet_segments

    dry, wet = synthetic_pair(6000)
    segments = wavenet_segments(len(dry), 1500, TINY.receptive_field, 0.25)
    assert list(segments.starts) == [0, 1500] and segments.val_start == 4500  # each also reads 64 samples more
    settings = WavenetConfig(segment_samples=1500, batch_size=2, pre_emphasis_weight=1.0, mrstft_weight=0.01)
    fitter = WavenetFitter(dry, wet, segments, TINY, settings, seed=1)
    logs: list[dict[str, float]] = []
    updates: list[float] = []
    fitter.fit(
        0, 2, lambda e, entry, s, t: logs.append(entry) is not None, lambda e, u, loss: updates.append(loss) or False
    )
    assert len(logs) == 2 and len(updates) == 2 and all(np.isfinite(e["val_loss"]) for e in logs)
    assert fitter.val_targets == 1500 and fitter.train_targets == 2 * 1500
    with pytest.raises(dataset.DatasetError, match="segment_samples"):
        wavenet_segments(6000, 5000, TINY.receptive_field, 0.25)


def test_the_stateful_fitter_adds_the_recipe_terms_to_its_loss_by_default_and_plain_esr_without_them() -> None:
    import tensorflow as tf

    from sd1job.config import StatefulConfig
    from sd1job.losses import recipe_loss
    from sd1job.training import StatefulFitter

    dry, wet = synthetic_pair(8000)
    segments = dataset.stateful_segments(len(dry), 2000, 0.25, 200)
    rng = np.random.default_rng(4)
    y = tf.constant(rng.standard_normal((2, 1500, 1)).astype(np.float32))
    p = tf.constant(rng.standard_normal((2, 1500, 1)).astype(np.float32))
    assert (StatefulConfig().pre_emphasis_weight, StatefulConfig().mrstft_weight) == (1.0, 2e-4)  # measured best
    for weights in ({}, {"pre_emphasis_weight": 0.0, "mrstft_weight": 0.0}):
        settings = StatefulConfig(**weights)
        fitter = StatefulFitter(
            dry, wet, segments, settings, units=4, learning_rate=0.01, lr_decay=1.0, clipnorm=None, seed=1
        )
        loss = float(fitter._loss_terms(y, p)[0])
        expected = recipe_loss(y, p, settings.pre_emphasis_weight, settings.mrstft_weight)
        assert loss == pytest.approx(float(expected), rel=1e-5)
    assert float(recipe_loss(y, p)) < float(recipe_loss(y, p, 1.0, 2e-4))  # the terms are really there
