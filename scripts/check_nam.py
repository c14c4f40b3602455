"""Check an exported ``.nam`` file against Neural Amp Modeler's own code (``make check-nam``).

Two steps in two virtualenvs, handing over files in one folder (default ``artifacts/check-nam``):

``export`` (the project's .venv): a stateful Keras model with seeded random weights (nothing is
trained), exported with sd1job.export to ``model.nam``; a riff from the demo synth as ``dry.wav``
(32-bit float) and ``dry.npy``; sd1job's streaming output on it as ``sd1job_wet.npy``. It also
prints how far sd1job's output is from Keras' ``model.predict`` of the same model.

``compare`` (.venv-nam, PyTorch and neural-amp-modeler; sd1job is not importable there): loads
``model.nam`` with NAM's loader (``nam.models.init_from_nam``), runs it on ``dry.wav`` and prints
the ESR of NAM's output against sd1job's; exits 1 if it is above ``--max-esr`` (1e-4) or if any
sample differs by more than ``--max-diff`` (1e-3): the riff's output is smooth enough that a
one-sample misalignment alone stays under that ESR but not under that difference. It also
checks that NAM re-exports the same config and, apart from the initial state (which NAM's
exporter recomputes with a burn-in), the same weights in the same order. Writes ``nam_wet.npy``.

``export --kind wavenet [--preset standard]`` does the same for sd1job's WaveNet (a Keras model
with seeded random weights, exported with sd1job.export_wavenet; its output from
``sd1job.infer.wavenet`` is also compared with Keras' predict of the same model). ``compare`` reads
the architecture from the file: for a WaveNet, NAM's output (its ``pad_start`` zero padding)
must match, and NAM's re-export must give every weight back in the file's order.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_DIR = Path("artifacts/check-nam")
RATE = 44100
MAX_ESR = 1e-4
MAX_DIFF = 1e-3


def _random_stateful_weights(units: int, seed: int) -> Any:
    """sd1job's stateful Keras model with every weight drawn from a seeded normal, and its LstmWeights."""
    import keras

    from sd1job.infer.weights import weights_from_model
    from sd1job.model import build_stateful_model

    keras.utils.set_random_seed(seed)
    model = build_stateful_model(units)
    rng = np.random.default_rng(seed)
    # Keras' initial biases are zero: draw them too, so the check covers every weight's place.
    model.set_weights([(0.3 * rng.standard_normal(w.shape)).astype(np.float32) for w in model.get_weights()])
    return model, weights_from_model(model, None, "check-nam model")


def _random_wavenet(preset: str, seed: int) -> Any:
    """sd1job's WaveNet with every weight drawn from a seeded normal (small enough to stay out of tanh's flat ends)."""
    import keras

    from sd1job.wavenet_model import build_wavenet
    from sd1job.wavenet_presets import preset_spec

    keras.utils.set_random_seed(seed)
    spec = preset_spec(preset)
    model = build_wavenet(spec)
    rng = np.random.default_rng(seed)
    model.set_weights([(0.2 * rng.standard_normal(w.shape)).astype(np.float32) for w in model.get_weights()])
    return model, spec


def export_wavenet(folder: Path, preset: str, seconds: float, seed: int) -> int:
    """The project-venv step for a WaveNet: model.nam, the riff, sd1job's output (and its gap to Keras)."""
    from datetime import datetime

    from sd1job.audio import encode_wav
    from sd1job.export import NamMetadata, encode_nam
    from sd1job.export_wavenet import build_wavenet_nam
    from sd1job.infer.wavenet import WavenetPredictor, wavenet_weights_from_model
    from sd1job.synth.capture import riff_dry
    from sd1job.wavenet_model import predict_signal

    model, spec = _random_wavenet(preset, seed)
    weights = wavenet_weights_from_model(model, spec)
    dry = riff_dry("battery", seconds, RATE, seed).astype(np.float32)
    wet = WavenetPredictor(weights).predict(dry)
    keras_gap = float(np.max(np.abs(wet - predict_signal(model, dry, spec.receptive_field))))
    training = {"trained": False, "weights": "seeded random normal, scale 0.2", "seed": seed, "preset": preset}
    metadata = NamMetadata(name=f"sd1job check-nam WaveNet {preset}", date=datetime.now(), training=training)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.nam").write_bytes(encode_nam(build_wavenet_nam(weights, RATE, metadata), "model.nam"))
    (folder / "dry.wav").write_bytes(encode_wav(dry, RATE, subtype="FLOAT"))
    np.save(folder / "dry.npy", dry)
    np.save(folder / "sd1job_wet.npy", wet)
    print(f"export: WaveNet {preset} (R = {spec.receptive_field}), {len(dry)} samples ({seconds:g} s riff) -> {folder}")
    print(f"export: sd1job block streaming vs Keras model.predict: max |diff| {keras_gap:.2e}")
    return 0


