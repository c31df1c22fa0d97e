"""Tests of the IDS metrics against hand-computed values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from iomt.fedlearn.evaluate import binary_metrics, evaluate, log_loss, rank_average, roc_auc

Y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 1, 0])
P = np.array([1, 1, 0, 0, 0, 1, 0, 0, 0, 0])
# tp = 2 (rows 0, 1), fn = 2 (rows 2, 8), fp = 1 (row 5), tn = 5


def test_binary_metrics_by_hand() -> None:
    m, confusion = binary_metrics(Y, P)
    assert confusion == ((5, 1), (2, 2))
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(4 / 7)
    # normal class: precision 5/7, recall 5/6, F1 10/13; macro = (4/7 + 10/13) / 2
    assert m["macro_f1"] == pytest.approx(61 / 91)
    assert m["fpr"] == pytest.approx(1 / 6)


def test_binary_metrics_degenerate() -> None:
    m, confusion = binary_metrics(np.zeros(4), np.zeros(4))
    assert confusion == ((4, 0), (0, 0))
    assert m["accuracy"] == 1.0 and m["precision"] == 0.0 and m["f1"] == 0.0
    assert m["macro_f1"] == pytest.approx(0.5)


def test_roc_auc_known_values() -> None:
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    # with a tie between a positive and a negative: (0.5 + 1 + 1 + 1) / 4
    assert roc_auc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.2, 0.9])) == pytest.approx(0.875)
    assert roc_auc(np.array([0, 1]), np.array([2.0, 1.0])) == 0.0
    assert np.isnan(roc_auc(np.array([1, 1]), np.array([0.1, 0.2])))


def test_roc_auc_matches_pair_counting() -> None:
    rng = np.random.default_rng(4)
    y = (rng.random(300) < 0.3).astype(int)
    scores = np.round(rng.normal(size=300) + y, 1)  # rounding makes many ties
    pos, neg = scores[y == 1], scores[y == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg))
    assert roc_auc(y, scores) == pytest.approx(wins / (len(pos) * len(neg)))


def test_rank_average() -> None:
    np.testing.assert_array_equal(rank_average(np.array([3.0, 1.0, 3.0, 2.0])), [3.5, 1, 3.5, 2])


def _one_unit_model() -> dict[str, np.ndarray]:
    """hidden = (1,): logit = relu(x) - 1, so x > 1 means attack at threshold 0.5."""
    return {
        "0.weight": np.ones((1, 1), np.float32),
        "0.bias": np.zeros(1, np.float32),
        "2.weight": np.ones((1, 1), np.float32),
        "2.bias": np.full(1, -1.0, np.float32),
    }


def test_evaluate_on_crafted_model() -> None:
    X = np.where(P == 1, 3.0, 0.0).astype(np.float32)[:, None]
    result = evaluate(_one_unit_model(), X, Y, hidden=(1,))
    assert result.confusion == ((5, 1), (2, 2))
    assert result.accuracy == pytest.approx(0.7) and result.macro_f1 == pytest.approx(61 / 91)
    z = np.where(P == 1, 2.0, -1.0)
    prob = 1 / (1 + np.exp(-z))
    expected_loss = -np.mean(Y * np.log(prob) + (1 - Y) * np.log(1 - prob))
    assert result.loss == pytest.approx(expected_loss)
    assert result.n == 10 and result.detection_time_ms > 0
    assert result.as_dict()["confusion"] == [[5, 1], [2, 2]]
    # a stricter threshold (sigmoid(2) = 0.88 < 0.9) calls nothing an attack
    assert evaluate(_one_unit_model(), X, Y, (1,), threshold=0.9).confusion == ((6, 0), (4, 0))


def test_evaluate_rejects_wrong_architecture() -> None:
    with pytest.raises(ValueError, match="weight keys"):
        evaluate(_one_unit_model(), np.zeros((3, 1), np.float32), np.zeros(3), hidden=(4, 4))


def test_log_loss_is_stable_for_large_logits() -> None:
    assert log_loss(np.array([1, 0]), np.array([800.0, -800.0])) == pytest.approx(0.0)
    assert log_loss(np.array([1]), np.array([-800.0])) == pytest.approx(800.0)


def test_the_chosen_threshold_beats_every_other_on_its_validation_rows() -> None:
    from iomt.fedlearn.evaluate import best_threshold
    from iomt.fedlearn.model import init_weights, logits

    rng = np.random.default_rng(5)
    weights = init_weights(6, (8,), seed=3)
    X = rng.normal(size=(400, 6)).astype(np.float32)
    score = logits(weights, X)
    y = (score + rng.normal(0, 0.3, size=len(score)) > np.quantile(score, 0.85)).astype(int)
    cut = best_threshold(weights, X, y, (8,))
    best = evaluate(weights, X, y, (8,), threshold=cut)
    assert best.threshold == cut and best.macro_f1 > evaluate(weights, X, y, (8,)).macro_f1
    for other in np.linspace(0.001, 0.999, 400):  # brute force: nothing does better
        assert evaluate(weights, X, y, (8,), threshold=float(other)).macro_f1 <= best.macro_f1
