"""Tests of sample-weighted federated averaging."""

from __future__ import annotations

import numpy as np
import pytest

from iomt.fedlearn.aggregate import fedavg


def _w(a: float, b: float) -> dict[str, np.ndarray]:
    return {
        "0.weight": np.full((2, 3), a, np.float32),
        "0.bias": np.array([a, b], np.float32),
    }


def test_weighted_by_sample_count() -> None:
    out = fedavg([(_w(1.0, 0.0), 1), (_w(4.0, 10.0), 3)])
    assert list(out) == ["0.weight", "0.bias"]
    # (1 * 1 + 3 * 4) / 4 = 3.25 ; (1 * 0 + 3 * 10) / 4 = 7.5
    np.testing.assert_allclose(out["0.weight"], 3.25)
    np.testing.assert_allclose(out["0.bias"], [3.25, 7.5])
    assert out["0.weight"].dtype == np.float32


def test_single_update_is_returned_and_equal_counts_are_the_mean() -> None:
    np.testing.assert_array_equal(fedavg([(_w(2.0, 3.0), 17)])["0.bias"], [2.0, 3.0])
    out = fedavg([(_w(1.0, 1.0), 5), (_w(2.0, 2.0), 5), (_w(6.0, 6.0), 5)])
    np.testing.assert_allclose(out["0.bias"], [3.0, 3.0])


def test_rejects_mismatched_shapes_and_keys() -> None:
    bad_shape = _w(1.0, 1.0)
    bad_shape["0.weight"] = np.zeros((3, 2), np.float32)
    with pytest.raises(ValueError, match=r"update 1: weight '0.weight' has shape \(3, 2\)"):
        fedavg([(_w(1.0, 1.0), 1), (bad_shape, 1)])
    missing = {"0.weight": np.zeros((2, 3), np.float32)}
    with pytest.raises(ValueError, match="update 1: weight keys"):
        fedavg([(_w(1.0, 1.0), 1), (missing, 1)])


def test_rejects_empty_and_non_positive_counts() -> None:
    with pytest.raises(ValueError, match="at least one"):
        fedavg([])
    with pytest.raises(ValueError, match="sample count 0"):
        fedavg([(_w(1.0, 1.0), 0)])
