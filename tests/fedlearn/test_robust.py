"""Tests of Krum, multi-Krum, coordinate-wise median and trimmed mean on crafted updates."""

from __future__ import annotations

import numpy as np
import pytest

from iomt.fedlearn.robust import (
    coordinate_median,
    krum_scores,
    krum_select,
    max_krum_f,
    trimmed_mean,
    weighted_mean,
)


def crafted(n_honest: int, n_bad: int, d: int = 50, seed: int = 0) -> np.ndarray:
    """Honest rows around +1, Byzantine rows in a tight cluster far away (rows last)."""
    rng = np.random.default_rng(seed)
    honest = 1.0 + 0.1 * rng.normal(size=(n_honest, d))
    bad = -20.0 + 0.01 * rng.normal(size=(n_bad, d))
    return np.vstack([honest, bad])


def test_krum_picks_from_the_honest_cluster() -> None:
    for seed in range(5):
        vectors = crafted(7, 3, seed=seed)
        best = krum_select(vectors, f=3)
        assert best.tolist()[0] < 7
        kept = krum_select(vectors, f=3, m=7)
        assert sorted(kept.tolist()) == list(range(7))


def test_krum_scores_follow_the_definition() -> None:
    vectors = np.array([[0.0], [1.0], [3.0], [7.0], [15.0]])
    # f = 1: each row sums the squared distances to its n - f - 2 = 2 nearest others
    np.testing.assert_allclose(krum_scores(vectors, 1), [1 + 9, 1 + 4, 4 + 9, 16 + 36, 64 + 144])
    with pytest.raises(ValueError, match="2f \\+ 3"):
        krum_scores(vectors, 2)
    assert [max_krum_f(n) for n in (3, 4, 10, 20)] == [0, 0, 3, 8]


def test_median_and_trimmed_mean_stay_within_the_honest_range() -> None:
    for n_bad in (1, 3, 4):
        vectors = crafted(6, n_bad, seed=n_bad)
        vectors[6:] = 1e6  # huge attackers on one side
        honest = vectors[:6]
        lo, hi = honest.min(axis=0), honest.max(axis=0)
        med = coordinate_median(vectors)
        assert np.all((med >= lo) & (med <= hi))
        beta = 0.4  # floor(0.4 n) >= n_bad for every case here
        assert np.floor(beta * len(vectors)) >= n_bad
        tm = trimmed_mean(vectors, beta)
        assert np.all((tm >= lo) & (tm <= hi))
    plain = vectors.mean(axis=0)
    assert np.all(plain > 1e5)  # the mean, by contrast, is dragged away


def test_trimmed_mean_and_weighted_mean_values() -> None:
    vectors = np.array([[1.0], [2.0], [3.0], [4.0], [100.0]])
    assert trimmed_mean(vectors, 0.2)[0] == pytest.approx(3.0)
    assert trimmed_mean(vectors, 0.0)[0] == pytest.approx(22.0)
    assert weighted_mean(vectors[:2], np.array([1.0, 3.0]))[0] == pytest.approx(1.75)
    with pytest.raises(ValueError):
        trimmed_mean(vectors, 0.5)
    with pytest.raises(ValueError):
        weighted_mean(vectors, np.zeros(5))
