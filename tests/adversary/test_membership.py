"""Membership inference: well above chance on an overfitted model, near 0.5 on a model
that never saw the records.  Seeded; synthetic records with noisy labels, so only
memorisation fits them; tolerances cover 200 members against 200 non-members."""

import numpy as np
import pytest

from iomt.adversary import membership as mia
from iomt.fedlearn.config import TrainingConfig
from iomt.fedlearn.model import init_weights
from iomt.fedlearn.train import train_local

CFG = TrainingConfig(epochs=300, batch_size=32, class_weight="none", learning_rate=1e-2)


def train(x, y, seed):
    return train_local(init_weights(20, CFG.hidden, seed), x, y, CFG, seed).weights


@pytest.fixture(scope="module")
def sets():
    rng = np.random.default_rng(0)

    def draw(n):
        x = rng.normal(size=(n, 20)).astype(np.float32)
        return x, (x[:, 0] + rng.normal(scale=1.5, size=n) > 0).astype(np.int64)

    members, outside, shadow, other = draw(200), draw(200), draw(400), draw(200)
    x, y, is_member = mia.balanced(members, outside, rng)
    return members, other, shadow, (x, y, is_member)


def attacks(weights, trained_on, shadow, probe):
    x, y, is_member = probe
    train_loss = float(mia.record_losses(weights, *trained_on).mean())
    return (
        mia.loss_threshold(weights, x, y, is_member, train_loss),
        mia.shadow_attack(weights, x, y, is_member, shadow, train, shadows=3, seed=1),
    )


def test_an_overfitted_model_gives_its_members_away(sets):
    members, _, shadow, probe = sets
    for result in attacks(train(*members, 1), members, shadow, probe):
        assert result.balanced_accuracy > 0.6 and result.auc > 0.7 and result.members == 200


def test_a_model_that_never_saw_them_stays_near_chance(sets):
    _, other, shadow, probe = sets
    for result in attacks(train(*other, 2), other, shadow, probe):
        assert abs(result.balanced_accuracy - 0.5) < 0.08 and abs(result.auc - 0.5) < 0.08


def test_tpr_at_low_fpr_and_balanced_sets():
    scores = np.array([0.9, 0.8, 0.1, 0.2, 0.3, 0.95])
    members = np.array([True, True, False, False, False, True])
    assert mia.tpr_at_fpr(scores, members, 0.01) == 1.0
    x, y, m = mia.balanced((np.zeros((5, 2)), np.zeros(5)), (np.ones((3, 2)), np.ones(3)),
                           np.random.default_rng(0))  # fmt: skip
    assert len(x) == 6 and m.sum() == 3 and set(y[m]) == {0.0}
