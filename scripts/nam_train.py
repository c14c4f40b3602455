"""Train one model with Neural Amp Modeler's own trainer, then predict the held-out stretch (``make bench-nam``).

Runs in ``.venv-nam`` (PyTorch and neural-amp-modeler; it imports neither sd1job nor TensorFlow).
``bench/bench_nam.py`` calls it once per (model, seed):

    .venv-nam/bin/python scripts/nam_train.py --split DIR --model standard --seed 25 --budget 150 --out OUT

``DIR`` holds the split both tools read: ``train_dry.wav``/``train_wet.wav``, ``validation_dry.wav``/
``validation_wet.wav`` and ``test_dry.npy`` (32-bit float). Training is ``nam.train.full.main``, the
trainer behind NAM's ``nam-full`` command, with the data, model and learning configs that NAM's
easy trainer used for its presets (``nam/train/core.py`` up to 0.12; 0.13's easy trainer replaced
them with one packed WaveNet):

- WaveNet ``standard``/``lite``/``feather``: the presets' layer arrays (tanh, ungated, kernel 3,
  head scale 0.02; written in 0.13's ``head`` spelling), loss MSE plus 2e-4 x a multi-resolution
  STFT distance after 1 - 0.85 z^-1, checkpoint on validation ESR, Adam lr 0.004, ExponentialLR
  gamma 0.993 per epoch;
- ``lstm``: one LSTM layer of ``--hidden`` units (64, the size of sd1job's stateful model; NAM's
  own presets are smaller), burn-in 4,096 samples, truncation 512, loss MSE plus the MSE after
  1 - 0.85 z^-1 plus the same STFT term, the first 4,096 samples of each segment masked,
  checkpoint on validation MSE, Adam lr 0.01, gamma 0.995;
- both: batches of 16 segments of 8,192 output samples, shuffled, no latency correction (the split
  is aligned already), no output normalisation (the easy trainer before 0.13 had none).

The only changes to NAM's recipe are what the benchmark needs: one thread (``torch.set_num_threads(1)``
and one inter-op thread), the CPU, no progress bar or logger, the epoch cap lifted and Lightning's
``max_time`` set to ``--budget`` seconds (checked after each batch; validation runs count). The
best validation checkpoint is restored (NAM's own ``main`` does this) and exported as
``OUT/model.nam``; that file, loaded back with ``nam.models.init_from_nam``, predicts
``test_dry.npy`` from a zero-padded start (``OUT/prediction.npy``, float32, the input's length).
``OUT/result.json`` records the parameter count, the training seconds (inside Lightning's
``Trainer.fit``: the sanity validation, the epochs and their validation; ``main_seconds`` adds data
loading, the checkpoint restore and the export) and the epochs trained.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

WAVENET_PRESETS = ("standard", "lite", "feather")
MODELS = (*WAVENET_PRESETS, "lstm")
SEGMENT_SAMPLES = 8192  # NAM's _NY_DEFAULT
BATCH_SIZE = 16
EPOCH_CAP = 1_000_000  # the budget, not the epoch count, ends training
_DOUBLING_10 = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
_DOUBLING_7 = [1, 2, 4, 8, 16, 32, 64]
_LONG_13 = [128, 256, 512, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
MRSTFT = {"pre_emph_mrstft_weight": 2.0e-4, "pre_emph_mrstft_coef": 0.85}


def _layer(input_size: int, channels: int, head_size: int, dilations: list[int], head_bias: bool) -> dict[str, Any]:
    return {
        "input_size": input_size,
        "condition_size": 1,
        "channels": channels,
        "head": {"out_channels": head_size, "kernel_size": 1, "bias": head_bias},
        "kernel_size": 3,
        "dilations": dilations,
        "activation": "Tanh",
    }


def wavenet_config(preset: str) -> dict[str, Any]:
    """The easy trainer's WaveNet preset as a NAM 0.13 ``WaveNet`` config."""
    channels, first, second = {
        "standard": (16, _DOUBLING_10, _DOUBLING_10),
        "lite": (12, _DOUBLING_7, _LONG_13),
        "feather": (8, _DOUBLING_7, _LONG_13),
    }[preset]
    half = channels // 2
    return {
        "layers_configs": [
            _layer(1, channels, half, first, head_bias=False),
            _layer(channels, half, 1, second, head_bias=True),
        ],
        "head_scale": 0.02,
    }


