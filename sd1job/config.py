"""The job configuration: one pydantic model, validated at the door.

Sources, lowest priority first: the defaults below (the seed experiment's values), the YAML
file given with ``--config``, then environment variables ``SD1JOB_<SECTION>__<FIELD>`` (for
example ``SD1JOB_TRAIN__EPOCHS=5``; list fields take JSON, ``SD1JOB_DATASET__CONTEXTS=[44,88]``).
Unknown keys are rejected everywhere. S3 endpoint, region and credentials are never part of the
config: they come from the standard AWS environment variables.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from sd1job import design
from sd1job.errors import UserError
from sd1job.units import MODEL_KINDS, ModelKind, Unit, sweep_units
from sd1job.wavenet_presets import WavenetPreset

ENV_PREFIX = "SD1JOB_"
SEED_RIFFS = ["battery", "electricEye", "holywar", "ohwell", "sanitarium", "shadowlove"]
SEED_CONTEXTS = [44, 88, 132, 176, 220, 264, 308, 352, 396, 440]
ModelCell = Literal["lstm", "gru"]


class ConfigError(UserError, ValueError):
    """The configuration is unreadable or invalid; the message is one line naming the field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TrainRecording(_Section):
    """Store keys of the dry (pedal input) and wet (pedal output) training recording."""

    dry: str = "recordings/train/Dry/d_train.wav"
    wet: str = "recordings/train/Wet/w_train.wav"


class RecordingSet(_Section):
    """One recording set: the pedal recorded at one setting (its training pair and test riffs)."""

    train: TrainRecording
    test_dir: str = Field(description="holds Dry/d_<riff>.wav and Wet/w_<riff>.wav")
    riffs: list[str] | None = Field(None, min_length=1, description="the set's riffs (default: recordings.riffs)")
    demo_drive: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="the virtual SD-1's Drive knob (0-1, 0.5 noon) when `synth` writes this set as demo data "
        "(None: synth's --drive); not used in training",
    )


class RecordingsConfig(_Section):
    """Where the recordings live in the store and how to check them."""

    train: TrainRecording = Field(default_factory=TrainRecording)
    test_dir: str = Field("recordings/test", description="holds Dry/d_<riff>.wav and Wet/w_<riff>.wav")
    riffs: list[str] = Field(default_factory=lambda: list(SEED_RIFFS), min_length=1)
    sets: dict[str, RecordingSet] = Field(
        default_factory=dict,
        description="named recording sets (the pedal at several settings); the axis recordings.set picks one",
    )
    set: str | None = Field(None, description="the recording set to use (None: train and test_dir above)")
    sample_rate: int = Field(44100, gt=0, description="expected rate; recordings are never resampled")
    latency_search: int = Field(
        1024, ge=0, description="dry/wet lag searched over [expected - search, expected + search] samples"
    )
    latency_expected: int = Field(0, description="centre of the lag search, in samples (wet behind dry > 0)")
    compensate_latency: bool = Field(
        False, description="shift the wet signal by the detected lag and trim both to their overlap"
    )

    @field_validator("sets")
    @classmethod
    def _set_names_are_plain(cls, sets: dict[str, RecordingSet]) -> dict[str, RecordingSet]:
        for name in sets:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.+]*", name):
                raise ValueError(f"recording set name {name!r} must be letters, digits, '.' or '+' (it names units)")
        return sets

    @model_validator(mode="after")
    def _set_known(self) -> RecordingsConfig:
        if self.set is not None and self.set not in self.sets:
            known = ", ".join(self.sets) or "none defined"
            raise ValueError(f"recordings.set {self.set!r} is not one of recordings.sets ({known})")
        return self

    def resolved(self) -> RecordingsConfig:
        """These settings with the chosen set's training pair, test folder and riffs in place (itself without a set)."""
        if self.set is None:
            return self
        chosen = self.sets[self.set]
        return self.model_copy(
            update={
                "train": chosen.train,
                "test_dir": chosen.test_dir,
                "riffs": list(chosen.riffs or self.riffs),
                "sets": {self.set: chosen},
            }
        )

    @field_validator("riffs")
    @classmethod
    def _riff_names_are_plain(cls, riffs: list[str]) -> list[str]:
        for riff in riffs:
            if not riff or "/" in riff or riff in {".", ".."}:
                raise ValueError(f"riff name {riff!r} must be a plain file stem")
        if len(set(riffs)) != len(riffs):
            raise ValueError("riff names must be unique")
        return riffs


