"""A reference FedAvg for differential tests: the textbook formula, written plainly.

The testbed's own FedAvg is ``iomt.fedlearn.strategy.FedAvgAggregator`` (on updates
``local - global``); this one averages the weights themselves, in float64.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Weights = dict[str, np.ndarray]


def fedavg(updates: Sequence[tuple[Weights, float]]) -> Weights:
    """``w = sum_k (n_k / n) w_k`` over ``(w_k, n_k)``, ``n = sum_k n_k``; float32 out."""
    total = float(sum(n for _, n in updates))
    return {
        key: sum((n / total) * np.asarray(w[key], np.float64) for w, n in updates).astype(
            np.float32
        )
        for key in updates[0][0]
    }
