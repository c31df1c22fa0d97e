"""Federated averaging of client weights (McMahan et al., 2017), pure numpy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from iomt.fedlearn.model import Weights, check_weights


def fedavg(updates: Sequence[tuple[Weights, int]]) -> Weights:
    """``w = sum_k (n_k / n) w_k`` over the updates ``(w_k, n_k)``, ``n = sum_k n_k``.

    Raises ``ValueError`` when there are no updates, a sample count is not positive,
    or the updates disagree on keys or shapes.  Sums in float64, returns float32.
    """
    if not updates:
        raise ValueError("fedavg needs at least one update")
    reference = updates[0][0]
    counts = []
    for i, (weights, count) in enumerate(updates):
        if count <= 0:
            raise ValueError(f"update {i} has sample count {count}; counts must be positive")
        try:
            check_weights(weights, {k: np.asarray(v) for k, v in reference.items()})
        except ValueError as exc:
            raise ValueError(f"update {i}: {exc}") from None
        counts.append(float(count))
    total = sum(counts)
    averaged: Weights = {}
    for key in reference:
        acc = np.zeros(np.shape(reference[key]), dtype=np.float64)
        for (weights, _), count in zip(updates, counts, strict=True):
            acc += (count / total) * np.asarray(weights[key], dtype=np.float64)
        averaged[key] = acc.astype(np.float32)
    return averaged
