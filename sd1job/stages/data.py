"""The ``data`` stage: check the recordings, write the datasets, print the units.

Reads the training pair and the test riffs through the store and checks them (format, rate,
channels, lengths, NaN/Inf, silence; warns about clipping, DC offset and dry/wet latency). Then
writes under ``runs/<run_id>/data/``: the training audio once (``audio.npz``), the window
positions of every context of the windowed model (``c<N>/positions.npz``) and, last,
``manifest.json``. Everything is checked before anything is written (so bad input leaves nothing
behind and prints only its error), and a rerun with the same settings and recordings is skipped.

Its standard output is one line, the JSON list of the config's units (``["c44-s25", ...]``): the
Argo workflow fans the training pods out over it. Logging goes to standard error.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from sd1job import audio, dataset
from sd1job.config import Config, DatasetConfig, ModelConfig, RecordingsConfig
from sd1job.hashing import fingerprint, sha256_hex
from sd1job.layout import RunLayout
from sd1job.store import Store, open_store

log = logging.getLogger(__name__)
MANIFEST_VERSION = 2


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m sd1job data``."""
    parser.add_argument(
        "--export",
        action="store_true",
        help="also write materialised arrays (x_train, y_train, x_val, y_val) per context as c<N>/arrays.npz",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if an identical dataset is already there")


def run(args: argparse.Namespace, config: Config) -> int:
    """CLI entry: build the datasets, then print the unit list on standard output."""
    store = open_store(config.store)
    build_datasets(config, store, export=args.export, force=args.force)
    print(json.dumps([unit.name for unit in config.units()]), flush=True)
    return 0


def data_fingerprint(recordings: RecordingsConfig, settings: DatasetConfig, model: ModelConfig) -> str:
    """A hash of every setting that shapes the datasets."""
    relevant = {
        "recordings": recordings.model_dump(mode="json"),
        # stride 1 (the default) left out: datasets written before the field existed stay current
        "dataset": settings.model_dump(mode="json", exclude={"stride"} if settings.stride == 1 else None),
        "windows": "windowed" in model.kind,
        "stateful": model.stateful.model_dump(mode="json") if "stateful" in model.kind else None,
    }
    return fingerprint(relevant)


def is_finished(store: Store, layout: RunLayout, expected_fingerprint: str) -> bool:
    """Whether the data stage already finished for exactly these settings and recordings."""
    if not store.exists(layout.manifest):
        return False
    manifest = store.read_json(layout.manifest)
    if manifest.get("fingerprint") != expected_fingerprint:
        return False
    sources = manifest.get("train", {}).get("sources", {})
    return all(sha256_hex(store.read_bytes(key)) == digest for key, digest in sources.items())


def build_splits(length: int, settings: DatasetConfig) -> dict[int, dataset.Split]:
    """Window positions for every configured context (validated before anything is written)."""
    dataset.check_context(length, max(settings.contexts))
    return {
        context: dataset.make_split(
            settings.split,
            length,
            context,
            settings.pairs,
            settings.val_fraction,
            settings.seed,
            settings.stride_for(context),
        )
        for context in settings.contexts
    }


@dataclass
class _Plan:
    """One dataset, checked and ready to write."""

    layout: RunLayout
    config: Config
    fingerprint: str
    train: audio.CheckedPair
    riffs: list[audio.CheckedPair]
    splits: dict[int, dataset.Split]
    started: float


def build_datasets(config: Config, store: Store, export: bool = False, force: bool = False) -> dict[str, Any]:
    """Check the recordings and write the datasets (or skip an identical build); return the (first) manifest.

    With a grid whose axes change the data (a recording set, a dataset field), there is one dataset per
    combination of those axes, under ``data/<tag>/``; every one is checked before any is written.
    """
    plans: list[_Plan] = []
    manifests: list[dict[str, Any]] = []
    for tag, variant in config.data_variants():
        layout = RunLayout(config.run_id, tag)
        expected = data_fingerprint(variant.recordings, variant.dataset, variant.model)
        if not force and not export and is_finished(store, layout, expected):
            log.info("data: already built for this config at %s (use --force to rebuild)", store.url(layout.manifest))
            manifests.append(store.read_json(layout.manifest))
            continue
        plans.append(_check(layout, variant, expected, store))
    for plan in plans:
        for pair in (plan.train, *plan.riffs):  # every check passed: now the warnings are worth showing
            for warning in pair.warnings:
                log.warning("%s", warning)
    manifests += [_write(plan, store, export) for plan in plans]
    return manifests[0]


def _check(layout: RunLayout, config: Config, expected: str, store: Store) -> _Plan:
    """Load and check one dataset's recordings and draw its windows, writing nothing."""
    started = time.monotonic()
    recordings, settings, model = config.recordings, config.dataset, config.model
    train = audio.load_pair(store, "train", recordings.train.dry, recordings.train.wet, recordings)
    riffs = audio.load_riffs(store, recordings)
    length = len(train.dry)
    splits = build_splits(length, settings) if "windowed" in model.kind else {}
    if "stateful" in model.kind:
        stateful = model.stateful
        dataset.stateful_segments(
            length,
            round(stateful.segment_seconds * recordings.sample_rate),
            settings.val_fraction,
            stateful.warmup_samples,
        )
    return _Plan(layout, config, expected, train, riffs, splits, started)


def _write(plan: _Plan, store: Store, export: bool) -> dict[str, Any]:
    """Write one checked dataset: the audio, each context's positions, then its manifest."""
    layout, config, train = plan.layout, plan.config, plan.train
    settings = config.dataset
    store.write_bytes(layout.audio, dataset.encode_arrays(dry=train.dry, wet=train.wet))
    contexts = {}
    for context, split in plan.splits.items():
        store.write_bytes(layout.positions(context), dataset.encode_arrays(train=split.train, val=split.val))
        if export:
            store.write_bytes(layout.export_arrays(context), _materialised(split, context, train.dry, train.wet))
        contexts[str(context)] = {
            "train": len(split.train),
            "val": len(split.val),
            "positions": layout.positions(context),
            **({"arrays": layout.export_arrays(context)} if export else {}),
        }
    manifest = {
        "version": MANIFEST_VERSION,
        "run_id": config.run_id,
        "data_variant": layout.data_variant,
        "recording_set": config.recordings.set,
        "fingerprint": plan.fingerprint,
        "sample_rate": config.recordings.sample_rate,
        "split": settings.split,
        "stride": settings.stride,
        "val_fraction": settings.val_fraction,
        "seed": settings.seed,
        "audio": layout.audio,
        "train": train.report,
        "riffs": {pair.name: pair.report for pair in plan.riffs},
        "contexts": contexts,
        "build_seconds": round(time.monotonic() - plan.started, 3),
    }
    store.write_json(layout.manifest, manifest)
    log.info(
        "data: %d context(s) written to %s (%.1f s of training audio)",
        len(contexts),
        store.url(layout.data_dir),
        train.seconds,
    )
    return manifest


def _materialised(split: dataset.Split, context: int, dry: np.ndarray, wet: np.ndarray) -> bytes:
    return dataset.encode_arrays(
        x_train=dataset.gather_windows(dry, split.train, context),
        y_train=wet[split.train],
        x_val=dataset.gather_windows(dry, split.val, context),
        y_val=wet[split.val],
    )