class DatasetConfig(_Section):
    """How the windowed datasets are drawn from the training recording."""

    contexts: list[int] = Field(
        default_factory=lambda: list(SEED_CONTEXTS), min_length=1, description="context sizes n, in samples"
    )
    context_ms: list[float] | None = Field(
        None,
        min_length=1,
        description="context sizes in milliseconds instead: n = round(ms * recordings.sample_rate / 1000), so a "
        "sweep means the same at 44.1 and 48 kHz (replaces contexts)",
    )
    pairs: int = Field(100_000, gt=1, description="windows drawn per context, train plus validation")
    val_fraction: float = Field(0.25, gt=0.0, lt=1.0)
    split: Literal["random", "blocked"] = Field(
        "random", description="random: the seed's (overlapping windows leak); blocked: disjoint stretches"
    )
    stride: int | Literal["context"] = Field(
        1,
        description="distance between the window end positions a split may draw: 1, any position (the seed's, "
        "overlapping windows); context: n, the recording's non-overlapping chunks (the user's DS340); or a number",
    )
    seed: int = 25

    @field_validator("stride")
    @classmethod
    def _stride_positive(cls, stride: int | str) -> int | str:
        if isinstance(stride, int) and stride < 1:
            raise ValueError(f"stride {stride} must be a positive number of samples or 'context'")
        return stride

    def stride_for(self, context: int) -> int:
        """The stride in samples for windows of ``context`` samples."""
        return context if self.stride == "context" else int(self.stride)

    @field_validator("contexts")
    @classmethod
    def _contexts_positive_unique(cls, contexts: list[int]) -> list[int]:
        for n in contexts:
            if n <= 0:
                raise ValueError(f"context {n} must be a positive number of samples")
        if len(set(contexts)) != len(contexts):
            raise ValueError("contexts must be unique")
        return sorted(contexts)

    @field_validator("context_ms")
    @classmethod
    def _milliseconds_positive(cls, context_ms: list[float] | None) -> list[float] | None:
        if context_ms is not None:
            for ms in context_ms:
                if not ms > 0:
                    raise ValueError(f"context {ms} ms must be positive")
        return context_ms


class StatefulConfig(_Section):
    """Training the stateful model by truncated backpropagation through time (Wright, Damskägg and Välimäki
    2019-2020). The defaults are NAM's LSTM recipe (its burn-in, truncation, segment, batch and loss terms)
    with a faster decay, chosen by measurement at a fixed time budget over three seeds (``make bench-nam``'s
    recipes; README: "A better recipe, measured"), against the literature's settings (0.5 s segments,
    1,000 samples of warm-up, 2,048 per update, batches of 50, plain ESR, train.lr_decay)."""

    segment_seconds: float = Field(
        0.256, gt=0.0, description="length of the training segments a batch holds (warm-up included)"
    )
    warmup_samples: int = Field(
        4096, ge=0, description="samples at the start of each segment run to set the state, not scored"
    )
    tbptt_samples: int = Field(512, gt=0, description="samples per gradient update (truncated BPTT length)")
    batch_size: int = Field(16, gt=0, description="segments per batch")
    lr_decay: float | None = Field(
        0.95,
        gt=0.0,
        le=1.0,
        description="epoch k trains at train.learning_rate * lr_decay^(k-1) (None: train.lr_decay, as windowed)",
    )
    loss_pre_emphasis: float | None = Field(
        None, ge=0.0, lt=1.0, description="train on ESR after 1 - a z^-1 (None: plain ESR, like the windowed model)"
    )
    pre_emphasis_weight: float = Field(
        1.0, ge=0.0, description="add this times the ESR after 1 - 0.85 z^-1 to the loss (NAM's LSTM recipe: 1)"
    )
    mrstft_weight: float = Field(
        2.0e-4, ge=0.0, description="add this times a multi-resolution STFT distance after 1 - 0.85 z^-1 (NAM: 2e-4)"
    )


