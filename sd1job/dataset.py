"""Window positions, splits, stateful segments and the loaders of stored datasets (numpy; no TensorFlow).

A dataset is stored as the training audio once plus, per context size n, the positions of the
windows: position ``t`` stands for the window ``dry[t-n+1 .. t]`` (n samples, oldest first) and
its target ``wet[t]``, the wet sample under the window's LAST dry sample (causal, no look-ahead;
evaluation uses the same alignment). Valid positions are ``n-1 .. len-1``.

Splits:
- ``random`` (the seed's): ``pairs`` positions drawn without replacement from every valid one,
  the first ``1 - val_fraction`` of the draw for training, the rest for validation. Overlapping
  windows land in both, so validation loss is optimistic.
- ``blocked``: the recording is cut at ``round(len * (1 - val_fraction))``; training windows lie
  wholly before the cut, validation windows wholly after it, so no sample is shared.

The stateful model trains on segments, not windows: the recording is cut the blocked way (the
last ``val_fraction`` is held out whole, for early stopping), the training stretch is tiled into
segments of equal length, and each epoch visits them in an order shuffled by (seed, epoch).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import numpy as np

from sd1job.errors import UserError
from sd1job.layout import RunLayout
from sd1job.store import MissingObjectError, Store

POSITION_DTYPE = np.int64


class DatasetError(UserError, ValueError):
    """The dataset cannot be built as configured (too few windows, recording too short)."""


@dataclass(frozen=True)
class Split:
    """Window end positions for training and validation."""

    train: np.ndarray
    val: np.ndarray


def split_counts(pairs: int, val_fraction: float) -> tuple[int, int]:
    """Training and validation counts for ``pairs`` windows (both at least 1)."""
    val = max(1, round(pairs * val_fraction))
    train = pairs - val
    if train < 1:
        raise DatasetError(f"dataset.pairs={pairs} leaves no training windows at val_fraction={val_fraction}")
    return train, val


def context_rng(seed: int, context: int) -> np.random.Generator:
    """The random generator for one context: independent per context, fixed by the seed."""
    return np.random.default_rng([seed, context])


def _draw(rng: np.random.Generator, low: int, high: int, count: int, what: str, stride: int = 1) -> np.ndarray:
    """``count`` distinct positions from ``low, low + stride, ...`` below ``high`` (stride 1: every position)."""
    available = max(0, -(-(high - low) // stride))
    if count > available:
        raise DatasetError(f"{what}: {count} windows requested but only {available} are available")
    return (rng.choice(available, size=count, replace=False) * stride + low).astype(POSITION_DTYPE)


def random_split(length: int, context: int, pairs: int, val_fraction: float, seed: int, stride: int = 1) -> Split:
    """The seed's split: one draw without replacement over all valid positions, cut in two.

    ``stride`` s > 1 allows only the window end positions ``n - 1 + k s``: with s = n the windows
    are the recording's consecutive, non-overlapping chunks (the user's DS340 experiment).
    """
    check_context(length, context)
    train_count, _ = split_counts(pairs, val_fraction)
    what = f"context {context}, dataset.pairs" + (f" at dataset.stride {stride}" if stride > 1 else "")
    drawn = _draw(context_rng(seed, context), context - 1, length, pairs, what, stride)
    return Split(train=drawn[:train_count], val=drawn[train_count:])


def blocked_split(length: int, context: int, pairs: int, val_fraction: float, seed: int, stride: int = 1) -> Split:
    """Training from before the cut, validation from after it: no window crosses the cut (``stride`` as above,
    counted from each stretch's first full window)."""
    check_context(length, context)
    train_count, val_count = split_counts(pairs, val_fraction)
    cut = round(length * (1.0 - val_fraction))
    rng = context_rng(seed, context)
    # training windows end at t <= cut-1 and start at t-n+1 >= 0; validation windows start at >= cut
    train = _draw(rng, context - 1, cut, train_count, f"context {context}, blocked training stretch", stride)
    val = _draw(rng, cut + context - 1, length, val_count, f"context {context}, blocked validation stretch", stride)
    return Split(train=train, val=val)


SPLITTERS = {"random": random_split, "blocked": blocked_split}


def make_split(
    kind: str, length: int, context: int, pairs: int, val_fraction: float, seed: int, stride: int = 1
) -> Split:
    """Dispatch to the configured split."""
    return SPLITTERS[kind](length, context, pairs, val_fraction, seed, stride)


def check_context(length: int, context: int) -> None:
    """Raise DatasetError unless a window of ``context`` samples fits in ``length`` samples."""
    if context <= 0:
        raise DatasetError(f"context {context} must be a positive number of samples")
    if context > length:
        raise DatasetError(f"context {context} is longer than the recording ({length} samples)")


def gather_windows(signal: np.ndarray, positions: np.ndarray, context: int) -> np.ndarray:
    """Materialise windows: row i is ``signal[positions[i]-context+1 .. positions[i]]``.

    Positions below ``context - 1`` read zeros for the samples before the start (the padding
    evaluation uses for the first outputs of a riff).
    """
    positions = np.asarray(positions, dtype=POSITION_DTYPE)
    offsets = np.arange(-context + 1, 1, dtype=POSITION_DTYPE)
    index = positions[:, None] + offsets[None, :]
    if positions.size and int(positions.min()) >= context - 1:
        return signal[index]
    padded = np.concatenate([np.zeros(context - 1, dtype=signal.dtype), signal])
    return padded[index + context - 1]


def encode_arrays(**arrays: np.ndarray) -> bytes:
    """Serialise named arrays to ``.npz`` bytes (uncompressed; byte-identical for equal input)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def decode_arrays(data: bytes, source: str) -> dict[str, np.ndarray]:
    """Read ``.npz`` bytes back into a dict of arrays; DatasetError naming the source if corrupt."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as error:
        raise DatasetError(f"{source}: not a readable dataset archive ({error})") from None


@dataclass(frozen=True)
class Segments:
    """The stateful model's data: training segment starts and the held-out validation stretch."""

    starts: np.ndarray  # start of each training segment (int64), all before ``val_start``
    length: int  # samples per training segment
    val_start: int  # the validation stretch is [val_start, end of the recording)


def stateful_segments(length: int, segment: int, val_fraction: float, warmup: int) -> Segments:
    """Tile the training stretch (before the blocked cut) into whole segments; DatasetError if none fits.

    Each segment must be longer than the ``warmup`` it starts with, and the validation stretch too.
    """
    cut = round(length * (1.0 - val_fraction))
    if segment <= warmup:
        raise DatasetError(
            f"model.stateful.segment_seconds gives {segment} samples, not more than warmup_samples {warmup}"
        )
    count = cut // segment
    if count < 1:
        raise DatasetError(
            f"model.stateful.segment_seconds: one segment ({segment} samples) is longer than the training stretch "
            f"of the recording ({cut} samples before the held-out {val_fraction:.0%})"
        )
    if length - cut <= warmup:
        raise DatasetError(
            f"the validation stretch ({length - cut} samples) is not longer than warmup_samples ({warmup})"
        )
    return Segments(np.arange(count, dtype=POSITION_DTYPE) * segment, segment, cut)


def epoch_order(count: int, seed: int, epoch: int) -> np.ndarray:
    """The order in which an epoch visits ``count`` segments: fixed by (seed, epoch), independent of resumes."""
    return np.random.default_rng([seed, epoch]).permutation(count)


# --- loaders of what the data stage stored ---------------------------------------------------


def _read_dataset_object(store: Store, key: str) -> dict[str, np.ndarray]:
    try:
        data = store.read_bytes(key)
    except MissingObjectError:
        raise DatasetError(
            f"{store.url(key)}: dataset not found; run `python -m sd1job data` for this config first"
        ) from None
    return decode_arrays(data, store.url(key))


def load_training_audio(store: Store, layout: RunLayout) -> tuple[np.ndarray, np.ndarray]:
    """The aligned training dry and wet signals the data stage wrote."""
    arrays = _read_dataset_object(store, layout.audio)
    return arrays["dry"], arrays["wet"]


def load_split(store: Store, layout: RunLayout, context: int) -> Split:
    """The window positions of one context."""
    arrays = _read_dataset_object(store, layout.positions(context))
    return Split(train=arrays["train"], val=arrays["val"])