def export(folder: Path, units: int, seconds: float, seed: int) -> int:
    """The project-venv step: write model.nam, the riff and sd1job's output into ``folder``."""
    from datetime import datetime

    from sd1job.audio import encode_wav
    from sd1job.export import NamMetadata, build_nam, encode_nam
    from sd1job.infer.stateful import StreamingPredictor, keras_predict_stateful
    from sd1job.synth.capture import riff_dry

    model, weights = _random_stateful_weights(units, seed)
    dry = riff_dry("battery", seconds, RATE, seed).astype(np.float32)
    wet = StreamingPredictor(weights).predict(dry)
    keras_gap = float(np.max(np.abs(wet - keras_predict_stateful(model, dry))))
    training = {"trained": False, "weights": "seeded random normal, scale 0.3", "seed": seed, "lstm_units": units}
    metadata = NamMetadata(name=f"sd1job check-nam LSTM({units})", date=datetime.now(), training=training)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.nam").write_bytes(encode_nam(build_nam(weights, RATE, metadata), "model.nam"))
    (folder / "dry.wav").write_bytes(encode_wav(dry, RATE, subtype="FLOAT"))
    np.save(folder / "dry.npy", dry)
    np.save(folder / "sd1job_wet.npy", wet)
    print(f"export: LSTM({units}), {len(dry)} samples ({seconds:g} s riff) -> {folder}")
    print(f"export: sd1job streaming vs Keras model.predict: max |diff| {keras_gap:.2e}")
    return 0


def compare(folder: Path, max_esr: float, max_diff: float) -> int:
    """The NAM-venv step: NAM's loader on model.nam, run on the riff, against sd1job's output."""
    import soundfile
    import torch
    from nam import __version__ as nam_version
    from nam.models import init_from_nam

    torch.set_num_threads(1)
    document = json.loads((folder / "model.nam").read_text())
    model = init_from_nam(document)
    model.eval()
    dry, rate = soundfile.read(folder / "dry.wav", dtype="float32")
    expected = np.load(folder / "sd1job_wet.npy")
    problems = []
    if rate != document["sample_rate"] or model.sample_rate != document["sample_rate"]:
        problems.append(f"sample rates differ: wav {rate}, file {document['sample_rate']}, NAM {model.sample_rate}")
    if not np.array_equal(dry, np.load(folder / "dry.npy")):
        problems.append("dry.wav does not hold dry.npy's samples")
    if document["architecture"] != "WaveNet" and model._export_config() != document["config"]:
        problems.append(f"NAM re-exports config {model._export_config()}, the file has {document['config']}")
    if document["architecture"] == "WaveNet":
        theirs = np.asarray(model._export_weights(), np.float32)
        if not np.array_equal(theirs, np.asarray(document["weights"], np.float32)):
            problems.append("NAM's re-export of the loaded WaveNet puts weights elsewhere than the file")
    else:
        problems += _weight_order_problems(model, document)
    with torch.no_grad():
        nam_wet = model(torch.from_numpy(dry)).numpy().astype(np.float32)
    np.save(folder / "nam_wet.npy", nam_wet)
    esr = float(
        np.sum((nam_wet.astype(np.float64) - expected) ** 2) / max(np.sum(expected.astype(np.float64) ** 2), 1e-30)
    )
    gap = float(np.max(np.abs(nam_wet - expected)))
    print(f"compare: neural-amp-modeler {nam_version}, torch {torch.__version__}, {len(dry)} samples at {rate} Hz")
    print(f"compare: ESR(NAM, sd1job) = {esr:.3e} (limit {max_esr:g}), max |diff| {gap:.2e} (limit {max_diff:g})")
    if esr > max_esr:
        problems.append(f"ESR {esr:.3e} is above {max_esr:g}")
    if gap > max_diff:
        problems.append(f"a sample differs by {gap:.3e}, more than {max_diff:g}")
    for problem in problems:
        print(f"check-nam: FAIL: {problem}", file=sys.stderr)
    print("check-nam: " + ("FAIL" if problems else "ok: NAM's loader reproduces sd1job's output"))
    return 1 if problems else 0


def _weight_order_problems(model: Any, document: dict[str, Any]) -> list[str]:
    """NAM's own export of the model it loaded, against the file, outside the initial state."""
    hidden = document["config"]["hidden_size"]
    theirs = np.asarray(model._export_weights(), np.float32)
    ours = np.asarray(document["weights"], np.float32)
    state = slice(4 * hidden * (1 + hidden) + 4 * hidden, 4 * hidden * (1 + hidden) + 6 * hidden)
    keep = np.ones(len(ours), bool)
    keep[state] = False
    if theirs.shape != ours.shape or not np.array_equal(theirs[keep], ours[keep]):
        return ["NAM's re-export of the loaded model puts weights elsewhere than the file"]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    steps = parser.add_subparsers(dest="step", required=True)
    make = steps.add_parser("export", help="project venv: write model.nam, the riff and sd1job's output")
    make.add_argument("--out", type=Path, default=DEFAULT_DIR)
    make.add_argument("--units", type=int, default=64)
    make.add_argument("--seconds", type=float, default=3.0)
    make.add_argument("--seed", type=int, default=25)
    make.add_argument("--kind", choices=("stateful", "wavenet"), default="stateful")
    make.add_argument("--preset", default="standard", help="the WaveNet preset (with --kind wavenet)")
    check = steps.add_parser("compare", help="NAM venv: run model.nam with NAM's loader and compare")
    check.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    check.add_argument("--max-esr", type=float, default=MAX_ESR)
    check.add_argument("--max-diff", type=float, default=MAX_DIFF)
    args = parser.parse_args(argv)
    if args.step == "export" and args.kind == "wavenet":
        return export_wavenet(args.out, args.preset, args.seconds, args.seed)
    if args.step == "export":
        return export(args.out, args.units, args.seconds, args.seed)
    return compare(args.dir, args.max_esr, args.max_diff)


if __name__ == "__main__":
    raise SystemExit(main())
