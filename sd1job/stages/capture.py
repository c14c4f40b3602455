"""The ``capture`` command: model your own pedal from one pair of files, a DI and the pedal's output.

``python -m sd1job capture --dry DI.wav --wet OUT.wav [--config PROFILE] [--name NAME]
[--test-fraction 0.15] [--jobs N]`` checks the pair with the data stage's checks (at the files' own
sample rate, 44.1 or 48 kHz alike), estimates and compensates the dry/wet latency, holds out the
last ``--test-fraction`` of the aligned pair as the test riff (never seen in training), writes
both parts into the profile's store under ``captures/<NAME>/``, and runs the profile's sweep on
them as run ``<NAME>``. Give context sizes in milliseconds (``dataset.context_ms``) in the profile
to mean the same at any rate; the results show both samples and milliseconds.
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

from sd1job.audio import AudioError, check_pair, decode_wav, encode_wav
from sd1job.config import Config, config_from_mapping
from sd1job.errors import UserError
from sd1job.layout import CaptureLayout, riff_dry_key, riff_wet_key
from sd1job.stages.sweep import run_sweep
from sd1job.store import open_store

log = logging.getLogger(__name__)
HOLDOUT_RIFF = "holdout"
MIN_TRAIN_SECONDS, MIN_TEST_SECONDS = 1.0, 0.25


class CaptureError(UserError, ValueError):
    """The capture pair or its options cannot be used; the message names the file or option."""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``python -m sd1job capture``."""
    parser.add_argument("--dry", required=True, metavar="DI.wav", help="what went into the pedal (the guitar's DI)")
    parser.add_argument("--wet", required=True, metavar="OUT.wav", help="what came out of the pedal")
    parser.add_argument(
        "--name", metavar="NAME", help="the capture's name: its run id and folder (default: capture-<wet file stem>)"
    )
    parser.add_argument(
        "--test-fraction",
        type=float,
        default=0.15,
        metavar="F",
        help="the last fraction of the pair held out as the test riff (default 0.15)",
    )
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="units run at once (as sweep --jobs)")


def capture_name(wet: Path) -> str:
    """The default name of a capture: ``capture-<wet file stem>``, made a valid run id."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", wet.stem).strip("-._") or "pedal"
    return f"capture-{stem}"[:63]


def _read_local(path: Path, option: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CaptureError(f"{option} {path}: file not found") from None
    except OSError as error:
        raise CaptureError(f"{option} {path}: cannot read ({error.strerror})") from None


def capture_config(profile: Config, name: str, sample_rate: int) -> Config:
    """The profile with its recordings pointed at the capture's files and its run named after the capture."""
    data = profile.model_dump(mode="json")
    keys = CaptureLayout(name)
    data["run_id"] = name
    data["recordings"] = {
        **data["recordings"],
        "train": {"dry": keys.train_dry, "wet": keys.train_wet},
        "test_dir": keys.test_dir,
        "riffs": [HOLDOUT_RIFF],
        "sample_rate": sample_rate,
        "compensate_latency": False,  # the files written are aligned already
        "latency_expected": 0,
    }
    data["eval"] = {**data["eval"], "waveform_riff": None}
    if profile.dataset.context_ms is not None:
        data["dataset"].pop("contexts")  # derived again at this rate
    return config_from_mapping(data, source=f"the capture profile for {name}")


def run(args: argparse.Namespace, config: Config) -> int:
    """CLI entry: check and split the pair, write it to the store, run the sweep."""
    if not 0.0 < args.test_fraction < 0.5:
        raise CaptureError(f"--test-fraction {args.test_fraction}: must be between 0 and 0.5")
    if args.jobs < 1:
        raise CaptureError(f"--jobs must be at least 1, got {args.jobs}")
    dry_path, wet_path = Path(args.dry), Path(args.wet)
    dry = decode_wav(_read_local(dry_path, "--dry"), str(dry_path))
    wet = decode_wav(_read_local(wet_path, "--wet"), str(wet_path))
    if wet.sample_rate != dry.sample_rate:
        raise AudioError(
            f"{wet_path}: sample rate is {wet.sample_rate} Hz but {dry_path} has {dry.sample_rate} Hz; "
            "record both at one rate"
        )
    recordings = config.recordings
    pair = check_pair(
        "capture",
        dry,
        wet,
        latency_search=recordings.latency_search,
        latency_expected=recordings.latency_expected,
        compensate_latency=True,
    )
    cut = round(len(pair.dry) * (1.0 - args.test_fraction))
    if cut < MIN_TRAIN_SECONDS * dry.sample_rate or len(pair.dry) - cut < MIN_TEST_SECONDS * dry.sample_rate:
        raise CaptureError(
            f"{dry_path}: {pair.seconds:.2f} s is too short to hold out {args.test_fraction:.0%} for testing "
            f"(needs {MIN_TRAIN_SECONDS:g} s to train on and {MIN_TEST_SECONDS:g} s to test on)"
        )
    name = args.name or capture_name(wet_path)
    derived = capture_config(config, name, dry.sample_rate)
    store = open_store(derived.store)
    train_keys = (derived.recordings.train.dry, derived.recordings.train.wet)
    test_dir = derived.recordings.test_dir
    parts = {
        train_keys[0]: pair.dry[:cut],
        train_keys[1]: pair.wet[:cut],
        riff_dry_key(test_dir, HOLDOUT_RIFF): pair.dry[cut:],
        riff_wet_key(test_dir, HOLDOUT_RIFF): pair.wet[cut:],
    }
    for key, samples in parts.items():
        store.write_bytes(key, encode_wav(samples, dry.sample_rate, subtype="FLOAT"))
    store.write_json(
        CaptureLayout(name).info,
        {
            "name": name,
            "dry": str(dry_path),
            "wet": str(wet_path),
            "sample_rate": dry.sample_rate,
            "test_fraction": args.test_fraction,
            "train_samples": cut,
            "test_samples": len(pair.dry) - cut,
            **{k: pair.report[k] for k in ("latency_samples", "latency_confidence", "warnings")},
        },
    )
    log.info(
        "capture %s: %.1f s at %d Hz, latency %d samples compensated; %.1f s for training, %.1f s held out as %r",
        name,
        pair.seconds,
        dry.sample_rate,
        pair.report["latency_samples"],
        cut / dry.sample_rate,
        (len(pair.dry) - cut) / dry.sample_rate,
        HOLDOUT_RIFF,
    )
    for warning in pair.warnings:
        log.warning("%s", warning)
    run_sweep(derived, store, jobs=args.jobs)
    return 0
