"""Tests of the held-out split and the HMU partitioners."""

from __future__ import annotations

import numpy as np
import pytest

from iomt.fedlearn.config import PartitionConfig
from iomt.fedlearn.partition import (
    partition,
    partition_dirichlet,
    partition_iid,
    partition_time,
    stratified_split,
)


def _labels(n: int = 5000, attack_share: float = 0.125, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < attack_share).astype(np.int64)


def _assert_cover(parts: list[np.ndarray], indices: np.ndarray) -> None:
    joined = np.concatenate(parts)
    assert len(joined) == len(indices), "an index is used twice or dropped"
    assert np.array_equal(np.sort(joined), np.sort(indices))


def test_stratified_split_keeps_ratio_and_covers() -> None:
    y = _labels()
    train, test = stratified_split(y, 0.2, np.random.default_rng(0))
    _assert_cover([train, test], np.arange(len(y)))
    assert abs(len(test) - 0.2 * len(y)) <= 2  # one row of rounding per class
    whole = y.mean()
    assert abs(y[train].mean() - whole) < 0.01
    assert abs(y[test].mean() - whole) < 0.01
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)


def test_stratified_split_is_seeded() -> None:
    y = _labels()
    a = stratified_split(y, 0.3, np.random.default_rng(7))
    b = stratified_split(y, 0.3, np.random.default_rng(7))
    c = stratified_split(y, 0.3, np.random.default_rng(8))
    assert np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_stratified_split_rejects_bad_fraction() -> None:
    with pytest.raises(ValueError, match="test_fraction"):
        stratified_split(_labels(), 1.0, np.random.default_rng(0))


def test_iid_sizes_and_cover() -> None:
    indices = np.arange(100, 1103)  # 1003 rows, not a multiple of 20
    parts = partition_iid(indices, 20, np.random.default_rng(0))
    _assert_cover(parts, indices)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == 1003
    # shuffled: the first part is not simply the first 50 indices
    assert not np.array_equal(parts[0], indices[: len(parts[0])])


def test_time_windows_are_contiguous() -> None:
    indices = np.random.default_rng(0).permutation(np.arange(0, 3000, 3))
    parts = partition_time(indices, 7)
    _assert_cover(parts, indices)
    ordered = np.sort(indices)
    start = 0
    for part in parts:
        assert np.array_equal(part, ordered[start : start + len(part)])
        start += len(part)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def _attack_share_spread(alpha: float, seed: int) -> float:
    y = _labels(20000, attack_share=0.3)
    parts = partition_dirichlet(
        np.arange(len(y)), y, 10, alpha, np.random.default_rng(seed), min_samples=10
    )
    shares = [y[p].mean() for p in parts]
    return float(np.std(shares))


def test_dirichlet_skew_grows_as_alpha_shrinks() -> None:
    # mean over 5 seeds of the spread of per-part attack shares; the gap between
    # alpha = 100 (near iid, spread ~0.01) and 0.1 (spread ~0.3) is far beyond noise
    spread = {a: np.mean([_attack_share_spread(a, s) for s in range(5)]) for a in (0.1, 1, 100)}
    assert spread[0.1] > spread[1] > spread[100]
    assert spread[100] < 0.03 and spread[0.1] > 0.15


def test_dirichlet_cover_and_min_samples() -> None:
    y = _labels(2000)
    indices = np.arange(5000, 7000)
    for seed in range(10):
        parts = partition_dirichlet(indices, y, 20, 0.05, np.random.default_rng(seed), 30)
        _assert_cover(parts, indices)
        assert min(len(p) for p in parts) >= 30


def test_dirichlet_rejects_impossible_minimum() -> None:
    y = _labels(100)
    with pytest.raises(ValueError, match="need 110 rows"):
        partition_dirichlet(np.arange(100), y, 11, 0.5, np.random.default_rng(0), 10)
    with pytest.raises(ValueError, match="does not match"):
        partition_dirichlet(np.arange(100), y[:50], 2, 0.5, np.random.default_rng(0))


@pytest.mark.parametrize("kind", ["iid", "dirichlet", "time"])
def test_partition_dispatch_covers(kind: str) -> None:
    y = _labels(3000)
    indices = np.arange(3000)
    cfg = PartitionConfig(kind=kind, alpha=0.3, min_samples=20)
    parts = partition(indices, y, cfg, 12, np.random.default_rng(3))
    assert len(parts) == 12
    _assert_cover(parts, indices)
    assert min(len(p) for p in parts) >= 20


def test_partition_rejects_too_few_rows() -> None:
    with pytest.raises(ValueError, match="at least 10 rows"):
        partition(np.arange(50), _labels(50), PartitionConfig(), 6, np.random.default_rng(0))
