"""Side by side with Neural Amp Modeler's own trainer (``make bench-nam``): same data, same budget, one thread.

    python bench/bench_nam.py [--data demo|realdata] [--budget 150] [--seeds 3] [--models a,b]
        [--recipes profile,nam-loss,...] [--jobs 1]

One capture pair, split once (``bench/nam_compare.py``: the last 15 % held out as ``sd1job capture``
holds it out, the last 25 % of the rest for validation), written to files both tools read. For each
seed and model, a fresh process trains one model on the training stretch, validates on the
validation stretch, and stops at ``--budget`` seconds of wall clock on one thread:

- NAM's WaveNet standard, lite and feather and its LSTM(64) with NAM's own trainer
  (``scripts/nam_train.py`` in ``.venv-nam``: ``nam.train.full.main`` with the easy trainer's
  recipes, Lightning's ``max_time`` as the budget), which also predicts the test stretch;
- sd1job's WaveNet standard, stateful LSTM(64) and windowed LSTM(64) at 1 and 10 ms with sd1job's
  own train stage (``python -m sd1job train --unit U``) under the capture profile
  (``--config``, default ``configs/capture.yaml``) with ``dataset.split: blocked``,
  ``train.threads: 1`` and ``train.max_train_seconds: BUDGET``; one more process then predicts
  the test stretch with each unit's fast predictor (``sd1job.infer.predictor.make_predictor``).

``--recipes profile,nam-loss,nam-segments`` trains sd1job's models once more under each named
recipe (``bench/nam_compare.py``'s ``RECIPES``: NAM's loss terms, then also its LSTM segmentation),
each in a run of its own (``bench-nam-<recipe>``); the table names them ``<model>+<recipe>`` and
compares each with the profile's model, which is how the profile's recipe was chosen.

Every prediction (float32, from a zero state or zero padding at the stretch's start) is scored
against the test stretch's wet signal with ``sd1job.scores.esr`` and ``esr_pre`` in float64. The
table (``bench/results/nam-<data>.json`` and ``.md``, with the CPU) gives per model the geometric
mean test ESR over seeds with its 95 % interval, parameters, training seconds and epochs, the test
against the best model, and the two comparisons the issue asks for (see ``bench/nam_compare.py``).

Data: ``--data demo`` synthesises a capture with the virtual SD-1 (``--seconds``, default 30, at
``--rate`` 48 kHz): the demo training recording (noise floor, validation phrase, sweeps, noise,
varied playing, the phrase again) followed by the six demo riffs, so the held-out 15 % is exactly
the riffs, phrases the training part never plays. ``--data realdata`` joins the clips of one
pedal of ``../shared/realdata`` (``--pair``, default ``openamp-tubescreamer``: four clips of a
Mini Tube Screamer, 19.6 s at 44.1 kHz, EGFxSet, CC-BY-4.0), each aligned by sd1job's latency
check, and is skipped with a message when that folder is absent. (The ``egfx-*`` pairs are two
notes, 9.9 s at 48 kHz; their last 15 % is a note's decaying tail at a seventh of the training
stretch's level, a harsh test.)

Work files go under ``artifacts/bench-nam/<pair or demo-<seconds>s-<rate>hz>-b<budget>/``; a rerun
reuses the split and every model already trained there (sd1job's train stage skips trained units,
NAM runs with a ``result.json``), so an interrupted run resumes; it stops with a message if that
folder holds another split.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench.common import machine, save_results  # noqa: E402
from bench.nam_compare import (  # noqa: E402
    PROFILE_RECIPE,
    RECIPES,
    TEST_FRACTION,
    BenchModel,
    CaptureSplit,
    Recipe,
    capture_split,
    markdown_table,
    models_named,
    recipe_architecture,
    recipe_model_name,
    recipes_named,
    summarise,
)

REALDATA = REPO.parent / "shared" / "realdata"
DEFAULT_PAIR = "openamp-tubescreamer"
# (expected lag, search) per source of ../shared/realdata (its README: EGFxSet wet lags by 27-31
# samples; the openamp copies miss the wet's first 4,410 samples).
REALDATA_LATENCY = {"egfx": (0, 1024), "openamp": (-4400, 200)}
RUN_ID = "bench-nam"
HOLDOUT = "holdout"
MIN_DEMO_SECONDS = 20.0  # six riffs of synth's shortest 0.5 s make the held-out 15 %


# --- the capture pair -----------------------------------------------------------------------------


def demo_pair(work: Path, seconds: float, rate: int, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """A synthetic capture: the demo training recording, then the six riffs (``TEST_FRACTION`` of ``seconds``)."""
    from sd1job.audio import decode_wav
    from sd1job.config import config_from_mapping
    from sd1job.layout import riff_dry_key, riff_wet_key
    from sd1job.store import LocalStore

    config = config_from_mapping({"store": str(work / "demo-store"), "recordings": {"sample_rate": rate}})
    riffs = config.recordings.riffs
    train_seconds = seconds * (1.0 - TEST_FRACTION)
    store = LocalStore(work / "demo-store")
    from sd1job.synth.capture import write_demo_recordings

    write_demo_recordings(
        store, config, seconds=train_seconds, riff_seconds=(seconds - train_seconds) / len(riffs), seed=seed
    )
    recordings = config.recordings
    keys = [(recordings.train.dry, recordings.train.wet)]
    keys += [(riff_dry_key(recordings.test_dir, r), riff_wet_key(recordings.test_dir, r)) for r in riffs]
    dry = np.concatenate([decode_wav(store.read_bytes(d), d, rate).samples for d, _ in keys])
    wet = np.concatenate([decode_wav(store.read_bytes(w), w, rate).samples for _, w in keys])
    return dry, wet, f"demo: virtual SD-1, {train_seconds:g} s of training recording + riffs {', '.join(riffs)}"


def realdata_pair(folder: Path) -> tuple[np.ndarray, np.ndarray, int, str]:
    """Every clip of one ``../shared/realdata`` pedal folder, each aligned by sd1job's check, joined in name order."""
    from sd1job.audio import check_pair, decode_wav

    expected, search = REALDATA_LATENCY[folder.name.split("-")[0]]
    dries, wets, rates, notes = [], [], set(), []
    for dry_path in sorted((folder / "Dry").glob("d_*.wav")):
        wet_path = folder / "Wet" / f"w_{dry_path.stem[2:]}.wav"
        dry, wet = decode_wav(dry_path.read_bytes(), str(dry_path)), decode_wav(wet_path.read_bytes(), str(wet_path))
        pair = check_pair(
            dry_path.stem, dry, wet, latency_search=search, latency_expected=expected, compensate_latency=True
        )
        dries.append(pair.dry)
        wets.append(pair.wet)
        rates.add(dry.sample_rate)
        notes.append(f"{dry_path.stem[2:]} (lag {pair.report['latency_samples']})")
    if not dries or len(rates) != 1:
        raise SystemExit(f"bench-nam: {folder}: no Dry/d_*.wav clips at one sample rate")
    source = f"realdata: {folder.name}, clips {', '.join(notes)}; EGFxSet (CC-BY-4.0)"
    return np.concatenate(dries), np.concatenate(wets), rates.pop(), source