class WavenetConfig(_Section):
    """NAM's WaveNet (``model.kind: wavenet``) and its training recipe; defaults are NAM's easy trainer's."""

    presets: list[WavenetPreset] = Field(
        default_factory=lambda: ["standard"],
        min_length=1,
        description="NAM's architecture presets (standard, lite, feather, nano), one arm each",
    )
    segment_samples: int = Field(
        8192, gt=0, description="scored output samples per training segment (each also reads the receptive field)"
    )
    batch_size: int = Field(16, gt=0, description="segments per batch")
    learning_rate: float = Field(0.004, gt=0.0)
    lr_decay: float = Field(0.993, gt=0.0, le=1.0, description="epoch k trains at learning_rate * lr_decay^(k-1)")
    pre_emphasis_weight: float = Field(
        0.0, ge=0.0, description="add this times the ESR after 1 - 0.85 z^-1 to the ESR loss"
    )
    mrstft_weight: float = Field(
        0.0, ge=0.0, description="add this times a multi-resolution STFT distance after 1 - 0.85 z^-1"
    )

    @field_validator("presets", mode="before")
    @classmethod
    def _one_preset_or_a_list(cls, presets: Any) -> Any:
        return [presets] if isinstance(presets, str) else presets

    @field_validator("presets")
    @classmethod
    def _presets_unique(cls, presets: list[WavenetPreset]) -> list[WavenetPreset]:
        if len(set(presets)) != len(presets):
            raise ValueError("WaveNet presets must be unique")
        return presets


class ModelConfig(_Section):
    """Which model kinds a sweep trains, their recurrent cell, and the stateful model's training settings."""

    kind: list[ModelKind] = Field(
        default_factory=lambda: ["windowed"],
        min_length=1,
        description="windowed (the seed's model), stateful (context-free), wavenet (NAM's), or a list of them",
    )
    cell: ModelCell = Field(
        "lstm",
        description="the recurrent cell of the windowed and stateful models: lstm (the seed's) or gru (Keras' "
        "cuDNN-eligible GRU, reset after; NAM cannot load it, so a gru unit is not exported)",
    )
    stateful: StatefulConfig = Field(default_factory=StatefulConfig)
    wavenet: WavenetConfig = Field(default_factory=WavenetConfig)

    @field_validator("kind", mode="before")
    @classmethod
    def _one_kind_or_a_list(cls, kind: Any) -> Any:
        return [kind] if isinstance(kind, str) else kind

    @field_validator("kind")
    @classmethod
    def _kinds_unique(cls, kinds: list[ModelKind]) -> list[ModelKind]:
        if len(set(kinds)) != len(kinds):
            raise ValueError("model kinds must be unique")
        return sorted(kinds, key=MODEL_KINDS.index)


