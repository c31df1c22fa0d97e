"""Update arithmetic on ``Weights``: deltas from the global model, flat vectors and back.

A client's *update* is ``local - global`` (the FedAvg client delta).  Privacy, attacks,
screening, robust aggregation and compression all act on updates, most of them on the
update flattened into one float64 vector in the key order of the weights.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from iomt.fedlearn.model import Weights, check_weights


def delta(global_w: Weights, local_w: Weights) -> Weights:
    """``local - global`` per key (float64); ``ValueError`` if keys or shapes differ."""
    check_weights(local_w, global_w)
    return {
        k: np.asarray(local_w[k], np.float64) - np.asarray(global_w[k], np.float64)
        for k in global_w
    }


def apply_delta(global_w: Weights, update: Mapping[str, np.ndarray]) -> Weights:
    """``global + update`` per key, as float32 weights."""
    check_weights(dict(update), global_w)
    return {
        k: (np.asarray(global_w[k], np.float64) + np.asarray(update[k], np.float64)).astype(
            np.float32
        )
        for k in global_w
    }


def flatten(weights: Mapping[str, np.ndarray]) -> np.ndarray:
    """All arrays concatenated in key order into one float64 vector."""
    if not weights:
        return np.zeros(0, np.float64)
    return np.concatenate([np.asarray(v, np.float64).ravel() for v in weights.values()])


def unflatten(vector: np.ndarray, like: Mapping[str, np.ndarray]) -> Weights:
    """Cut ``vector`` back into arrays shaped as ``like`` (float64), in ``like``'s key order."""
    vector = np.asarray(vector, np.float64)
    total = sum(int(np.size(v)) for v in like.values())
    if vector.shape != (total,):
        raise ValueError(f"vector has shape {vector.shape}, the weights need ({total},)")
    out: Weights = {}
    offset = 0
    for key, ref in like.items():
        size = int(np.size(ref))
        out[key] = vector[offset : offset + size].reshape(np.shape(ref)).copy()
        offset += size
    return out


def parameter_count(weights: Mapping[str, np.ndarray]) -> int:
    """Number of scalar parameters in ``weights``."""
    return sum(int(np.size(v)) for v in weights.values())


def leakage(reconstruction: np.ndarray, truth: np.ndarray) -> float:
    """Gradient leakage %: the share of the update's variance an attacker recovers,
    ``100 * max(0, 1 - MSE / Var)`` (100 for plaintext, 0 for a guess of the mean)."""
    truth = np.asarray(truth, dtype=np.float64)
    var = float(truth.var())
    if var == 0:
        return 0.0
    mse = float(np.mean((np.asarray(reconstruction, dtype=np.float64) - truth) ** 2))
    return 100.0 * max(0.0, 1.0 - mse / var)