def write_split(split: CaptureSplit, dry: np.ndarray, wet: np.ndarray, folder: Path, source: str) -> None:
    """The files both tools read: WAV stretches (32-bit float) for NAM, the test stretch as .npy, the sd1job store."""
    from sd1job.audio import encode_wav
    from sd1job.layout import riff_dry_key, riff_wet_key

    record = {"source": source, **asdict(split), "ranges": split.ranges(), "seconds": split.seconds()}
    text = json.dumps(record, indent=2) + "\n"
    if (folder / "split.json").exists() and (folder / "split.json").read_text() != text:
        raise SystemExit(
            f"bench-nam: {folder.parent} holds models trained on another split ({folder / 'split.json'}); "
            "remove that folder or pass another --work"
        )
    folder.mkdir(parents=True, exist_ok=True)
    ranges = split.ranges()
    for name in ("train", "validation"):
        start, stop = ranges[name]
        for side, signal in (("dry", dry), ("wet", wet)):
            (folder / f"{name}_{side}.wav").write_bytes(encode_wav(signal[start:stop], split.sample_rate, "FLOAT"))
    test = slice(*ranges["test"])
    np.save(folder / "test_dry.npy", dry[test].astype(np.float32))
    np.save(folder / "test_wet.npy", wet[test].astype(np.float32))
    store = folder / "sd1job-store"
    files = {
        "recordings/train/Dry/d_train.wav": dry[: split.test_start],
        "recordings/train/Wet/w_train.wav": wet[: split.test_start],
        riff_dry_key("recordings/test", HOLDOUT): dry[test],
        riff_wet_key("recordings/test", HOLDOUT): wet[test],
    }
    for key, samples in files.items():
        (store / key).parent.mkdir(parents=True, exist_ok=True)
        (store / key).write_bytes(encode_wav(samples, split.sample_rate, "FLOAT"))
    (folder / "split.json").write_text(text)