class TrainConfig(_Section):
    """The seed's model and optimiser settings."""

    lstm_units: int = Field(64, gt=0)
    learning_rate: float = Field(0.001, gt=0.0)
    lr_decay: float = Field(
        1.0, gt=0.0, le=1.0, description="epoch k trains at learning_rate * lr_decay^(k-1) (1: constant, the seed's)"
    )
    clipnorm: float | None = Field(None, gt=0.0, description="clip each gradient to this norm (None: no clipping)")
    lr_warmup_updates: int = Field(
        0,
        ge=0,
        description="ramp the learning rate linearly over a unit's first N updates (update k at (k+1)/N of it); "
        "0: none, the seed's",
    )
    batch_size: int = Field(64, gt=0)
    epochs: int = Field(100, gt=0)
    patience: int = Field(15, gt=0)
    max_train_seconds: float | None = Field(
        None, gt=0.0, description="stop a unit after the epoch that uses this budget (validation included); None: none"
    )
    max_recoveries: int = Field(
        3,
        ge=0,
        description="times a diverging unit is rolled back to its last epoch and retried at half the learning rate "
        "before it stops as diverged (sd1job/health.py has the rules); 0: stop at the first divergence",
    )
    seed: int = Field(25, description="the first training seed; unit i of a context trains with seed + i")
    repeats: int = Field(1, gt=0, description="training seeds per context (units per arm); 3 or more for statistics")
    jit_compile: bool = Field(True, description="XLA for windowed units (about 2x faster on CPU); stateful: never")
    threads: int = Field(
        0, ge=0, description="TensorFlow intra/inter-op threads; 0 = 1/1 on CPU (fastest measured), TF default on GPU"
    )


class EvalConfig(_Section):
    """Evaluation settings."""

    batch_size: int = Field(4096, gt=0, description="windows predicted at once (bounds memory)")
    waveform_riff: str | None = Field(None, description="riff for the waveform plots; default: the last riff")
    pre_emphasis: float = Field(0.85, ge=0.0, lt=1.0, description="coefficient a of 1 - a z^-1 for esr_pre")
    alpha: float = Field(0.05, gt=0.0, lt=0.5, description="significance level of the report's tests")


