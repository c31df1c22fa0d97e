"""Tests of local training: seeded determinism, learning, class weights."""

from __future__ import annotations

import numpy as np
import pytest

from iomt.fedlearn.config import TrainingConfig
from iomt.fedlearn.evaluate import evaluate
from iomt.fedlearn.model import init_weights
from iomt.fedlearn.train import class_weights, train_local, warm_up

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
    # sqrt: per-class weight proportional to 1 / sqrt(n_c), mean 1 over the rows
    y = np.array([0] * 9 + [1])
    s = class_weights(y, "sqrt")
    assert s.mean() == pytest.approx(1.0)
    assert s[-1] / s[0] == pytest.approx(3.0)


def test_optimiser_state_carries_over_between_rounds() -> None:
    X, y = _data()
    cfg = TrainingConfig(hidden=HIDDEN, epochs=1, batch_size=32)
    start = init_weights(6, HIDDEN, 0)
    first = train_local(start, X, y, cfg, seed=3)
    state = first.optimiser_state
    assert state is not None
    # Adam: step count and both moments for each of the 6 parameter tensors
    assert len(state) == 3 * 6 and float(state["0.step"]) == 13  # ceil(400 / 32) steps
    assert state["0.exp_avg"].shape == start["0.weight"].shape
    fresh = train_local(first.weights, X, y, cfg, seed=4)
    carried = train_local(first.weights, X, y, cfg, seed=4, optimiser_state=state)
    assert float(carried.optimiser_state["0.step"]) == 26
    assert not np.array_equal(fresh.weights["0.weight"], carried.weights["0.weight"])
    again = train_local(first.weights, X, y, cfg, seed=4, optimiser_state=state)
    assert np.array_equal(again.weights["0.weight"], carried.weights["0.weight"])
    # the caller's state is not modified in place
    assert float(state["0.step"]) == 13


def test_reset_optimiser_ignores_and_returns_no_state() -> None:
    X, y = _data()
    cfg = TrainingConfig(hidden=HIDDEN, epochs=1, keep_optimiser_state=False)
    start = init_weights(6, HIDDEN, 0)
    state = train_local(start, X, y, cfg.model_copy(update={"keep_optimiser_state": True}), 1)
    plain = train_local(start, X, y, cfg, seed=2)
    given = train_local(start, X, y, cfg, seed=2, optimiser_state=state.optimiser_state)
    assert plain.optimiser_state is None
    assert np.array_equal(plain.weights["0.weight"], given.weights["0.weight"])


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        train_local(init_weights(6, HIDDEN, 0), np.zeros((0, 6)), np.zeros(0), TrainingConfig(), 0)
