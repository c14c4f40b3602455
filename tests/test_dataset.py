"""Window positions, alignment, splits and determinism."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sd1job.dataset import (
    DatasetError,
    blocked_split,
    decode_arrays,
    encode_arrays,
    gather_windows,
    random_split,
    split_counts,
)


def test_window_ends_at_its_target_sample() -> None:
    signal = np.arange(100, dtype=np.float32)
    windows = gather_windows(signal, np.array([9, 50, 99]), 10)
    np.testing.assert_array_equal(windows[0], np.arange(0, 10))
    np.testing.assert_array_equal(windows[1], np.arange(41, 51))
    assert windows[2][-1] == 99  # the last dry sample is the one under the target wet[t]


def test_early_positions_are_zero_padded() -> None:
    signal = np.arange(1, 21, dtype=np.float32)
    windows = gather_windows(signal, np.array([0, 2]), 4)
    np.testing.assert_array_equal(windows, [[0, 0, 0, 1], [0, 1, 2, 3]])


def test_split_counts() -> None:
    assert split_counts(100_000, 0.25) == (75_000, 25_000)
    assert split_counts(10, 0.01) == (9, 1)


def test_random_split_is_deterministic_and_disjoint() -> None:
    a = random_split(50_000, 44, 10_000, 0.25, seed=25)
    b = random_split(50_000, 44, 10_000, 0.25, seed=25)
    c = random_split(50_000, 44, 10_000, 0.25, seed=26)
    np.testing.assert_array_equal(a.train, b.train)
    np.testing.assert_array_equal(a.val, b.val)
    assert not np.array_equal(a.train, c.train)
    assert (len(a.train), len(a.val)) == (7_500, 2_500)
    assert not set(a.train.tolist()) & set(a.val.tolist())
    everything = np.concatenate([a.train, a.val])
    assert everything.min() >= 43 and everything.max() <= 49_999
    assert len(np.unique(everything)) == len(everything)  # without replacement


def test_contexts_draw_independently() -> None:
    a = random_split(50_000, 44, 1_000, 0.25, seed=25)
    b = random_split(50_000, 88, 1_000, 0.25, seed=25)
    assert not np.array_equal(a.train, b.train)


@pytest.mark.parametrize("context", [1, 44, 440])
def test_blocked_split_never_overlaps_training(context: int) -> None:
    length = 20_000
    split = blocked_split(length, context, 4_000, 0.25, seed=25)
    train_samples = split.train[:, None] - np.arange(context)[None, :]
    val_samples = split.val[:, None] - np.arange(context)[None, :]
    assert train_samples.min() >= 0 and val_samples.max() < length
    assert train_samples.max() < val_samples.min()  # every training sample precedes every validation one
    assert (len(split.train), len(split.val)) == (3_000, 1_000)


def test_too_many_pairs_is_refused() -> None:
    with pytest.raises(DatasetError, match="only 957 are available"):
        random_split(1_000, 44, 2_000, 0.25, seed=25)
    with pytest.raises(DatasetError, match="blocked"):
        blocked_split(1_000, 44, 900, 0.25, seed=25)


def test_context_longer_than_recording() -> None:
    with pytest.raises(DatasetError, match="longer than the recording"):
        random_split(100, 440, 10, 0.25, seed=25)


def test_archive_round_trip_and_corruption() -> None:
    data = encode_arrays(train=np.arange(5), val=np.arange(3))
    back = decode_arrays(data, "x.npz")
    np.testing.assert_array_equal(back["train"], np.arange(5))
    assert encode_arrays(train=np.arange(5), val=np.arange(3)) == data
    with pytest.raises(DatasetError, match=r"x\.npz"):
        decode_arrays(data[:40], "x.npz")


@pytest.mark.parametrize("split", [random_split, blocked_split])
def test_stride_of_the_context_draws_non_overlapping_chunks(split: Any) -> None:
    length, context = 20_000, 44
    drawn = split(length, context, 400, 0.25, seed=25, stride=context)
    everything = np.sort(np.concatenate([drawn.train, drawn.val]))
    assert len(np.unique(everything)) == 400
    assert np.all(np.diff(everything) >= context)  # no sample in two windows
    first = everything if split is random_split else drawn.train
    assert np.all((first - (context - 1)) % context == 0)  # consecutive chunks from the recording's start


def test_stride_one_draws_exactly_what_the_seed_drew() -> None:
    a, b = random_split(50_000, 44, 1_000, 0.25, seed=25), random_split(50_000, 44, 1_000, 0.25, seed=25, stride=1)
    np.testing.assert_array_equal(a.train, b.train)


def test_non_overlapping_windows_run_out_sooner_and_the_error_says_why() -> None:
    # 1,000 samples hold 22 chunks of 44: the 23rd window is refused, naming the stride
    random_split(1_000, 44, 22, 0.25, seed=25, stride=44)
    with pytest.raises(DatasetError, match=r"dataset\.stride 44: 23 windows requested but only 22 are available"):
        random_split(1_000, 44, 23, 0.25, seed=25, stride=44)


def test_stride_is_a_positive_number_or_context() -> None:
    from sd1job.config import DatasetConfig

    assert DatasetConfig(stride="context").stride_for(66) == 66
    assert DatasetConfig().stride_for(66) == 1
    for bad in (0, "chunks"):
        with pytest.raises(ValueError, match="stride"):
            DatasetConfig(stride=bad)
