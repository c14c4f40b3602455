"""The ``data`` stage: check the recordings and write the windowed datasets of the sweep.

Reads the training pair and the test riffs through the store, validates them (format, rate,
channels, lengths, NaN/Inf, silence; warns on clipping, DC offset and dry/wet latency), then
writes under ``runs/<run_id>/data/``: the training audio once (``audio.npz``), the window
positions of every context (``c<N>/positions.npz``) and, last, ``manifest.json``. Everything is
checked before anything is written, so bad input leaves nothing behind; the manifest is written
last, so its presence means the stage finished.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from typing import Any

import numpy as np

from sd1job import audio, dataset
from sd1job.audio import AudioError, Recording
from sd1job.config import Config
from sd1job.layout import RunLayout, layout_for, riff_dry_key, riff_wet_key
from sd1job.store import MissingObjectError, Store, open_store

log = logging.getLogger(__name__)
MANIFEST_VERSION = 1
# A pedal's own phase response moves the correlation peak by a sample or two (0 to 3 on the
# EGFxSet pedals); only a larger lag is worth a warning. The estimate is always recorded.
LATENCY_TOLERANCE = 2


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m sd1job data``."""
    parser.add_argument(
        "--export",
        action="store_true",
        help="also write materialised arrays (x_train, y_train, x_val, y_val) per context as c<N>/arrays.npz",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if an identical dataset is already there")


def run(args: argparse.Namespace, config: Config) -> int:
    """CLI entry: build the datasets."""
    store = open_store(config.store)
    manifest = run_data(config, store, export=args.export, force=args.force)
    log.info(
        "data: %d contexts written to %s (%.1f s of training audio)",
        len(manifest["contexts"]),
        store.url(layout_for(config).data_dir),
        manifest["train"]["seconds"],
    )
    return 0


def fingerprint(config: Config) -> str:
    """A hash of every setting that shapes the datasets (the sweep uses it to skip done work)."""
    relevant = {"recordings": config.recordings.model_dump(mode="json"), "dataset": config.dataset.model_dump()}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def is_done(config: Config, store: Store) -> bool:
    """Whether the data stage already finished for exactly this config (and these recordings)."""
    layout = layout_for(config)
    if not store.exists(layout.manifest):
        return False
    manifest = store.read_json(layout.manifest)
    if manifest.get("fingerprint") != fingerprint(config):
        return False
    sources = manifest.get("train", {}).get("sources", {})
    return all(_sha256(store.read_bytes(key)) == digest for key, digest in sources.items())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_recording(store: Store, key: str, sample_rate: int) -> tuple[Recording, str]:
    """Read and check one recording; also return its SHA-256."""
    try:
        data = store.read_bytes(key)
    except MissingObjectError:
        raise AudioError(f"{store.url(key)}: recording not found") from None
    return audio.decode_wav(data, store.url(key), sample_rate), _sha256(data)


def check_pair(dry: Recording, wet: Recording, config: Config) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Check a dry/wet pair, estimate their latency and (if configured) compensate it.

    Returns the dry and wet signals to use and a report for the manifest.
    """
    settings = config.recordings
    lag, confidence = audio.estimate_latency(
        dry.samples,
        wet.samples,
        search=settings.latency_search,
        expected=settings.latency_expected,
        sample_rate=dry.sample_rate,
    )
    warnings = audio.level_warnings(dry) + audio.level_warnings(wet)
    if settings.compensate_latency:
        dry_samples, wet_samples = audio.align_pair(dry.samples, wet.samples, lag)
        if lag:
            warnings.append(f"{wet.source}: compensated a latency of {lag} samples (wet behind dry)")
    else:
        if len(dry.samples) != len(wet.samples):
            raise AudioError(
                f"{wet.source}: has {len(wet.samples)} samples but {dry.source} has {len(dry.samples)}; dry and wet "
                "must be the same length (or set recordings.compensate_latency: true to align and trim them)"
            )
        dry_samples, wet_samples = dry.samples, wet.samples
        if abs(lag) > LATENCY_TOLERANCE:
            warnings.append(
                f"{wet.source}: wet appears {lag} samples behind dry (confidence {confidence:.2f}); "
                "set recordings.compensate_latency: true to align"
            )
    for warning in warnings:
        log.warning("%s", warning)
    report = {
        "samples": len(dry_samples),
        "seconds": round(len(dry_samples) / dry.sample_rate, 6),
        "latency_samples": lag,
        "latency_confidence": round(confidence, 3) if np.isfinite(confidence) else None,
        "latency_compensated": bool(settings.compensate_latency and lag),
        "warnings": warnings,
    }
    return dry_samples, wet_samples, report


def build_splits(length: int, config: Config) -> dict[int, dataset.Split]:
    """Window positions for every configured context (validated before anything is written)."""
    settings = config.dataset
    dataset.check_context(length, max(settings.contexts))
    return {
        context: dataset.make_split(
            settings.split, length, context, settings.pairs, settings.val_fraction, settings.seed
        )
        for context in settings.contexts
    }


def run_data(config: Config, store: Store, export: bool = False, force: bool = False) -> dict[str, Any]:
    """Check the recordings and write the datasets; return the manifest."""
    layout = layout_for(config)
    if not force and not export and is_done(config, store):
        log.info("data: already built for this config at %s (use --force to rebuild)", store.url(layout.manifest))
        return store.read_json(layout.manifest)
    started = time.monotonic()
    rate = config.recordings.sample_rate
    keys = config.recordings.train
    dry, dry_sha = read_recording(store, keys.dry, rate)
    wet, wet_sha = read_recording(store, keys.wet, rate)
    dry_samples, wet_samples, train_report = check_pair(dry, wet, config)
    train_report["sources"] = {keys.dry: dry_sha, keys.wet: wet_sha}
    riffs = {riff: _check_riff(store, config, riff) for riff in config.recordings.riffs}
    splits = build_splits(len(dry_samples), config)

    store.write_bytes(layout.audio, dataset.encode_arrays(dry=dry_samples, wet=wet_samples))
    contexts = {}
    for context, split in splits.items():
        store.write_bytes(layout.positions(context), dataset.encode_arrays(train=split.train, val=split.val))
        if export:
            _export_arrays(store, layout, context, split, dry_samples, wet_samples)
        contexts[str(context)] = {
            "train": len(split.train),
            "val": len(split.val),
            "positions": layout.positions(context),
            **({"arrays": layout.export(context)} if export else {}),
        }
    manifest = {
        "version": MANIFEST_VERSION,
        "run_id": config.run_id,
        "fingerprint": fingerprint(config),
        "sample_rate": rate,
        "split": config.dataset.split,
        "seed": config.dataset.seed,
        "audio": layout.audio,
        "train": train_report,
        "riffs": riffs,
        "contexts": contexts,
        "build_seconds": round(time.monotonic() - started, 3),
    }
    store.write_json(layout.manifest, manifest)
    return manifest


def _check_riff(store: Store, config: Config, riff: str) -> dict[str, Any]:
    rate = config.recordings.sample_rate
    dry, dry_sha = read_recording(store, riff_dry_key(config, riff), rate)
    wet, wet_sha = read_recording(store, riff_wet_key(config, riff), rate)
    _, _, report = check_pair(dry, wet, config)
    report["sources"] = {riff_dry_key(config, riff): dry_sha, riff_wet_key(config, riff): wet_sha}
    return report


def _export_arrays(
    store: Store, layout: RunLayout, context: int, split: dataset.Split, dry: np.ndarray, wet: np.ndarray
) -> None:
    store.write_bytes(
        layout.export(context),
        dataset.encode_arrays(
            x_train=dataset.gather_windows(dry, split.train, context),
            y_train=wet[split.train],
            x_val=dataset.gather_windows(dry, split.val, context),
            y_val=wet[split.val],
        ),
    )


def load_training_audio(store: Store, layout: RunLayout) -> tuple[np.ndarray, np.ndarray]:
    """The aligned training dry and wet signals the data stage wrote."""
    arrays = _read_dataset_object(store, layout.audio)
    return arrays["dry"], arrays["wet"]


def load_split(store: Store, layout: RunLayout, context: int) -> dataset.Split:
    """The window positions of one context."""
    arrays = _read_dataset_object(store, layout.positions(context))
    return dataset.Split(train=arrays["train"], val=arrays["val"])


def _read_dataset_object(store: Store, key: str) -> dict[str, np.ndarray]:
    try:
        data = store.read_bytes(key)
    except MissingObjectError:
        raise dataset.DatasetError(
            f"{store.url(key)}: dataset not found; run `python -m sd1job data` for this config first"
        ) from None
    return dataset.decode_arrays(data, store.url(key))