# --- sd1job's side ----------------------------------------------------------------------------------


def sd1job_config(
    profile_path: Path,
    split: CaptureSplit,
    store: Path,
    budget: float,
    seeds: list[int],
    models: list[BenchModel],
    recipe: Recipe = RECIPES[PROFILE_RECIPE],
) -> Any:
    """The capture profile under ``recipe`` pointed at the split: blocked validation cut, one thread, the budget,
    the chosen models (run id ``bench-nam-<recipe>``)."""
    from sd1job.config import config_from_mapping, load_config
    from sd1job.design import nested_update

    profile = load_config(profile_path)
    data = profile.model_dump(mode="json")
    for path, value in recipe.overrides.items():
        nested_update(data, path, value)
    kinds = sorted({m.sd1job_kind for m in models if m.sd1job_kind}, key=["windowed", "stateful", "wavenet"].index)
    context_ms = sorted({m.context_ms for m in models if m.context_ms is not None}) or [1.0]
    presets = sorted({m.preset for m in models if m.preset}) or ["standard"]
    data["store"] = str(store)
    data["run_id"] = run_id(recipe)
    data["recordings"] = {
        **data["recordings"],
        "train": {"dry": "recordings/train/Dry/d_train.wav", "wet": "recordings/train/Wet/w_train.wav"},
        "test_dir": "recordings/test",
        "riffs": [HOLDOUT],
        "sets": {},
        "set": None,
        "sample_rate": split.sample_rate,
        "compensate_latency": False,
        "latency_expected": 0,
    }
    data["dataset"].pop("contexts", None)
    data["dataset"].update(context_ms=context_ms, split="blocked", val_fraction=profile.dataset.val_fraction)
    data["model"]["kind"] = kinds
    data["model"]["wavenet"]["presets"] = presets
    data["train"].update(threads=1, max_train_seconds=budget, seed=seeds[0], repeats=len(seeds))
    data["sweep"] = {"grid": {}}
    data["eval"]["waveform_riff"] = None
    data["metrics"] = {"pushgateway": None, "port": 0}
    return config_from_mapping(data, source=f"bench-nam's profile from {profile_path}, recipe {recipe.name}")


def run_id(recipe: Recipe) -> str:
    """The sd1job run that holds the units trained under ``recipe``."""
    return f"{RUN_ID}-{recipe.name}"


def recipe_config_path(work: Path, recipe: Recipe) -> Path:
    """The sd1job config the units trained under ``recipe`` run with."""
    return work / f"sd1job-{recipe.name}.yaml"


def recipe_models(recipe: Recipe, models: list[BenchModel]) -> list[BenchModel]:
    """sd1job's models among ``models`` that ``recipe`` changes (all of them for the profile)."""
    return [m for m in models if m.tool == "sd1job" and m.sd1job_kind in recipe.kinds]


def sd1job_unit(model: BenchModel, seed: int, sample_rate: int) -> Any:
    """The sd1job unit that trains ``model`` with ``seed``."""
    from sd1job.units import Unit

    if model.sd1job_kind == "windowed":
        assert model.context_ms is not None
        return Unit("windowed", round(model.context_ms * sample_rate / 1000), seed)
    return Unit(model.sd1job_kind, None, seed, model.preset)


def child_env() -> dict[str, str]:
    """The environment of a child process: this checkout's sd1job first, quiet TensorFlow."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


def run_logged(command: list[str], log: Path) -> float:
    """Run ``command`` in the repository with its output in ``log``; return its wall seconds; SystemExit if it fails."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log.open("w") as out:
        code = subprocess.call(command, cwd=REPO, env=child_env(), stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    if code != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-15:])
        raise RuntimeError(f"{' '.join(command[:4])} ... exited {code} (log {log}):\n{tail}")
    return seconds


