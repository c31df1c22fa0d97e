"""Byzantine-robust aggregation rules over stacked update vectors (one row per client).

* Krum and multi-Krum (Blanchard et al., 2017, "Machine Learning with Adversaries:
  Byzantine Tolerant Gradient Descent"): with ``n`` updates of which at most ``f`` are
  Byzantine, each update's score is the sum of squared L2 distances to its
  ``n - f - 2`` nearest other updates; Krum keeps the update of lowest score,
  multi-Krum averages the ``m`` of lowest score.  Needs ``n >= 2 f + 3``.
* Coordinate-wise median and coordinate-wise trimmed mean (Yin et al., 2018,
  "Byzantine-Robust Distributed Learning: Towards Optimal Statistical Rates"): per
  parameter, the median, or the mean after dropping the ``floor(beta n)`` largest and
  smallest values.  Either stays within the range of the honest values as long as
  fewer than half (median) or at most ``floor(beta n)`` (trimmed mean) are Byzantine.

All functions are pure numpy on float64 arrays of shape ``(n, d)``.
"""

from __future__ import annotations

import numpy as np


def _rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, np.float64)
    if vectors.ndim != 2 or len(vectors) == 0:
        raise ValueError(f"need a non-empty (n, d) array of updates, got shape {vectors.shape}")
    return vectors


def weighted_mean(vectors: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum_i w_i v_i / sum_i w_i``: FedAvg with ``w_i`` the sample counts."""
    vectors = _rows(vectors)
    weights = np.asarray(weights, np.float64)
    if weights.shape != (len(vectors),) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError("weights must be non-negative, one per update, with a positive sum")
    return weights @ vectors / weights.sum()


def max_krum_f(n: int) -> int:
    """The most Byzantine updates Krum tolerates among ``n``: ``floor((n - 3) / 2)``."""
    return max(0, (n - 3) // 2)


def krum_scores(vectors: np.ndarray, f: int) -> np.ndarray:
    """Each update's Krum score: summed squared distance to its ``n - f - 2`` nearest others."""
    vectors = _rows(vectors)
    n = len(vectors)
    if f < 0 or n < 2 * f + 3:
        raise ValueError(f"Krum needs n >= 2f + 3, got n = {n}, f = {f}")
    squared = np.sum(vectors**2, axis=1)
    dist = squared[:, None] + squared[None, :] - 2.0 * vectors @ vectors.T
    np.maximum(dist, 0.0, out=dist)
    np.fill_diagonal(dist, np.inf)
    nearest = np.sort(dist, axis=1)[:, : n - f - 2]
    return nearest.sum(axis=1)


def krum_select(vectors: np.ndarray, f: int, m: int = 1) -> np.ndarray:
    """Indices of the ``m`` updates of lowest Krum score, best first (ties by index)."""
    scores = krum_scores(vectors, f)
    if not 1 <= m <= len(scores):
        raise ValueError(f"m must lie in 1..{len(scores)}, got {m}")
    return np.argsort(scores, kind="stable")[:m]


def coordinate_median(vectors: np.ndarray) -> np.ndarray:
    """Per-parameter median of the updates."""
    return np.median(_rows(vectors), axis=0)


def trimmed_mean(vectors: np.ndarray, beta: float) -> np.ndarray:
    """Per-parameter mean after dropping the ``floor(beta n)`` largest and smallest values."""
    vectors = _rows(vectors)
    if not 0.0 <= beta < 0.5:
        raise ValueError(f"beta must lie in [0, 0.5), got {beta}")
    n = len(vectors)
    cut = int(np.floor(beta * n))
    if n - 2 * cut < 1:
        raise ValueError(f"trimming {cut} per side leaves nothing of {n} updates")
    ordered = np.sort(vectors, axis=0)
    return ordered[cut : n - cut].mean(axis=0)
