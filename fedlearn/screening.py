"""Z-score anomaly screening of one round's updates against that round's distribution.

SAFE-MED (Khan et al., 2025) screens client updates with z-scores before aggregating.
Two features of each update ``u_i`` are scored:

* ``norm``: ``log ||u_i||_2``.  Boosted, flipped-and-boosted or noised updates are
  large, free riders small; the log makes a factor ``c`` in either direction the same
  distance ``log c``.  Flagged when ``|z| > threshold``.
* ``cosine``: ``cos(u_i, m)`` with ``m`` the coordinate-wise median of all updates, a
  reference direction that up to half of the clients cannot turn.  Flagged when
  ``z < -threshold``: an update pointing away from the others is suspect, one unusually
  aligned with them is not.

The z-score ``(x - centre) / spread`` takes its centre and spread from one of:

* ``shorth`` (default): the shortest interval holding ``h = floor(n / 2) + 1`` of the
  ``n`` values (the least median of squares location, Rousseeuw, 1984); centre its
  midpoint, spread ``1.4826 (1 + 5 / n)`` times its half-length (the LMS scale with
  the small-sample factor of Rousseeuw and Leroy, 1987).  Like the MAD it withstands
  up to half of the values being attackers, but it copes better with a tight cluster
  of them (boosted copies form one): the median then sits at the edge of the honest
  values next to the cluster, so the cluster looks closer and the MAD larger, while the
  shortest half lies inside the honest values.  In a run with 8 of 20 updates flipped
  and boosted x4 the MAD scored them 3.1 to 3.5 on ``norm`` and missed 7 % of them;
  the shorth caught them all.
* ``mad``: the modified z-score of Iglewicz and Hoaglin (1993),
  ``0.6745 (x - median) / MAD``.
* ``std``: mean and standard deviation, which a single huge value can drag.

A zero spread (most values equal) falls back to the mean absolute deviation from the
centre (times 1.2533, its ratio to the standard deviation for normal data); if that is
0 too, values at the centre score 0 and any other value infinity.

**History** (``history: H``): a fog round or an asynchronous buffer may hold two or
three updates, too few for a z-score. The ``norm`` feature can then also lean on the
log-norms of the last ``H`` updates that passed (kept by the caller across rounds):
centre and spread come from those and this round's values together, and only this
round's are judged. A round is screened once it has ``min_clients`` values with its
history. ``cosine`` has no history (its reference, the round's median update, is of
this round only) and runs only on rounds of ``min_clients`` updates themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from iomt.fedlearn.defence_config import ScreeningConfig

_MAD_TO_Z = 0.6745  # Phi^-1(3/4): the MAD of a standard normal
_MEAN_AD_TO_STD = 1.2533  # sqrt(pi / 2)
_LMS = 1.4826  # 1 / Phi^-1(3/4)


@dataclass(frozen=True)
class ScreeningResult:
    """Flagged clients and each client's z-score per feature."""

    flagged: frozenset[str]
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    """Client -> feature -> z."""


def shorth(values: np.ndarray) -> tuple[float, float]:
    """Centre and LMS scale of the shortest half of ``values`` (see module doc)."""
    x = np.sort(np.asarray(values, np.float64))
    n = len(x)
    h = n // 2 + 1
    widths = x[h - 1 :] - x[: n - h + 1]
    i = int(np.argmin(widths))
    return float((x[i] + x[i + h - 1]) / 2.0), _LMS * (1.0 + 5.0 / n) * float(widths[i]) / 2.0


def z_scores(values: np.ndarray, estimator: str = "shorth") -> np.ndarray:
    """Z-scores of ``values`` with the centre and spread of ``estimator`` (see module doc)."""
    x = np.asarray(values, np.float64)
    if x.size == 0:
        return x.copy()
    if estimator == "std":
        centre, spread = float(x.mean()), float(x.std())
    elif estimator == "mad":
        centre = float(np.median(x))
        spread = float(np.median(np.abs(x - centre))) / _MAD_TO_Z
    elif estimator == "shorth":
        centre, spread = shorth(x)
    else:
        raise ValueError(f"unknown estimator {estimator!r}")
    dev = x - centre
    if spread <= 0:
        spread = _MEAN_AD_TO_STD * float(np.abs(dev).mean())
    if spread <= 0:
        return np.where(dev > 0, np.inf, np.where(dev < 0, -np.inf, 0.0))
    return dev / spread


def update_features(vectors: np.ndarray) -> dict[str, np.ndarray]:
    """``norm`` (log L2 norm) and ``cosine`` (to the coordinate-wise median) of each row."""
    vectors = np.asarray(vectors, np.float64)
    norms = np.linalg.norm(vectors, axis=1)
    median = np.median(vectors, axis=0)
    median_norm = np.linalg.norm(median)
    with np.errstate(divide="ignore", invalid="ignore"):
        cosine = vectors @ median / (norms * median_norm)
        log_norm = np.log(norms)
    cosine = np.nan_to_num(cosine, nan=0.0)
    log_norm = np.where(norms > 0, log_norm, -np.inf)
    return {"norm": log_norm, "cosine": cosine}


def screen(
    updates: Mapping[str, np.ndarray], cfg: ScreeningConfig, history: Sequence[float] = ()
) -> ScreeningResult:
    """Flag the anomalous updates (flattened update vectors by client) of one round.

    ``history``: log-norms of recent updates that passed (see the module doc). Rounds
    with fewer than ``cfg.min_clients`` values are not screened (nothing is flagged):
    a z-score over two or three values says nothing.
    """
    names = list(updates)
    past = np.asarray(history, np.float64)
    if not cfg.enabled or not names or len(names) + len(past) < cfg.min_clients:
        return ScreeningResult(frozenset())
    vectors = np.stack([np.asarray(updates[n], np.float64) for n in names])
    features = update_features(vectors)
    flagged: set[str] = set()
    scores: dict[str, dict[str, float]] = {n: {} for n in names}
    for feature in cfg.features:
        if feature == "cosine" and len(names) < cfg.min_clients:
            continue  # the round's median is no reference for two or three updates
        values = features[feature]
        finite = np.isfinite(values)
        z = np.full(len(values), -np.inf)
        if feature == "norm" and len(past):
            z[finite] = z_scores(np.concatenate([past, values[finite]]), cfg.estimator)[len(past) :]
        else:
            z[finite] = z_scores(values[finite], cfg.estimator)
        out = np.abs(z) > cfg.threshold if feature == "norm" else z < -cfg.threshold
        for name, score, bad in zip(names, z, out, strict=True):
            scores[name][feature] = float(score)
            if bad:
                flagged.add(name)
    return ScreeningResult(frozenset(flagged), scores)
