"""Tests of update arithmetic on weight dictionaries."""

from __future__ import annotations

import numpy as np
import pytest

from iomt.fedlearn.model import init_weights
from iomt.fedlearn.updates import (
    apply_delta,
    delta,
    flatten,
    leakage,
    parameter_count,
    unflatten,
)


def test_delta_flatten_unflatten_apply_round_trip() -> None:
    g = init_weights(5, (4, 3), seed=0)
    local = init_weights(5, (4, 3), seed=1)
    u = delta(g, local)
    vector = flatten(u)
    assert vector.shape == (parameter_count(g),) == (5 * 4 + 4 + 4 * 3 + 3 + 3 + 1,)
    back = apply_delta(g, unflatten(vector, g))
    assert list(back) == list(g)
    for key in g:
        np.testing.assert_allclose(back[key], local[key], atol=1e-7)
        assert back[key].dtype == np.float32


def test_mismatches_are_refused() -> None:
    g = init_weights(5, (4,), seed=0)
    with pytest.raises(ValueError):
        delta(g, init_weights(6, (4,), seed=0))
    with pytest.raises(ValueError, match="vector has shape"):
        unflatten(np.zeros(3), g)


def test_leakage_is_the_share_of_variance_recovered() -> None:
    truth = np.random.default_rng(0).normal(size=(50, 128))
    assert leakage(truth, truth) == 100.0
    assert leakage(np.full_like(truth, truth.mean()), truth) == pytest.approx(0.0, abs=1e-9)
    assert leakage(-truth, truth) == 0.0
    assert 70 < leakage(truth * 0.5, truth) < 80  # MSE = Var / 4