def model_config(model: str, hidden: int) -> dict[str, Any]:
    """NAM's model config (net, loss, optimiser, scheduler) for one of ``MODELS``."""
    if model in WAVENET_PRESETS:
        return {
            "net": {"name": "WaveNet", "config": wavenet_config(model)},
            "loss": {"val_loss": "esr", **MRSTFT},
            "optimizer": {"lr": 0.004},
            "lr_scheduler": {"class": "ExponentialLR", "kwargs": {"gamma": 0.993}},
        }
    if model == "lstm":
        return {
            "net": {
                "name": "LSTM",
                "config": {"hidden_size": hidden, "num_layers": 1, "train_burn_in": 4096, "train_truncate": 512},
            },
            "loss": {"val_loss": "mse", "mask_first": 4096, "pre_emph_weight": 1.0, "pre_emph_coef": 0.85, **MRSTFT},
            "optimizer": {"lr": 0.01},
            "lr_scheduler": {"class": "ExponentialLR", "kwargs": {"gamma": 0.995}},
        }
    raise ValueError(f"model {model!r} is not one of {', '.join(MODELS)}")


def data_config(split: Path) -> dict[str, Any]:
    """Training and validation stretches from the split's files (aligned: no delay)."""
    return {
        "train": {
            "x_path": str(split / "train_dry.wav"),
            "y_path": str(split / "train_wet.wav"),
            "ny": SEGMENT_SAMPLES,
        },
        "validation": {
            "x_path": str(split / "validation_dry.wav"),
            "y_path": str(split / "validation_wet.wav"),
            "ny": None,
        },
        "common": {"delay": 0},
    }


def learning_config(budget: float) -> dict[str, Any]:
    """The easy trainer's loaders, on one CPU, stopped by Lightning's timer after ``budget`` seconds."""
    return {
        "train_dataloader": {
            "batch_size": BATCH_SIZE,
            "shuffle": True,
            "pin_memory": False,
            "drop_last": True,
            "num_workers": 0,
        },
        "val_dataloader": {},
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "max_epochs": EPOCH_CAP,
            "max_time": {"seconds": budget},
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "logger": False,
        },
    }


def epochs_trained(out: Path) -> int:
    """Epochs that finished, from the per-epoch checkpoints NAM's ``main`` keeps (``checkpoint_epoch_NNNN``)."""
    numbers = [int(path.stem.split("=")[-1]) for path in out.rglob("checkpoint_epoch_*.ckpt")]
    return max(numbers) + 1 if numbers else 0


def _time_fit(trainer_class: Any) -> list[float]:
    """Measure ``Trainer.fit`` (the sanity validation, the epochs and their validation) without changing it.

    Returns the list the wall seconds of each call are appended to.
    """
    seconds: list[float] = []
    fit = trainer_class.fit

    def timed_fit(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fit(self, *args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - started)

    trainer_class.fit = timed_fit
    return seconds


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train, export, reload, predict; return what ``result.json`` records."""
    import pytorch_lightning as pl
    import torch

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    from nam import __version__ as nam_version
    from nam.models import init_from_nam
    from nam.train.full import main

    args.out.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(args.seed, workers=True)
    fit_seconds = _time_fit(pl.Trainer)
    started = time.perf_counter()
    main(
        data_config(args.split),
        model_config(args.model, args.hidden),
        learning_config(args.budget),
        args.out,
        no_show=True,
        make_plots=False,
    )
    seconds = time.perf_counter() - started
    model = init_from_nam(json.loads((args.out / "model.nam").read_text()))
    model.eval()
    dry = np.load(args.split / "test_dry.npy").astype(np.float32)
    with torch.no_grad():
        prediction = model(torch.from_numpy(dry)).numpy().astype(np.float32).ravel()
    if prediction.shape != dry.shape:
        raise SystemExit(f"nam_train: prediction has {prediction.shape[0]} samples for {dry.shape[0]} of input")
    np.save(args.out / "prediction.npy", prediction)
    return {
        "model": args.model,
        "hidden": args.hidden if args.model == "lstm" else None,
        "seed": args.seed,
        "budget_seconds": args.budget,
        "train_seconds": round(sum(fit_seconds), 3),
        "main_seconds": round(seconds, 3),
        "epochs": epochs_trained(args.out),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "versions": {"neural-amp-modeler": nam_version, "torch": torch.__version__},
    }


def main_cli(argv: list[str] | None = None) -> int:
    """CLI entry: one model, one seed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", type=Path, required=True, help="folder of the shared split")
    parser.add_argument("--model", choices=MODELS, required=True)
    parser.add_argument("--hidden", type=int, default=64, help="LSTM units (--model lstm)")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--budget", type=float, required=True, help="wall-clock training budget in seconds")
    parser.add_argument("--out", type=Path, required=True, help="folder for model.nam, prediction.npy, result.json")
    args = parser.parse_args(argv)
    result = run(args)
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main_cli())
