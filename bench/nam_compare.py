"""The pure parts of ``make bench-nam``: the split both tools share, the models, the table (numpy and scipy only).

No TensorFlow, PyTorch or I/O here: ``bench/bench_nam.py`` runs the tools and hands this module
one row per trained model (tool, model, seed, test ESR, ...).

The split is `sd1job capture`'s, then sd1job's blocked validation cut: a capture pair of
``length`` samples holds out its last ``test_fraction`` as the test stretch (``test_start =
round(length * (1 - test_fraction))``, as ``sd1job/stages/capture.py`` cuts it); of what is left,
the last ``val_fraction`` is the validation stretch (``validation_start = round(test_start * (1 -
val_fraction))``, the cut ``sd1job.dataset`` makes with ``dataset.split: blocked`` in a training
recording of ``test_start`` samples). NAM reads the training and validation stretches as two
files; sd1job reads them as one training recording that its own cut splits at the same sample.

The table: per model, the geometric mean over seeds of its test ESR with a t-interval on the log
(``sd1job.stats.mean_interval``, the report's convention; none with one seed), the same for the
pre-emphasised ESR, parameters, training seconds and epochs; the model with the lowest mean is
the best and every other model with two or more seeds gets the report's test against it
(``sd1job.stats.worse_than_best``: Welch on log ESR, adjusted for picking the best, Holm). The
issue's two questions get a direct comparison each (``sd1job.stats.relative_change``: the ratio
of geometric means with the 95 % Welch interval): sd1job's WaveNet against NAM's standard
WaveNet and sd1job's stateful LSTM(64) against NAM's LSTM(64). An interval that contains 0 %
is a difference within seed noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sd1job.stats import Interval, mean_interval, relative_change, worse_than_best

TEST_FRACTION = 0.15  # sd1job capture's default --test-fraction
ALPHA = 0.05


@dataclass(frozen=True)
class CaptureSplit:
    """Sample ranges of one capture pair: training ``[0, validation_start)``, then validation, then test."""

    length: int
    validation_start: int
    test_start: int
    sample_rate: int

    def ranges(self) -> dict[str, tuple[int, int]]:
        """``{"train": (0, v), "validation": (v, t), "test": (t, length)}``, half-open sample ranges."""
        return {
            "train": (0, self.validation_start),
            "validation": (self.validation_start, self.test_start),
            "test": (self.test_start, self.length),
        }

    def seconds(self) -> dict[str, float]:
        """The length of each stretch in seconds."""
        return {name: (stop - start) / self.sample_rate for name, (start, stop) in self.ranges().items()}


def capture_split(
    length: int, sample_rate: int, test_fraction: float = TEST_FRACTION, val_fraction: float = 0.25
) -> CaptureSplit:
    """The split of a ``length``-sample pair (see the module docstring); ValueError if a stretch would be empty."""
    if not 0.0 < test_fraction < 1.0 or not 0.0 < val_fraction < 1.0:
        raise ValueError(f"fractions must be in (0, 1): test {test_fraction}, validation {val_fraction}")
    test_start = round(length * (1.0 - test_fraction))
    validation_start = round(test_start * (1.0 - val_fraction))
    if not 0 < validation_start < test_start < length:
        raise ValueError(f"{length} samples are too few to split into training, validation and test stretches")
    return CaptureSplit(length, validation_start, test_start, sample_rate)


@dataclass(frozen=True)
class BenchModel:
    """One model of the benchmark: its name (a results key), the tool that trains it, what it is."""

    name: str
    tool: str  # "NAM" or "sd1job"
    architecture: str
    nam_model: str | None = None  # scripts/nam_train.py --model
    sd1job_kind: str | None = None  # model.kind
    context_ms: float | None = None  # windowed only
    preset: str | None = None  # sd1job WaveNet only


MODELS: tuple[BenchModel, ...] = (
    BenchModel("nam-wavenet-standard", "NAM", "WaveNet standard", nam_model="standard"),
    BenchModel("nam-wavenet-lite", "NAM", "WaveNet lite", nam_model="lite"),
    BenchModel("nam-wavenet-feather", "NAM", "WaveNet feather", nam_model="feather"),
    BenchModel("nam-lstm-64", "NAM", "LSTM(64)", nam_model="lstm"),
    BenchModel("sd1job-wavenet-standard", "sd1job", "WaveNet standard", sd1job_kind="wavenet", preset="standard"),
    BenchModel("sd1job-stateful-64", "sd1job", "LSTM(64), stateful", sd1job_kind="stateful"),
    BenchModel("sd1job-windowed-1ms", "sd1job", "windowed LSTM(64), 1 ms", sd1job_kind="windowed", context_ms=1.0),
    BenchModel("sd1job-windowed-10ms", "sd1job", "windowed LSTM(64), 10 ms", sd1job_kind="windowed", context_ms=10.0),
)


@dataclass(frozen=True)
class Recipe:
    """A training recipe sd1job's models can run under (``--recipes``): config overrides (dotted field paths) on
    top of the profile, for the model kinds it changes (the others are not trained again under it)."""

    name: str
    overrides: Mapping[str, Any]
    kinds: tuple[str, ...] = ("windowed", "stateful", "wavenet")


PROFILE_RECIPE = "profile"
_NAM_LOSS = {
    "model.stateful.pre_emphasis_weight": 1.0,
    "model.stateful.mrstft_weight": 2.0e-4,
    "model.wavenet.mrstft_weight": 2.0e-4,
}
# NAM's ingredients (issue 23), one step at a time, so a measurement can tell which one pays:
# - profile: the sd1job profile as it is (since the measurement, the stateful model's defaults are
#   nam-segments-decay's; the measurement's profile rows were the literature recipe's);
# - literature: the stateful model's settings before the measurement (Wright et al.: 0.5 s segments,
#   1,000 samples of warm-up, 2,048 per update, batches of 50, plain ESR, the windowed model's decay);
# - nam-loss: NAM's loss terms (its LSTM's pre-emphasised MSE term and both models' pre-emphasised
#   multi-resolution STFT term, weight 2e-4) on sd1job's plain ESR;
# - nam-segments: also NAM's LSTM segmentation: 4,096 samples of burn-in, truncation 512,
#   batches of 16 segments of 8,192 scored samples (0.256 s in all at 48 kHz), lr decay 0.995 per epoch;
# - nam-segments-decay: the same with the rate decaying 0.95 per epoch (nam-segments' units spiked
#   late in training, at rates NAM's slow decay had barely lowered, and ran out of recoveries).
_LITERATURE = {
    "model.stateful.segment_seconds": 0.5,
    "model.stateful.warmup_samples": 1000,
    "model.stateful.tbptt_samples": 2048,
    "model.stateful.batch_size": 50,
    "model.stateful.lr_decay": None,
    "model.stateful.pre_emphasis_weight": 0.0,
    "model.stateful.mrstft_weight": 0.0,
    "model.wavenet.mrstft_weight": 0.0,
}
_NAM_SEGMENTS = {
    **_LITERATURE,
    **_NAM_LOSS,
    "model.stateful.warmup_samples": 4096,
    "model.stateful.tbptt_samples": 512,
    "model.stateful.batch_size": 16,
    "model.stateful.segment_seconds": 0.256,
    "model.stateful.lr_decay": 0.995,
}
RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe(PROFILE_RECIPE, {}),
        Recipe("literature", _LITERATURE, ("stateful",)),
        Recipe("nam-loss", {**_LITERATURE, **_NAM_LOSS}, ("stateful", "wavenet")),
        Recipe("nam-segments", _NAM_SEGMENTS, ("stateful",)),
        Recipe("nam-segments-decay", {**_NAM_SEGMENTS, "model.stateful.lr_decay": 0.95}, ("stateful",)),
    )
}


def recipes_named(names: Sequence[str] | None) -> list[Recipe]:
    """The recipes with these names, in the order given (just the profile for None); ValueError naming an unknown."""
    if not names:
        return [RECIPES[PROFILE_RECIPE]]
    unknown = [name for name in names if name not in RECIPES]
    if unknown:
        raise ValueError(f"--recipes: {', '.join(unknown)} not among {', '.join(RECIPES)}")
    return [RECIPES[name] for name in names]


def recipe_model_name(model: str, recipe: str) -> str:
    """The table's name of ``model`` trained under ``recipe`` (the profile's keeps the model's own name)."""
    return model if recipe == PROFILE_RECIPE else f"{model}+{recipe}"


