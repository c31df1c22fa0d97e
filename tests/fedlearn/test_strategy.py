"""Tests of the aggregation strategies and their composition."""

from __future__ import annotations

import numpy as np
import pytest

from iomt.fedlearn.defence_config import DefenceConfig, ScreeningConfig, TrustConfig
from iomt.fedlearn.model import Weights, init_weights
from iomt.fedlearn.strategy import (
    FedAvgAggregator,
    KrumAggregator,
    MedianAggregator,
    Screened,
    TrimmedMeanAggregator,
    TrustAggregator,
    build_aggregator,
)
from iomt.fedlearn.updates import apply_delta, flatten, unflatten
from tests.fedlearn.reference import fedavg

GLOBAL = init_weights(6, (8,), seed=0)
ON = ScreeningConfig(enabled=True)


def round_updates(
    seed: int, bad: dict[str, float] | None = None, n: int = 12
) -> dict[str, tuple[Weights, int]]:
    """Honest updates share a direction; ``bad`` maps HMU -> factor on its update."""
    rng = np.random.default_rng(seed)
    size = flatten(GLOBAL).size
    direction = rng.normal(size=size) * 0.01
    out = {}
    for i in range(n):
        name = f"hmu-{i:02d}"
        u = direction + 0.01 * rng.normal(size=size)
        u *= (bad or {}).get(name, 1.0)
        out[name] = (apply_delta(GLOBAL, unflatten(u, GLOBAL)), 100 + i)
    return out


def test_fedavg_aggregator_matches_fedavg() -> None:
    updates = round_updates(0)
    result = FedAvgAggregator().aggregate(GLOBAL, updates, 1)
    expected = fedavg(list(updates.values()))
    for key in GLOBAL:
        np.testing.assert_allclose(result.weights[key], expected[key], atol=1e-6)
    assert result.flagged == frozenset() and result.trust == {}


def test_screening_drops_the_flipped_update_before_aggregating() -> None:
    updates = round_updates(1, {"hmu-03": -10.0})
    result = Screened(FedAvgAggregator(), ON).aggregate(GLOBAL, updates, 1)
    assert result.flagged == {"hmu-03"}
    honest = fedavg([v for k, v in updates.items() if k != "hmu-03"])
    for key in GLOBAL:
        np.testing.assert_allclose(result.weights[key], honest[key], atol=1e-6)
    assert result.screening["hmu-03"]["cosine"] < -3.5


def test_trust_keeps_a_repeat_offender_out_when_it_slips_through() -> None:
    # The verdicts come from an outer screening layer as prior_flags (here given directly).
    agg = TrustAggregator(TrustConfig(decay=0.7, floor=0.5))
    updates = round_updates(3)
    rest = {k: v for k, v in updates.items() if k != "hmu-05"}
    for round_no in (1, 2):
        result = agg.aggregate(GLOBAL, rest, round_no, prior_flags=frozenset({"hmu-05"}))
        assert result.flagged == {"hmu-05"}
    assert result.trust["hmu-05"] == pytest.approx(0.49)
    # round 3: not flagged; trust 0.7 * 0.49 + 0.3 = 0.643 >= 0.5, so it counts again
    result = agg.aggregate(GLOBAL, updates, 3)
    assert result.trust["hmu-05"] == pytest.approx(0.643)
    assert result.flagged == frozenset()
    expected = fedavg([(w, result.trust[k] * n) for k, (w, n) in updates.items()])
    for key in GLOBAL:
        np.testing.assert_allclose(result.weights[key], expected[key], atol=1e-6)
    # flagged four rounds in a row (0.7^4 = 0.24): one clean round gives 0.468 < 0.5
    agg = TrustAggregator(TrustConfig(decay=0.7, floor=0.5))
    for round_no in (1, 2, 3, 4):
        agg.aggregate(GLOBAL, rest, round_no, prior_flags=frozenset({"hmu-05"}))
    result = agg.aggregate(GLOBAL, updates, 5)
    assert result.trust["hmu-05"] == pytest.approx(0.7**5 + 0.3)
    assert result.trust["hmu-05"] < 0.5  # slipped through screening, still left out
    assert result.flagged == {"hmu-05"}  # and reported as rejected
    expected = fedavg([(w, result.trust[k] * n) for k, (w, n) in rest.items()])
    for key in GLOBAL:
        np.testing.assert_allclose(result.weights[key], expected[key], atol=1e-6)


def test_screened_trust_flags_a_flipped_update_round_after_round() -> None:
    agg = build_aggregator(DefenceConfig(aggregator="trust", screening=ON))
    for round_no in (1, 2):
        result = agg.aggregate(GLOBAL, round_updates(round_no, {"hmu-05": -10.0}), round_no)
        assert "hmu-05" in result.flagged
        assert result.trust["hmu-05"] == pytest.approx(0.7**round_no)


def test_krum_flags_the_f_worst_and_multi_krum_the_rejected() -> None:
    updates = round_updates(4, {"hmu-00": 50.0, "hmu-01": -50.0})
    krum = KrumAggregator(f=2, m=1).aggregate(GLOBAL, updates, 1)
    assert krum.flagged == {"hmu-00", "hmu-01"}
    multi = KrumAggregator(f=2, m=None).aggregate(GLOBAL, updates, 1)
    assert multi.flagged == {"hmu-00", "hmu-01"}
    honest = fedavg([v for k, v in updates.items() if k not in multi.flagged])
    for key in GLOBAL:
        np.testing.assert_allclose(multi.weights[key], honest[key], atol=1e-6)


def test_median_and_trimmed_mean_resist_boosted_updates() -> None:
    updates = round_updates(5, {"hmu-00": 1e4, "hmu-01": 1e4, "hmu-02": 1e4})
    honest = np.stack(
        [flatten(w) - flatten(GLOBAL) for k, (w, _) in updates.items() if k >= "hmu-03"]
    )
    for agg in (MedianAggregator(), TrimmedMeanAggregator(0.25)):
        moved = flatten(agg.aggregate(GLOBAL, updates, 1).weights) - flatten(GLOBAL)
        assert np.all(moved <= honest.max(axis=0) + 1e-6)
        assert np.all(moved >= honest.min(axis=0) - 1e-6)


def test_build_aggregator_composes_as_configured() -> None:
    assert isinstance(build_aggregator(DefenceConfig()), FedAvgAggregator)
    screened = build_aggregator(DefenceConfig(aggregator="median", screening=ON))
    assert isinstance(screened, Screened) and isinstance(screened.inner, MedianAggregator)
    trust = build_aggregator(
        DefenceConfig(aggregator="trust", screening=ON, trust=TrustConfig(decay=0.5))
    )
    assert isinstance(trust, Screened) and isinstance(trust.inner, TrustAggregator)
    assert trust.inner.ledger.cfg.decay == 0.5
    krum = build_aggregator(DefenceConfig(aggregator="multi-krum", krum_f=1, multi_krum_m=4))
    assert isinstance(krum, KrumAggregator) and (krum.f, krum.m) == (1, 4)


def test_no_updates_left_keeps_the_global_model() -> None:
    for agg in (FedAvgAggregator(), MedianAggregator(), KrumAggregator(), TrustAggregator()):
        result = agg.aggregate(GLOBAL, {}, 1, prior_flags=frozenset({"x"}))
        assert result.flagged == {"x"}
        for key in GLOBAL:
            np.testing.assert_array_equal(result.weights[key], GLOBAL[key])
