"""Tests of z-score anomaly screening."""

from __future__ import annotations

import numpy as np
import pytest

from iomt.fedlearn.defence_config import ScreeningConfig
from iomt.fedlearn.screening import screen, shorth, z_scores

ON = ScreeningConfig(enabled=True)


def honest_updates(n: int, d: int = 500, seed: int = 0) -> dict[str, np.ndarray]:
    """A shared direction plus client noise, as local updates from iid shares look."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=d)
    return {
        f"hmu-{i:02d}": direction + 1.5 * rng.normal(size=d) * rng.uniform(0.8, 1.2)
        for i in range(n)
    }


def test_flags_a_sign_flipped_x10_update_among_honest_ones() -> None:
    for seed in range(5):
        updates = honest_updates(20, seed=seed)
        updates["hmu-07"] = -10.0 * updates["hmu-07"]
        result = screen(updates, ON)
        assert result.flagged == {"hmu-07"}, seed
        assert result.scores["hmu-07"]["norm"] > 3.5
        assert result.scores["hmu-07"]["cosine"] < -3.5


def test_flags_a_sign_flipped_update_of_honest_norm_by_its_cosine() -> None:
    updates = honest_updates(20, seed=1)
    updates["hmu-03"] = -updates["hmu-03"]
    result = screen(updates, ON)
    assert result.flagged == {"hmu-03"}
    assert abs(result.scores["hmu-03"]["norm"]) < 3.5


def test_forty_percent_boosted_updates_are_all_caught() -> None:
    updates = honest_updates(20, seed=2)
    bad = [f"hmu-{i:02d}" for i in range(8)]
    for name in bad:
        updates[name] = -4.0 * updates[name]
    assert screen(updates, ON).flagged == set(bad)


def test_shorth_catches_a_tight_40_percent_cluster_better_than_the_mad() -> None:
    for seed in range(3):
        rng = np.random.default_rng(seed)
        values = np.concatenate([rng.normal(0.0, 0.1, 12), 1.0 + rng.normal(0.0, 0.02, 8)])
        z = z_scores(values, "shorth")
        assert np.all(z[12:] > 3.5) and np.all(np.abs(z[:12]) < 3.5), seed
        assert np.all(z[12:] > z_scores(values, "mad")[12:]), seed
        centre, _ = shorth(values)
        assert abs(centre) < 0.1  # inside the honest values, not pulled to the cluster


def test_z_score_estimators_and_degenerate_spreads() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(z_scores(x, "std"), (x - 3.0) / np.std(x))
    np.testing.assert_allclose(z_scores(x, "mad"), 0.6745 * (x - 3.0) / 1.0)
    flat = np.array([2.0, 2.0, 2.0, 2.0, 7.0])
    assert z_scores(flat, "mad")[-1] == pytest.approx(5.0 / (1.2533 * 1.0))
    assert z_scores(np.full(4, 3.0), "shorth").tolist() == [0.0] * 4
    with pytest.raises(ValueError):
        z_scores(x, "nope")


def test_no_screening_when_disabled_or_too_few_updates() -> None:
    updates = honest_updates(20, seed=3)
    updates["hmu-01"] = -10.0 * updates["hmu-01"]
    assert screen(updates, ScreeningConfig()).flagged == frozenset()
    few = dict(list(updates.items())[:3])
    assert screen(few, ON).flagged == frozenset()


def test_a_zero_update_is_flagged() -> None:
    updates = honest_updates(10, seed=5)
    updates["hmu-02"] = np.zeros(500)
    assert "hmu-02" in screen(updates, ON).flagged


def test_a_small_round_is_screened_against_the_norms_of_recent_rounds():
    from iomt.fedlearn.defence_config import ScreeningConfig
    from iomt.fedlearn.screening import screen

    rng = np.random.default_rng(7)
    honest = rng.normal(size=(2, 50))
    boosted = {"a": honest[0], "b": -10 * honest[1]}
    cfg = ScreeningConfig(enabled=True, history=20)
    assert screen(boosted, cfg).flagged == frozenset()  # two values: no z-score at all
    past = np.log(np.linalg.norm(rng.normal(size=(20, 50)), axis=1))
    result = screen(boosted, cfg, past)
    assert result.flagged == frozenset({"b"})
    assert "cosine" not in result.scores["a"]  # no reference direction in a round of two
    assert screen({"a": honest[0], "b": honest[1]}, cfg, past).flagged == frozenset()


def test_the_screened_aggregator_keeps_the_norms_that_passed():
    from iomt.fedlearn.defence_config import DefenceConfig, ScreeningConfig
    from iomt.fedlearn.strategy import build_aggregator

    defence = DefenceConfig(screening=ScreeningConfig(enabled=True, history=5))
    aggregator = build_aggregator(defence)
    zero = {"w": np.zeros(50, np.float32)}
    rng = np.random.default_rng(3)
    for round_no in range(1, 5):  # rounds of two honest updates build the history
        updates = {h: ({"w": rng.normal(size=50).astype(np.float32)}, 10) for h in "ab"}
        assert aggregator.aggregate(zero, updates, round_no).flagged == frozenset()
    assert len(aggregator.norms) == 5  # capped at history
    attack = {"a": ({"w": rng.normal(size=50).astype(np.float32)}, 10),
              "b": ({"w": 10 * rng.normal(size=50).astype(np.float32)}, 10)}  # fmt: skip
    assert aggregator.aggregate(zero, attack, 5).flagged == frozenset({"b"})
    assert len(aggregator.norms) == 5 and max(aggregator.norms) < np.log(30)