def predict_sd1job(config_path: Path, unit_names: list[str], split_dir: Path, out_dir: Path) -> None:
    """In this process: each trained unit's fast predictor on the test stretch, saved as ``<unit>/prediction.npy``."""
    from sd1job.config import load_config
    from sd1job.infer.predictor import make_predictor
    from sd1job.layout import RunLayout
    from sd1job.store import open_store
    from sd1job.units import parse_unit

    config = load_config(config_path)
    store, layout = open_store(config.store), RunLayout(config.run_id)
    dry = np.load(split_dir / "test_dry.npy")
    for name in unit_names:
        unit = parse_unit(name)
        key = layout.model(unit)
        predictor = make_predictor(store.read_bytes(key), store.url(key), unit, config.eval.batch_size)
        predictor.warm_up()
        prediction = np.asarray(predictor.predict(dry), dtype=np.float32).ravel()
        (out_dir / name).mkdir(parents=True, exist_ok=True)
        np.save(out_dir / name / "prediction.npy", prediction)
        print(f"predicted {name}: {len(prediction)} samples", flush=True)


def work_name(args: argparse.Namespace) -> str:
    """The work folder's name: everything that decides the data and the budget (``demo-30s-48000hz-b150``)."""
    data = f"{args.pair}" if args.data == "realdata" else f"demo-{args.seconds:g}s-{args.rate}hz"
    return f"{data}-b{args.budget:g}"


# --- the runs ---------------------------------------------------------------------------------------