def recipe_architecture(architecture: str, recipe: str) -> str:
    """The table's description of a model trained under ``recipe`` (the profile's keeps the model's own)."""
    return architecture if recipe == PROFILE_RECIPE else f"{architecture}, {recipe}"


# The two questions: (sd1job's model, NAM's model it must match).
HEADLINE_PAIRS: tuple[tuple[str, str], ...] = (
    ("sd1job-wavenet-standard", "nam-wavenet-standard"),
    ("sd1job-stateful-64", "nam-lstm-64"),
)


def models_named(names: Sequence[str] | None) -> list[BenchModel]:
    """The models with these names, in ``MODELS`` order (every model for None); ValueError naming an unknown one."""
    if not names:
        return list(MODELS)
    known = {model.name for model in MODELS}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"--models: {', '.join(unknown)} not among {', '.join(sorted(known))}")
    return [model for model in MODELS if model.name in names]


def _interval_dict(interval: Interval) -> dict[str, Any]:
    return {"mean": interval.mean, "low": interval.low, "high": interval.high}


def _mean(values: Sequence[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def summarise(rows: Sequence[Mapping[str, Any]], alpha: float = ALPHA) -> dict[str, Any]:
    """The table from one row per trained model (keys: model, tool, architecture, seed, esr, esr_pre, parameters,
    train_seconds, epochs); models in the order first seen. Rows whose ESR is not finite are left out of the
    intervals and counted as ``failed``."""
    by_model: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_model.setdefault(row["model"], []).append(row)
    table, esr_by_model = [], {}
    for name, runs in by_model.items():
        good = [r for r in runs if r["esr"] is not None and math.isfinite(r["esr"]) and r["esr"] > 0]
        entry: dict[str, Any] = {
            "model": name,
            "tool": runs[0]["tool"],
            "architecture": runs[0]["architecture"],
            "seeds": len(good),
            "failed": len(runs) - len(good),
            "parameters": runs[0].get("parameters"),
            "train_seconds": _mean([r.get("train_seconds") for r in good]),
            "epochs": _mean([r.get("epochs") for r in good]),
        }
        if good:
            esr = [float(r["esr"]) for r in good]
            esr_by_model[name] = esr
            entry["esr"] = _interval_dict(mean_interval(esr))
            entry["esr_pre"] = _interval_dict(mean_interval([float(r["esr_pre"]) for r in good]))
            entry["esr_by_seed"] = {int(r["seed"]): float(r["esr"]) for r in good}
        table.append(entry)
    best = min(
        esr_by_model,
        key=lambda name: math.exp(sum(map(math.log, esr_by_model[name])) / len(esr_by_model[name])),
        default=None,
    )
    tests = worse_than_best(esr_by_model, best, alpha) if best is not None else {}
    for entry in table:
        entry["vs_best"] = _vs_best(entry["model"], best, tests.get(entry["model"]), esr_by_model)
    comparisons = [_compare(ours, theirs, esr_by_model) for ours, theirs in HEADLINE_PAIRS]
    recipe_pairs = [(name, name.split("+")[0]) for name in esr_by_model if "+" in name]
    recipes = [_compare(variant, base, esr_by_model) for variant, base in recipe_pairs]
    return {
        "best": best,
        "alpha": alpha,
        "models": table,
        "comparisons": [c for c in comparisons if c is not None],
        "recipes": [c for c in recipes if c is not None],
    }


def _vs_best(name: str, best: str | None, test: Mapping[str, Any] | None, esr: Mapping[str, Sequence[float]]) -> str:
    if name not in esr:
        return "failed"
    if name == best:
        return "best"
    if test is None:
        return "untested (one seed)"
    verdict = "worse" if test["significant"] else "tied (within seed noise)"
    return f"{verdict}, p = {test['p_holm']:.2g}"


def _compare(ours: str, theirs: str, esr: Mapping[str, Sequence[float]]) -> dict[str, Any] | None:
    """One model against another (sd1job's against NAM's, or a recipe against the profile's): the change of ESR
    from ``theirs`` to ``ours`` in percent, and what it says (``better`` is a lower ESR)."""
    if ours not in esr or theirs not in esr:
        return None
    change = relative_change(esr[theirs], esr[ours])
    who = "sd1job" if theirs.startswith("nam-") else ours
    if change.low is None or change.high is None:
        verdict = "no interval (fewer than 2 seeds)"
    elif change.high < 0:
        verdict = f"{who} better"
    elif change.low > 0:
        verdict = f"{who} worse"
    else:
        verdict = "within seed noise"
    return {"sd1job": ours, "nam": theirs, "change_percent": asdict(change), "verdict": verdict}


def _esr_text(interval: Mapping[str, Any] | None) -> str:
    if not interval:
        return "-"
    text = f"{interval['mean']:.4f}"
    if interval["low"] is not None and interval["high"] is not None:
        text += f" [{interval['low']:.4f}, {interval['high']:.4f}]"
    return text


def _number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def markdown_table(summary: Mapping[str, Any]) -> str:
    """The table as Markdown: one line per model, then the headline comparisons."""
    lines = [
        "| model | tool | seeds | test ESR [95 % CI] | pre-emph. ESR [95 % CI] | parameters | train s | epochs "
        "| vs best |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in summary["models"]:
        seeds = f"{entry['seeds']}" + (f" ({entry['failed']} failed)" if entry["failed"] else "")
        lines.append(
            f"| {entry['architecture']} | {entry['tool']} | {seeds} | {_esr_text(entry.get('esr'))} | "
            f"{_esr_text(entry.get('esr_pre'))} | {_number(entry['parameters'])} | {_number(entry['train_seconds'])} | "
            f"{_number(entry['epochs'], 1)} | {entry['vs_best']} |"
        )
    comparisons = [*summary["comparisons"], *summary.get("recipes", [])]
    if comparisons:
        lines.append("")
    for comparison in comparisons:
        change = comparison["change_percent"]
        interval = (
            f" [{change['low']:+.0f} %, {change['high']:+.0f} %]"
            if change["low"] is not None and change["high"] is not None
            else ""
        )
        lines.append(
            f"- {comparison['sd1job']} vs {comparison['nam']}: ESR {change['mean']:+.0f} %{interval} "
            f"({comparison['verdict']})"
        )
    return "\n".join(lines) + "\n"
