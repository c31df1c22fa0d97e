"""Server aggregation strategies: thin, composable classes over the pure rules.

Every strategy takes the global weights and the round's client weights and returns the
next global weights, the clients it judged malicious, and the trust it holds::

    agg = build_aggregator(DefenceConfig(aggregator="trust", screening={"enabled": True}))
    result = agg.aggregate(global_w, {"hmu-01": (weights, n_rows), ...}, round_no)
    result.weights, result.flagged, result.trust

``Screened`` wraps another strategy: it screens the updates (``iomt.fedlearn.screening``),
drops the flagged ones and hands the rest on, telling the inner strategy whom it
dropped (``prior_flags``), so trust can learn from screening.  The rules work on
updates ``local - global``; the outcome is ``global + rule(updates)``.

``flagged`` means "judged malicious this round": screening flags; for Krum the ``f``
updates of highest score; for multi-Krum those it does not keep.  Median and trimmed
mean judge nobody.  If every update is flagged the global weights stay as they were.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from iomt.fedlearn.defence_config import DefenceConfig, ScreeningConfig, TrustConfig
from iomt.fedlearn.model import Weights
from iomt.fedlearn.robust import (
    coordinate_median,
    krum_scores,
    max_krum_f,
    trimmed_mean,
    weighted_mean,
)
from iomt.fedlearn.screening import ScreeningResult, screen, update_features
from iomt.fedlearn.trust import TrustLedger, trust_weights
from iomt.fedlearn.updates import apply_delta, delta, flatten, unflatten

log = logging.getLogger(__name__)

Updates = Mapping[str, tuple[Weights, float]]
"""Client id -> (its local weights, its number of training rows; times its staleness
weight in asynchronous federation)."""


@dataclass(frozen=True)
class AggregationResult:
    """The next global weights and what the defence concluded this round."""

    weights: Weights
    flagged: frozenset[str] = frozenset()
    trust: dict[str, float] = field(default_factory=dict)
    """Trust per HMU after this round (empty for strategies without trust)."""
    screening: dict[str, dict[str, float]] = field(default_factory=dict)
    """Client -> feature -> z-score, when screening ran."""


class Aggregator(Protocol):
    """What the server calls once per round."""

    def aggregate(
        self,
        global_w: Weights,
        updates: Updates,
        round_no: int,
        prior_flags: frozenset[str] = frozenset(),
    ) -> AggregationResult:
        """Next global weights from ``updates``; ``prior_flags`` were dropped by an outer layer."""
        ...


def stack_updates(global_w: Weights, updates: Updates) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Client ids, their update vectors ``(n, d)`` and sample counts, in ``updates`` order."""
    names = list(updates)
    vectors = np.stack([flatten(delta(global_w, updates[n][0])) for n in names])
    counts = np.array([float(updates[n][1]) for n in names])
    if np.any(counts <= 0):
        raise ValueError("sample counts must be positive")
    return names, vectors, counts


def _result(
    global_w: Weights,
    vector: np.ndarray,
    flagged: frozenset[str],
    trust: dict[str, float] | None = None,
) -> AggregationResult:
    return AggregationResult(
        apply_delta(global_w, unflatten(vector, global_w)), flagged, trust or {}
    )


def _unchanged(global_w: Weights, flagged: frozenset[str]) -> AggregationResult:
    log.warning("no update left to aggregate; the global model stays as it was")
    return AggregationResult({k: np.array(v, np.float32) for k, v in global_w.items()}, flagged)


class FedAvgAggregator:
    """Plain FedAvg (McMahan et al., 2017): the baseline, weighted by sample counts."""

    def aggregate(
        self,
        global_w: Weights,
        updates: Updates,
        round_no: int,
        prior_flags: frozenset[str] = frozenset(),
    ) -> AggregationResult:
        if not updates:
            return _unchanged(global_w, prior_flags)
        _, vectors, counts = stack_updates(global_w, updates)
        return _result(global_w, weighted_mean(vectors, counts), flagged=prior_flags)


@dataclass
class KrumAggregator:
    """Krum (``m = 1``) or multi-Krum (``m`` kept, ``None``: ``n - f``), count-weighted mean."""

    f: int | None = None
    """Assumed Byzantine updates; ``None`` (or too many for n): ``floor((n - 3) / 2)``."""
    m: int | None = 1

    def aggregate(
        self,
        global_w: Weights,
        updates: Updates,
        round_no: int,
        prior_flags: frozenset[str] = frozenset(),
    ) -> AggregationResult:
        if not updates:
            return _unchanged(global_w, prior_flags)
        names, vectors, counts = stack_updates(global_w, updates)
        n = len(names)
        f = max_krum_f(n) if self.f is None else min(self.f, max_krum_f(n))
        if n < 3:  # Krum is undefined; nothing to compare against
            return _result(global_w, weighted_mean(vectors, counts), flagged=prior_flags)
        scores = krum_scores(vectors, f)
        order = np.argsort(scores, kind="stable")
        keep = max(1, min(n, n - f if self.m is None else self.m))
        chosen = order[:keep]
        rejected = order[keep:] if keep > 1 else order[n - f :]
        flagged = prior_flags | {names[i] for i in rejected}
        return _result(global_w, weighted_mean(vectors[chosen], counts[chosen]), flagged=flagged)


