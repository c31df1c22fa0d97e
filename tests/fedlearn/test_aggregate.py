"""Sample-weighted federated averaging as the server runs it (``FedAvgAggregator``)."""

from __future__ import annotations

import numpy as np
import pytest

from iomt.errors import DecodeError
from iomt.fedlearn.strategy import FedAvgAggregator
from iomt.server_agent.decoding import update_weights
from iomt.wire.messages import ModelUpdate


def _w(a: float, b: float) -> dict[str, np.ndarray]:
    return {
        "0.weight": np.full((2, 3), a, np.float32),
        "0.bias": np.array([a, b], np.float32),
    }


def fedavg(updates, global_w=None):
    """FedAvg of ``[(weights, n), ...]`` through the server's aggregator."""
    global_w = global_w or _w(0.0, 0.0)
    named = {f"hmu-{i:02d}": u for i, u in enumerate(updates)}
    return FedAvgAggregator().aggregate(global_w, named, round_no=1).weights


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


def test_the_average_does_not_depend_on_the_global_weights() -> None:
    updates = [(_w(1.0, 0.0), 1), (_w(4.0, 10.0), 3)]
    out = fedavg(updates, global_w=_w(-7.0, 2.5))
    np.testing.assert_allclose(out["0.bias"], [3.25, 7.5], rtol=1e-6)


def test_rejects_mismatched_shapes_and_keys() -> None:
    """The server refuses an update that does not fit the model before it aggregates."""
    message = ModelUpdate(num_samples=1, loss=0.0, train_seconds=0.0, tensors=[])
    bad_shape = _w(1.0, 1.0)
    bad_shape["0.weight"] = np.zeros((3, 2), np.float32)
    with pytest.raises(DecodeError, match=r"weight '0.weight' has shape \(3, 2\)"):
        update_weights("hmu-01", message, bad_shape, _w(0.0, 0.0))
    missing = {"0.weight": np.zeros((2, 3), np.float32)}
    with pytest.raises(DecodeError, match="weight keys"):
        update_weights("hmu-01", message, missing, _w(0.0, 0.0))


def test_no_update_keeps_the_model_and_non_positive_counts_are_refused() -> None:
    global_w = _w(2.0, 3.0)
    np.testing.assert_array_equal(fedavg([], global_w)["0.bias"], [2.0, 3.0])
    with pytest.raises(ValueError, match="sample counts must be positive"):
        fedavg([(_w(1.0, 1.0), 0)])
