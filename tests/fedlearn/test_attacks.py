"""Tests of the attacker schedule and of the attacks on data and updates."""

from __future__ import annotations

import numpy as np
import pytest

from iomt.fedlearn.attacks import (
    apply_update_attack,
    assign_attacks,
    attack_share,
    attackers_for_round,
    flip_labels,
)
from iomt.fedlearn.defence_config import AttackConfig, AttackEntry, AttackSchedule
from iomt.fedlearn.model import init_weights
from iomt.fedlearn.updates import delta, flatten

HMUS = [f"hmu-{i:02d}" for i in range(1, 21)]
RAMP = AttackSchedule(start_round=3, share_start=0.1, share_end=0.3, ramp_rounds=4)


def test_share_ramps_linearly_from_the_start_round() -> None:
    shares = [attack_share(RAMP, r) for r in range(1, 10)]
    np.testing.assert_allclose(shares, [0, 0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.3, 0.3])
    assert attack_share(AttackSchedule(share_start=0.4), 1) == 0.4
    assert attack_share(AttackSchedule(share_start=0.1, share_end=0.3), 1) == 0.3


def test_attackers_ramp_up_and_stay_attackers() -> None:
    sets = [attackers_for_round(HMUS, RAMP, r, seed=7) for r in range(1, 10)]
    assert [len(s) for s in sets] == [0, 0, 2, 3, 4, 5, 6, 6, 6]
    for earlier, later in zip(sets, sets[1:], strict=False):
        assert earlier <= later
    assert sets[-1] <= set(HMUS)


def test_attackers_are_reproducible_and_depend_on_the_seed_only() -> None:
    a = attackers_for_round(HMUS, RAMP, 8, seed=7)
    b = attackers_for_round(list(reversed(HMUS)), RAMP, 8, seed=7)
    assert a == b
    others = {frozenset(attackers_for_round(HMUS, RAMP, 8, seed=s)) for s in range(8)}
    assert len(others) > 1


def test_entries_get_disjoint_blocks() -> None:
    cfg = AttackConfig(
        entries=(
            AttackEntry(kind="sign-flip", schedule=AttackSchedule(share_start=0.2)),
            AttackEntry(kind="label-flip", schedule=RAMP),
        )
    )
    by_round = [assign_attacks(cfg, HMUS, r, seed=1) for r in range(1, 10)]
    kinds = [sorted(e.kind for e in a.values()) for a in by_round]
    assert kinds[0] == ["sign-flip"] * 4
    assert kinds[-1] == ["label-flip"] * 6 + ["sign-flip"] * 4
    label_flippers = [{h for h, e in a.items() if e.kind == "label-flip"} for a in by_round]
    for earlier, later in zip(label_flippers, label_flippers[1:], strict=False):
        assert earlier <= later
    crowded = AttackConfig(entries=(cfg.entries[0],) * 6)
    with pytest.raises(ValueError, match="need 24 HMUs"):
        assign_attacks(crowded, HMUS, 1, seed=1)


def test_update_attacks_transform_the_update() -> None:
    g = init_weights(5, (4,), seed=0)
    local = init_weights(5, (4,), seed=1)
    u = flatten(delta(g, local))
    rng = np.random.default_rng(0)
    flipped = flatten(delta(g, apply_update_attack(g, local, "sign-flip", 10.0, rng)))
    np.testing.assert_allclose(flipped, -10.0 * u, rtol=1e-5, atol=1e-6)
    scaled = flatten(delta(g, apply_update_attack(g, local, "scaling", 3.0, rng)))
    np.testing.assert_allclose(scaled, 3.0 * u, rtol=1e-5, atol=1e-6)
    same = flatten(delta(g, apply_update_attack(g, local, "label-flip", 3.0, rng)))
    np.testing.assert_allclose(same, u, atol=1e-6)


def test_gaussian_attack_adds_noise_of_the_given_sd() -> None:
    g = init_weights(30, (64, 64), seed=0)
    noisy = flatten(delta(g, apply_update_attack(g, g, "gaussian", 0.5, np.random.default_rng(1))))
    # 6.2k draws: the sample sd is within 3 % of 0.5 with a margin of > 3 sd
    assert noisy.std() == pytest.approx(0.5, rel=0.03)


def test_flip_labels_flips_exactly_the_fraction() -> None:
    y = np.array([0, 1] * 50)
    out = flip_labels(y, np.random.default_rng(3), 0.3)
    assert int((out != y).sum()) == 30
    assert set(np.unique(out)) <= {0, 1}
    np.testing.assert_array_equal(flip_labels(y, np.random.default_rng(3), 1.0), 1 - y)
    np.testing.assert_array_equal(y, [0, 1] * 50)  # input untouched