class MedianAggregator:
    """Coordinate-wise median of the updates (Yin et al., 2018)."""

    def aggregate(
        self,
        global_w: Weights,
        updates: Updates,
        round_no: int,
        prior_flags: frozenset[str] = frozenset(),
    ) -> AggregationResult:
        if not updates:
            return _unchanged(global_w, prior_flags)
        _, vectors, _ = stack_updates(global_w, updates)
        return _result(global_w, coordinate_median(vectors), flagged=prior_flags)


@dataclass
class TrimmedMeanAggregator:
    """Coordinate-wise trimmed mean, cutting ``floor(beta n)`` per side (Yin et al., 2018)."""

    beta: float = 0.2

    def aggregate(
        self,
        global_w: Weights,
        updates: Updates,
        round_no: int,
        prior_flags: frozenset[str] = frozenset(),
    ) -> AggregationResult:
        if not updates:
            return _unchanged(global_w, prior_flags)
        _, vectors, _ = stack_updates(global_w, updates)
        return _result(global_w, trimmed_mean(vectors, self.beta), flagged=prior_flags)


class TrustAggregator:
    """Trust-weighted FedAvg (SAFE-MED): weights ``t_i n_i``, trust learnt from screening.

    ``flagged`` holds the screening's flags and the updates left out because their
    sender's trust is below the floor: both are updates the defence rejected.  Trust
    itself learns only from the screening's verdicts.
    """

    def __init__(self, cfg: TrustConfig | None = None) -> None:
        self.ledger = TrustLedger(cfg or TrustConfig())

    def aggregate(
        self,
        global_w: Weights,
        updates: Updates,
        round_no: int,
        prior_flags: frozenset[str] = frozenset(),
    ) -> AggregationResult:
        self.ledger.observe(round_no, [*updates, *prior_flags], prior_flags)
        trust = dict(self.ledger.trust)
        counts = {name: n for name, (_, n) in updates.items()}
        weights = trust_weights(trust, counts, self.ledger.cfg)
        # an update left out for its sender's anomaly history is one the defence rejected
        flagged = prior_flags | frozenset(name for name in updates if name not in weights)
        if not weights:
            result = _unchanged(global_w, flagged)
            return AggregationResult(result.weights, flagged, trust)
        kept = {name: updates[name] for name in weights}
        names, vectors, _ = stack_updates(global_w, kept)
        mean = weighted_mean(vectors, np.array([weights[n] for n in names]))
        return _result(global_w, mean, flagged=flagged, trust=trust)


@dataclass
class Screened:
    """Screen the updates, drop the flagged, aggregate the rest with ``inner``."""

    inner: Aggregator
    cfg: ScreeningConfig
    last: ScreeningResult | None = None
    norms: list[float] = field(default_factory=list)
    """Log-norms of the latest updates that passed, ``cfg.history`` of them at most."""

    def aggregate(
        self,
        global_w: Weights,
        updates: Updates,
        round_no: int,
        prior_flags: frozenset[str] = frozenset(),
    ) -> AggregationResult:
        names = list(updates)
        vectors = {n: flatten(delta(global_w, updates[n][0])) for n in names}
        self.last = screen(vectors, self.cfg, self.norms)
        if self.cfg.history:
            passed = update_features(np.stack([vectors[n] for n in names]))["norm"] if names else []
            kept_norms = [float(v) for n, v in zip(names, passed, strict=True)
                          if n not in self.last.flagged and np.isfinite(v)]  # fmt: skip
            self.norms = (self.norms + kept_norms)[-self.cfg.history :]
        if self.last.flagged:
            log.info("round %d: screening flagged %s", round_no, sorted(self.last.flagged))
        kept = {n: updates[n] for n in names if n not in self.last.flagged}
        inner = self.inner.aggregate(global_w, kept, round_no, prior_flags | self.last.flagged)
        return AggregationResult(
            inner.weights, inner.flagged | self.last.flagged, inner.trust, self.last.scores
        )


def trust_ledger(aggregator: Aggregator) -> TrustLedger | None:
    """The trust ledger inside ``aggregator`` (behind screening), if it keeps one."""
    inner = aggregator.inner if isinstance(aggregator, Screened) else aggregator
    return inner.ledger if isinstance(inner, TrustAggregator) else None


def build_aggregator(cfg: DefenceConfig) -> Aggregator:
    """The strategy a scenario's ``defence`` section describes (screening outermost)."""
    rule: Aggregator
    if cfg.aggregator == "fedavg":
        rule = FedAvgAggregator()
    elif cfg.aggregator == "krum":
        rule = KrumAggregator(cfg.krum_f, 1)
    elif cfg.aggregator == "multi-krum":
        rule = KrumAggregator(cfg.krum_f, cfg.multi_krum_m)
    elif cfg.aggregator == "median":
        rule = MedianAggregator()
    elif cfg.aggregator == "trimmed-mean":
        rule = TrimmedMeanAggregator(cfg.trim_fraction)
    else:
        rule = TrustAggregator(cfg.trust)
    return Screened(rule, cfg.screening) if cfg.screening.enabled else rule