def nam_job(model: BenchModel, seed: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Train (or reuse) one NAM model; its row without scores."""
    out = work / "nam" / f"{model.name}-s{seed}"
    result_path = out / "result.json"
    if not result_path.exists():
        command = [
            str(args.nam_python),
            "scripts/nam_train.py",
            "--split",
            str(work / "split"),
            "--model",
            str(model.nam_model),
            "--seed",
            str(seed),
            "--budget",
            str(args.budget),
            "--out",
            str(out),
        ]
        process_seconds = run_logged(command, work / "logs" / f"{model.name}-s{seed}.log")
        result = json.loads(result_path.read_text())
        result["process_seconds"] = round(process_seconds, 3)
        result_path.write_text(json.dumps(result, indent=2) + "\n")
    result = json.loads(result_path.read_text())
    return {
        "model": model.name,
        "tool": model.tool,
        "architecture": model.architecture,
        "seed": seed,
        "parameters": result["parameters"],
        "train_seconds": result["train_seconds"],
        "process_seconds": result.get("process_seconds"),
        "epochs": result["epochs"],
        "prediction": str(out / "prediction.npy"),
    }


def sd1job_job(model: BenchModel, seed: int, recipe: Recipe, work: Path, rate: int) -> dict[str, Any]:
    """Train (or let the train stage skip) one sd1job unit under ``recipe``; its row without scores."""
    unit = sd1job_unit(model, seed, rate)
    name = recipe_model_name(model.name, recipe.name)
    command = [
        sys.executable,
        "-m",
        "sd1job",
        "train",
        "-q",
        "--config",
        str(recipe_config_path(work, recipe)),
        "--unit",
        unit.name,
    ]
    process_seconds = run_logged(command, work / "logs" / f"{name}-s{seed}.log")
    unit_dir = work / "split" / "sd1job-store" / "runs" / run_id(recipe) / "models" / unit.path
    history = json.loads((unit_dir / "history.json").read_text())
    summary = json.loads((unit_dir / "summary.json").read_text())
    return {
        "model": name,
        "tool": model.tool,
        "architecture": recipe_architecture(model.architecture, recipe.name),
        "recipe": recipe.name,
        "seed": seed,
        "unit": unit.name,
        "parameters": summary["parameter_count"],
        "train_seconds": history.get("total_seconds"),
        "process_seconds": round(process_seconds, 3),
        "epochs": history.get("epochs_run"),
        "stopped": history.get("stop_reason") or history.get("outcome"),
        "outcome": history.get("outcome", "learned"),
        "prediction": str(work / "sd1job" / recipe.name / unit.name / "prediction.npy"),
    }


def score(row: dict[str, Any], test_wet: np.ndarray) -> dict[str, Any]:
    """The row with the test ESR and pre-emphasised ESR of its prediction: NaN when it is missing or not finite,
    or when sd1job's train stage judged the unit a failure (``outcome`` diverged or failed_to_learn: a failure is
    counted as one, never folded into the interval; what its kept weights scored stays in ``esr_of_failed``)."""
    from sd1job.scores import esr, esr_pre

    path = Path(row.pop("prediction"))
    prediction = np.load(path) if path.exists() else None
    if prediction is None or prediction.shape != test_wet.shape or not np.all(np.isfinite(prediction)):
        problem = "missing" if prediction is None else "not finite or not the test stretch's length"
        print(f"bench-nam: {row['model']} seed {row.get('seed')}: prediction {path} {problem}", flush=True)
        return {**row, "esr": float("nan"), "esr_pre": float("nan"), "failed": row.get("failed") or problem}
    scores = {"esr": esr(test_wet, prediction), "esr_pre": esr_pre(test_wet, prediction)}
    if row.get("outcome", "learned") != "learned":
        print(f"bench-nam: {row['model']} seed {row.get('seed')}: {row['outcome']}, counted as failed", flush=True)
        return {**row, "esr": float("nan"), "esr_pre": float("nan"), "failed": row["outcome"], "esr_of_failed": scores}
    return {**row, **scores}


def run_bench(args: argparse.Namespace) -> int:
    """Prepare the split, train every (model, seed), predict, score, write the table."""
    models = models_named(args.models)
    recipes = recipes_named(args.recipes)
    seeds = [args.seed + i for i in range(args.seeds)]
    work = args.work or REPO / "artifacts" / "bench-nam" / work_name(args)
    work.mkdir(parents=True, exist_ok=True)
    if any(m.tool == "NAM" for m in models) and not Path(args.nam_python).exists():
        print(f"bench-nam: {args.nam_python} not found; run `make .venv-nam/.installed` (or make check-nam)")
        return 2
    if args.data == "realdata":
        folder = REALDATA / args.pair
        if not folder.is_dir():
            print(f"bench-nam: skipped: {folder} is not present (the real pairs live in ../shared/realdata)")
            return 0
        dry, wet, rate, source = realdata_pair(folder)
    else:
        rate = args.rate
        dry, wet, source = demo_pair(work, args.seconds, rate, args.seed)
    from sd1job.config import load_config

    profile = load_config(args.config)
    split = capture_split(len(dry), rate, TEST_FRACTION, profile.dataset.val_fraction)
    write_split(split, dry, wet, work / "split", source)
    seconds = split.seconds()
    print(f"bench-nam: {source}", flush=True)
    print(
        f"bench-nam: {len(dry) / rate:.2f} s at {rate} Hz: train {seconds['train']:.2f} s, validation "
        f"{seconds['validation']:.2f} s, test {seconds['test']:.2f} s; budget {args.budget:g} s per model, "
        f"one thread, seeds {seeds}, {len(models)} models",
        flush=True,
    )
    recipes = [recipe for recipe in recipes if recipe_models(recipe, models)]
    for recipe in recipes:
        config = sd1job_config(
            args.config,
            split,
            work / "split" / "sd1job-store",
            args.budget,
            seeds,
            recipe_models(recipe, models),
            recipe,
        )
        config_path = recipe_config_path(work, recipe)
        config_path.write_text(config.to_yaml())
        run_logged(
            [sys.executable, "-m", "sd1job", "data", "-q", "--config", str(config_path)],
            work / "logs" / f"sd1job-data-{recipe.name}.log",
        )

    jobs: list[tuple[BenchModel, int, Recipe | None]] = []
    for seed in seeds:
        jobs += [(model, seed, None) for model in models if model.tool == "NAM"]
        jobs += [(model, seed, recipe) for recipe in recipes for model in recipe_models(recipe, models)]
    started = time.perf_counter()

    def one(job: tuple[BenchModel, int, Recipe | None]) -> dict[str, Any]:
        model, seed, recipe = job
        label = PROFILE_RECIPE if recipe is None else recipe.name  # NAM's models have no recipe of sd1job's
        name = recipe_model_name(model.name, label)
        try:
            row = nam_job(model, seed, args, work) if recipe is None else sd1job_job(model, seed, recipe, work, rate)
        except (RuntimeError, OSError, KeyError, ValueError) as error:
            print(f"bench-nam: {name} seed {seed} FAILED: {error}", flush=True)
            return {
                "model": name,
                "tool": model.tool,
                "architecture": recipe_architecture(model.architecture, label),
                "seed": seed,
                "parameters": None,
                "prediction": "",
                "failed": str(error).splitlines()[0],
            }
        print(
            f"bench-nam: {name} seed {seed}: {row['train_seconds']} s of training, {row['epochs']} epochs "
            f"[{time.perf_counter() - started:.0f} s elapsed]",
            flush=True,
        )
        return row

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(one, jobs))
    for recipe in recipes:
        units = sorted({row["unit"] for row in rows if row.get("recipe") == recipe.name and "unit" in row})
        if not units:
            continue
        run_logged(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "_predict",
                "--config",
                str(recipe_config_path(work, recipe)),
                "--units",
                ",".join(units),
                "--split",
                str(work / "split"),
                "--out",
                str(work / "sd1job" / recipe.name),
            ],
            work / "logs" / f"sd1job-predict-{recipe.name}.log",
        )
    test_wet = np.load(work / "split" / "test_wet.npy")
    rows = [score(row, test_wet) for row in rows]
    summary = summarise(rows)
    table = markdown_table(summary)
    name = f"nam-{args.data}"
    cpu = machine()
    header = (
        f"# bench-nam, {args.data} data\n\n{source}\n\n"
        f"Split: train {seconds['train']:.2f} s, validation {seconds['validation']:.2f} s, held-out test "
        f"{seconds['test']:.2f} s at {rate} Hz. Budget {args.budget:g} s of wall clock per model, one thread, "
        f"seeds {seeds}. CPU: {cpu['processor']} ({cpu['vector']}, {cpu['cpus']} logical CPUs).\n\n"
    )
    path = save_results(
        name,
        {
            "data": args.data,
            "source": source,
            "split": {**asdict(split), "seconds": seconds},
            "budget_seconds": args.budget,
            "seeds": seeds,
            "sd1job_profile": str(args.config),
            "recipes": {recipe.name: dict(recipe.overrides) for recipe in recipes},
            "rows": rows,
            "summary": summary,
            "wall_seconds": round(time.perf_counter() - started, 1),
        },
    )
    path.with_suffix(".md").write_text(header + table)
    print()
    print(header + table)
    print(f"bench-nam: results in {path} and {path.with_suffix('.md')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """CLI entry (``_predict`` is the child step that runs sd1job's predictors)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_predict"]:
        parser = argparse.ArgumentParser(prog="bench_nam.py _predict")
        parser.add_argument("--config", type=Path, required=True)
        parser.add_argument("--units", required=True)
        parser.add_argument("--split", type=Path, required=True)
        parser.add_argument("--out", type=Path, required=True)
        child = parser.parse_args(argv[1:])
        predict_sd1job(child.config, child.units.split(","), child.split, child.out)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=["demo", "realdata"], default="demo")
    parser.add_argument("--budget", type=float, default=150.0, help="wall-clock seconds of training per model")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per model")
    parser.add_argument("--seed", type=int, default=25, help="the first seed (the others follow)")
    parser.add_argument("--models", type=lambda text: text.split(","), default=None, help="a subset, by name")
    parser.add_argument(
        "--recipes",
        type=lambda text: text.split(","),
        default=None,
        help=f"sd1job's training recipes, by name ({', '.join(RECIPES)}; default {PROFILE_RECIPE})",
    )
    parser.add_argument("--jobs", type=int, default=1, help="models trained at once (one thread each)")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "capture.yaml", help="sd1job's profile")
    parser.add_argument("--nam-python", type=Path, default=REPO / ".venv-nam" / "bin" / "python")
    parser.add_argument("--seconds", type=float, default=30.0, help="demo capture length")
    parser.add_argument("--rate", type=int, default=48000, help="demo sample rate")
    parser.add_argument("--pair", default=DEFAULT_PAIR, help="folder of ../shared/realdata (--data realdata)")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default artifacts/bench-nam/...)")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.jobs < 1 or args.budget <= 0:
        parser.error("--seeds and --jobs must be at least 1 and --budget positive")
    if args.data == "demo" and args.seconds < MIN_DEMO_SECONDS:
        parser.error(
            f"--seconds {args.seconds:g}: the demo capture needs at least {MIN_DEMO_SECONDS:g} s (riffs of 0.5 s)"
        )
    try:
        models_named(args.models)
        recipes_named(args.recipes)
    except ValueError as error:
        parser.error(str(error))
    return run_bench(args)


if __name__ == "__main__":
    raise SystemExit(main())
