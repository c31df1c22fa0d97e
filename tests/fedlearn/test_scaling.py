"""Tests of the standardiser: training statistics only, zero-std safety, exact pooling."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from iomt.fedlearn.scaling import Standardiser, signed_log


def test_uses_training_statistics_only() -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(5.0, 2.0, size=(400, 3))
    test = rng.normal(50.0, 9.0, size=(100, 3))  # a very different distribution
    scaler = Standardiser.fit(train, log=False)
    np.testing.assert_allclose(scaler.mean, train.mean(axis=0))
    np.testing.assert_allclose(scaler.std, train.std(axis=0))
    scaled_train = scaler.transform(train)
    np.testing.assert_allclose(scaled_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(scaled_train.std(axis=0), 1.0, atol=1e-5)
    # test rows are scaled with the training statistics, so they are far from 0
    expected = (test - train.mean(axis=0)) / train.std(axis=0)
    np.testing.assert_allclose(scaler.transform(test), expected, rtol=1e-5)
    assert scaler.transform(test).mean() > 10


def test_constant_column_maps_to_zero() -> None:
    X = np.column_stack([np.full(50, 7.0), np.arange(50.0)])
    scaler = Standardiser.fit(X, log=False)
    out = scaler.transform(X)
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out[:, 0], 0.0, atol=1e-6)
    # an unseen value in a constant column is shifted, not blown up
    assert scaler.transform(np.array([[9.0, 0.0]]))[0, 0] == pytest.approx(2.0)


def test_signed_log_is_applied_before_standardising() -> None:
    X = np.array([[0.0], [9.0], [99.0], [-9.0]])
    np.testing.assert_allclose(signed_log(X)[:, 0], [0.0, np.log(10), np.log(100), -np.log(10)])
    scaler = Standardiser.fit(X, log=True)
    np.testing.assert_allclose(scaler.mean, signed_log(X).mean(axis=0))
    np.testing.assert_allclose(scaler.transform(X).mean(), 0.0, atol=1e-6)


def test_pooled_equals_fit_on_union() -> None:
    rng = np.random.default_rng(1)
    X = rng.lognormal(size=(300, 4)) * np.array([1, 10, 1000, 1])
    X[:, 3] = 2.0  # constant everywhere
    cuts = [0, 40, 41, 190, 300]
    for log in (False, True):
        parts = [Standardiser.fit(X[a:b], log=log) for a, b in itertools.pairwise(cuts)]
        pooled = Standardiser.pooled(parts)
        whole = Standardiser.fit(X, log=log)
        assert pooled.count == 300
        np.testing.assert_allclose(pooled.mean, whole.mean, rtol=1e-10)
        np.testing.assert_allclose(pooled.std, whole.std, rtol=1e-8, atol=1e-12)


def test_rejects_bad_shapes() -> None:
    scaler = Standardiser.fit(np.ones((5, 2)))
    with pytest.raises(ValueError, match=r"expected \(n, 2\)"):
        scaler.transform(np.ones((5, 3)))
    with pytest.raises(ValueError, match="non-empty"):
        Standardiser.fit(np.ones((0, 2)))
    with pytest.raises(ValueError, match="signed log"):
        Standardiser.pooled([Standardiser.fit(np.ones((2, 1)), log=a) for a in (True, False)])