class SweepConfig(_Section):
    """The experiment's grid: dotted config fields and the values each takes (see ``sd1job/design.py``)."""

    grid: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="axis -> values, e.g. {train.lstm_units: [64, 96]}; arms are the product of the axes, each "
        "trained per model kind, per context and per training seed",
    )

    @field_validator("grid")
    @classmethod
    def _values_listed_once(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for axis, values in grid.items():
            if not values:
                raise ValueError(f"{axis}: an axis needs at least one value")
            if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
                raise ValueError(f"{axis}: values must be unique")
        return grid


class MetricsConfig(_Section):
    """Prometheus: a Pushgateway URL to push to, and a port to serve /metrics on (0 = off)."""

    pushgateway: str | None = None
    port: int = Field(0, ge=0, le=65535)


class ListenConfig(_Section):
    """The blind listening test (``python -m sd1job listen``; see docs/listen.md)."""

    test: Literal["abx", "mushra"] = Field(
        "abx", description="abx: can a listener tell each arm from the pedal; mushra: rate them"
    )
    trials_per_arm: int = Field(12, ge=1, le=200, description="ABX trials per arm and listener")
    excerpt_seconds: float = Field(10.0, gt=0.5, le=30.0, description="longest excerpt of a riff played")
    similarity_proportion: float = Field(
        0.3, gt=0.0, lt=1.0, description="largest proportion of discriminators still called indistinguishable"
    )
    similarity_power: float = Field(0.8, gt=0.0, lt=1.0, description="power the stated number of trials needed gives")
    port: int = Field(8421, ge=0, le=65535, description="the server's port (0 = any free port)")


class Config(BaseSettings):
    """The whole job configuration (see the README's configuration reference)."""

    model_config = SettingsConfigDict(
        extra="forbid",
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        validate_assignment=True,
    )

    store: str = Field("./runs-store", description="a local directory, or s3://bucket/prefix")
    run_id: str = Field("context-experiments", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
    recordings: RecordingsConfig = Field(default_factory=RecordingsConfig)
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    sweep: SweepConfig = Field(default_factory=SweepConfig)
    listen: ListenConfig = Field(default_factory=ListenConfig)

    @field_validator("store")
    @classmethod
    def _store_scheme_known(cls, store: str) -> str:
        if "://" in store and not store.startswith(("s3://", "file://")):
            scheme = store.split("://", 1)[0]
            raise ValueError(f"unknown store scheme {scheme!r}: use a local directory or s3://bucket/prefix")
        if store.startswith("s3://") and not store[len("s3://") :].split("/", 1)[0]:
            raise ValueError("s3 store needs a bucket: s3://bucket/prefix")
        return store

    @model_validator(mode="after")
    def _waveform_riff_known(self) -> Config:
        riff = self.eval.waveform_riff
        if riff is not None and riff not in self.recordings.riffs:
            raise ValueError(f"eval.waveform_riff {riff!r} is not one of recordings.riffs")
        return self

    @model_validator(mode="after")
    def _contexts_from_milliseconds(self) -> Config:
        milliseconds = self.dataset.context_ms
        if milliseconds is None:
            return self
        rate = self.recordings.sample_rate
        derived = sorted({max(1, round(ms * rate / 1000)) for ms in milliseconds})
        if len(derived) != len(milliseconds):
            raise ValueError(f"dataset.context_ms {milliseconds} gives repeated sizes {derived} at {rate} Hz")
        explicit = "contexts" in self.dataset.model_fields_set
        if explicit and self.dataset.contexts != derived:
            raise ValueError(
                f"dataset.contexts {self.dataset.contexts} and dataset.context_ms {milliseconds} (= {derived} samples "
                f"at {rate} Hz) disagree: give one of them"
            )
        if not explicit or self.dataset.contexts != derived:
            object.__setattr__(self.dataset, "contexts", derived)
        return self

    @model_validator(mode="after")
    def _grid_runs(self) -> Config:
        grid = self.sweep.grid
        if not grid:
            return self
        leaves = leaf_paths()
        for axis in grid:
            problem = design.axis_problem(axis, leaves)
            if problem is not None:
                raise ValueError(problem)
        base = self.model_dump(mode="json")
        for axis, values in grid.items():
            for index, value in enumerate(values):
                data = copy.deepcopy(base)
                data["sweep"] = {}
                design.nested_update(data, axis, value)
                try:
                    Config.model_validate(data)
                except ValidationError as error:
                    first = error.errors()[0]
                    raise ValueError(
                        f"sweep.grid: {axis}[{index}] = {value!r}: {first['msg'].removeprefix('Value error, ')}"
                    ) from None
        prefixes = design.abbreviations(list(grid))
        tags = [design.arm_tag(point, prefixes) for point in design.grid_points(grid)]
        if len(set(tags)) != len(tags):
            raise ValueError("sweep.grid: two arms get the same name; make the values differ in their text")
        return self

    def units(self) -> list[Unit]:
        """Every unit the config trains: per arm of the grid, per model kind, per context (windowed), per seed."""
        if not self.sweep.grid:
            presets = tuple(self.model.wavenet.presets)
            return sweep_units(self.model.kind, self.dataset.contexts, self.train.seed, self.train.repeats, presets)
        prefixes = design.abbreviations(list(self.sweep.grid))
        units = []
        for point in design.grid_points(self.sweep.grid):
            arm = self.with_values(point)
            units += sweep_units(
                arm.model.kind,
                arm.dataset.contexts,
                arm.train.seed,
                arm.train.repeats,
                tuple(arm.model.wavenet.presets),
                design.arm_tag(point, prefixes),
                point,
            )
        return units

    def with_values(self, values: tuple[tuple[str, Any], ...]) -> Config:
        """This config with the given (axis, value) pairs set, the grid cleared and the recording set resolved:
        what one arm (or one dataset) is trained with."""
        data = self.model_dump(mode="json")
        data["sweep"] = {}
        for axis, value in values:
            design.nested_update(data, axis, value)
        arm = Config.model_validate(data)
        arm.recordings = arm.recordings.resolved()
        return arm

    def with_recording_set(self, name: str) -> Config:
        """This config with recording set ``name`` chosen and resolved; ConfigError (one line) if there is none."""
        if name not in self.recordings.sets:
            known = ", ".join(self.recordings.sets) or "none defined"
            raise ConfigError(f"recordings.sets has no set {name!r} ({known})")
        return self.with_values((("recordings.set", name),))

    def recording_sets_used(self) -> list[str | None]:
        """The recording sets the units train on, in the config's order: the axis's values, the chosen set, or
        [None] (the default recordings)."""
        return list(self.sweep.grid.get("recordings.set") or [self.recordings.set])

    def recording_set_of(self, unit: Unit) -> str | None:
        """The recording set ``unit`` trains and is scored on (None: the default recordings)."""
        return dict(unit.grid).get("recordings.set", self.recordings.set)

    def recordings_of_set(self, name: str | None) -> RecordingsConfig:
        """The recordings settings of set ``name`` (None: the config's own)."""
        return self.recordings if name is None else self.with_recording_set(name).recordings

    def for_unit(self, unit: Unit) -> Config:
        """The effective config a unit is trained and scored with (itself without a grid or a recording set)."""
        if not unit.grid and self.recordings.set is None:
            return self
        return self.with_values(unit.grid)

    def data_variants(self) -> list[tuple[str, Config]]:
        """Each distinct dataset of the config as (its tag, the config it is built with); one ("", ...) without
        data axes. The tag names its folder under ``data/`` (see ``RunLayout.data_variant``)."""
        if not self.sweep.grid:
            return [("", self.with_values(()) if self.recordings.set else self)]
        prefixes = design.abbreviations(list(self.sweep.grid))
        variants: dict[str, Config] = {}
        for point in design.grid_points(self.sweep.grid):
            values = design.data_values(point)
            tag = design.arm_tag(values, prefixes)
            if tag not in variants:
                variants[tag] = self.with_values(values)
        return list(variants.items())

    def data_variant(self, unit: Unit) -> str:
        """The tag of the dataset a unit trains on ("" without data axes)."""
        if not unit.grid:
            return ""
        return design.arm_tag(design.data_values(unit.grid), design.abbreviations(list(self.sweep.grid)))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file (passed as init kwargs), which beats the defaults.
        return (env_settings, init_settings)

    def to_yaml(self) -> str:
        """The effective configuration as YAML (what a run records next to its results)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def leaf_paths(model: Any = None, prefix: str = "") -> list[str]:
    """Every dotted path of a config field that is not itself a section (``train.lstm_units``, ``recordings.set``)."""
    model = Config if model is None else model
    paths = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths += leaf_paths(annotation, f"{prefix}{name}.")
        else:
            paths.append(f"{prefix}{name}")
    return paths


def _section_fields(path: tuple[Any, ...]) -> list[str]:
    """The field names of the config section at ``path`` (empty if the path leaves the sections)."""
    model: Any = Config
    for part in path:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _unknown_key_message(loc: tuple[Any, ...]) -> str:
    known = _section_fields(loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    return f"unknown key (did you mean {close[0]}?)" if close else "unknown key"


def _format_validation_error(source: str, error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = _unknown_key_message(tuple(item["loc"]))
        parts.append(f"{field}: {message}" if field else message)
    return f"{source}: invalid config: " + "; ".join(parts)


def config_from_mapping(data: dict[str, Any], source: str = "config") -> Config:
    """Validate a mapping (as read from YAML) plus the environment overrides into a Config."""
    try:
        return Config(**data)
    except ValidationError as error:
        raise ConfigError(_format_validation_error(source, error)) from None


def load_config(path: str | Path | None) -> Config:
    """Read and validate a YAML config file (None: defaults plus environment only)."""
    if path is None:
        return config_from_mapping({}, source="defaults")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read config: {error}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {str(error).splitlines()[0]}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a YAML mapping, got {type(data).__name__}")
    return config_from_mapping(data, source=str(path))
