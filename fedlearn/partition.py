"""Splitting flow rows: the held-out test split and the shares dealt to the HMUs.

Every partitioner takes row indices and returns one sorted index array per HMU; the
arrays are disjoint and together use every index exactly once.  Randomness comes only
from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import numpy as np

from iomt.fedlearn.config import PartitionConfig


def stratified_split(
    y: np.ndarray, test_fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices ``0..len(y)-1`` into sorted (train, test) keeping class ratios.

    Each class contributes ``round(n_c * test_fraction)`` rows to the test split, so the
    class ratio of either split is within one row per class of the whole table's.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    y = np.asarray(y)
    test_parts = []
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        n_test = int(round(len(rows) * test_fraction))
        test_parts.append(rng.choice(rows, size=n_test, replace=False))
    test = np.sort(np.concatenate(test_parts)) if test_parts else np.empty(0, np.int64)
    keep = np.ones(len(y), dtype=bool)
    keep[test] = False
    return np.flatnonzero(keep), test.astype(np.int64)


def _check(indices: np.ndarray, n_parts: int) -> np.ndarray:
    indices = np.asarray(indices, dtype=np.int64)
    if indices.ndim != 1:
        raise ValueError(f"indices must be 1-D, got shape {indices.shape}")
    if n_parts < 1:
        raise ValueError(f"n_parts must be at least 1, got {n_parts}")
    if len(indices) < n_parts:
        raise ValueError(f"cannot deal {len(indices)} rows to {n_parts} parts")
    return indices


def partition_iid(indices: np.ndarray, n_parts: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffle, then cut into ``n_parts`` shares whose sizes differ by at most one."""
    indices = _check(indices, n_parts)
    shuffled = rng.permutation(indices)
    return [np.sort(part) for part in np.array_split(shuffled, n_parts)]


def partition_dirichlet(
    indices: np.ndarray,
    labels: np.ndarray,
    n_parts: int,
    alpha: float,
    rng: np.random.Generator,
    min_samples: int = 1,
) -> list[np.ndarray]:
    """Label-skewed shares: each class is split by proportions drawn from Dir(alpha).

    The scheme of Hsu, Qi and Brown (2019, arXiv:1909.06335): for every class ``c`` draw
    ``p_c ~ Dir(alpha * 1_n)`` and give part ``k`` a multinomial ``p_c[k]`` share of the
    class's rows.  Small ``alpha`` concentrates each class on few parts; large ``alpha``
    tends to iid.  ``labels[i]`` is the label of ``indices[i]``.  Afterwards every part
    smaller than ``min_samples`` takes random rows from the currently largest part until
    it reaches ``min_samples``, which keeps the skew of the rest intact.
    """
    indices = _check(indices, n_parts)
    labels = np.asarray(labels)
    if labels.shape != indices.shape:
        raise ValueError(f"labels shape {labels.shape} does not match indices {indices.shape}")
    if alpha <= 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    if min_samples * n_parts > len(indices):
        raise ValueError(
            f"{n_parts} parts of at least {min_samples} rows need {min_samples * n_parts}"
            f" rows, have {len(indices)}"
        )
    shares: list[list[np.ndarray]] = [[] for _ in range(n_parts)]
    for label in np.unique(labels):
        rows = rng.permutation(indices[labels == label])
        proportions = rng.dirichlet(np.full(n_parts, alpha))
        counts = rng.multinomial(len(rows), proportions)
        for k, chunk in enumerate(np.split(rows, np.cumsum(counts)[:-1])):
            shares[k].append(chunk)
    parts = [np.concatenate(chunks) for chunks in shares]
    for k in range(n_parts):
        while len(parts[k]) < min_samples:
            donor = int(np.argmax([len(p) for p in parts]))
            take = min(min_samples - len(parts[k]), len(parts[donor]) - min_samples)
            moved = rng.choice(len(parts[donor]), size=take, replace=False)
            parts[k] = np.concatenate([parts[k], parts[donor][moved]])
            parts[donor] = np.delete(parts[donor], moved)
    return [np.sort(p) for p in parts]


def partition_time(indices: np.ndarray, n_parts: int) -> list[np.ndarray]:
    """Contiguous windows of capture (row) order, sizes differing by at most one.

    Each HMU sees one stretch of the capture, so the attack mix follows the attack
    schedule of WUSTL-EHMS-2020 (169 runs of one category) rather than a random draw.
    """
    indices = _check(indices, n_parts)
    return [np.asarray(part) for part in np.array_split(np.sort(indices), n_parts)]


def partition(
    indices: np.ndarray,
    labels: np.ndarray,
    cfg: PartitionConfig,
    n_parts: int,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Deal ``indices`` (with ``labels[i]`` the label of ``indices[i]``) as ``cfg`` says.

    Raises ``ValueError`` when there are too few rows to give every part
    ``cfg.min_samples`` rows.
    """
    if len(indices) < cfg.min_samples * n_parts:
        raise ValueError(
            f"{n_parts} parts of at least {cfg.min_samples} rows need"
            f" {cfg.min_samples * n_parts} rows, have {len(indices)}"
        )
    if cfg.kind == "iid":
        return partition_iid(indices, n_parts, rng)
    if cfg.kind == "dirichlet":
        return partition_dirichlet(indices, labels, n_parts, cfg.alpha, rng, cfg.min_samples)
    if cfg.kind == "time":
        return partition_time(indices, n_parts)
    raise ValueError(f"unknown partition kind {cfg.kind!r}")
