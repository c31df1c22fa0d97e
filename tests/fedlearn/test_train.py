"""Tests of local training: seeded determinism, learning, class weights."""

from __future__ import annotations

import numpy as np
import pytest

from fedlearn.config import TrainingConfig
from fedlearn.evaluate import evaluate
from fedlearn.model import init_weights
from fedlearn.train import class_weights, train_local, warm_up

HIDDEN = (16, 16)


def _data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6)).astype(np.float32)
    y = ((X[:, 0] + 0.5 * X[:, 1] ** 2) > 1.0).astype(np.int64)  # nonlinear boundary
    return X, y


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    warm_up()


def test_same_seed_same_weights_other_seed_differs() -> None:
    X, y = _data()
    cfg = TrainingConfig(hidden=HIDDEN, epochs=2, batch_size=32)
    start = init_weights(6, HIDDEN, 0)
    a = train_local(start, X, y, cfg, seed=11)
    b = train_local(start, X, y, cfg, seed=11)
    c = train_local(start, X, y, cfg, seed=12)
    assert all(np.array_equal(a.weights[k], b.weights[k]) for k in start)
    assert a.loss == b.loss
    assert not np.array_equal(a.weights["0.weight"], c.weights["0.weight"])
    assert a.num_samples == 400 and a.seconds > 0
    # the input weights are not modified in place
    assert all(np.array_equal(start[k], init_weights(6, HIDDEN, 0)[k]) for k in start)


def test_training_reduces_loss_and_learns() -> None:
    X, y = _data()
    X_test, y_test = _data(400, seed=1)
    start = init_weights(6, HIDDEN, 0)
    before = evaluate(start, X_test, y_test, HIDDEN)
    cfg = TrainingConfig(hidden=HIDDEN, epochs=10, batch_size=32, learning_rate=1e-2)
    result = train_local(start, X, y, cfg, seed=0)
    after = evaluate(result.weights, X_test, y_test, HIDDEN)
    assert after.loss < 0.5 * before.loss
    assert after.accuracy > 0.9  # the boundary is smooth; 400 rows are plenty


def test_sgd_and_balanced_weighting_run() -> None:
    X, y = _data()
    for cfg in (
        TrainingConfig(hidden=HIDDEN, optimizer="sgd", learning_rate=0.05),
        TrainingConfig(hidden=HIDDEN, class_weight="balanced"),
    ):
        result = train_local(init_weights(6, HIDDEN, 0), X, y, cfg, seed=0)
        assert np.isfinite(result.loss)


def test_class_weights() -> None:
    y = np.array([0, 0, 0, 1])
    np.testing.assert_allclose(class_weights(y, "none"), 1.0)
    w = class_weights(y, "balanced")
    np.testing.assert_allclose(w, [4 / 6, 4 / 6, 4 / 6, 2.0])
    assert w[y == 0].sum() == pytest.approx(w[y == 1].sum())
    np.testing.assert_allclose(class_weights(np.zeros(3), "balanced"), 1.0)


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        train_local(init_weights(6, HIDDEN, 0), np.zeros((0, 6)), np.zeros(0), TrainingConfig(), 0)
