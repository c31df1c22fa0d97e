"""Tests of the MLP weights: shapes, seeded init, torch round trip, numpy forward pass."""

from __future__ import annotations

import numpy as np
import pytest

from iomt.fedlearn.model import (
    build_mlp,
    check_weights,
    get_weights,
    init_weights,
    layer_shapes,
    logits,
    set_weights,
)


def test_layer_shapes_follow_hidden_sizes() -> None:
    shapes = {k: v.shape for k, v in layer_shapes(34, (64, 64)).items()}
    assert shapes == {
        "0.weight": (64, 34), "0.bias": (64,),
        "2.weight": (64, 64), "2.bias": (64,),
        "4.weight": (1, 64), "4.bias": (1,),
    }  # fmt: skip
    with pytest.raises(ValueError, match="positive"):
        layer_shapes(0)


def test_init_is_seeded_and_bounded() -> None:
    a, b, c = init_weights(34, (64, 64), 1), init_weights(34, (64, 64), 1), init_weights(34, seed=2)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["0.weight"], c["0.weight"])
    assert all(v.dtype == np.float32 for v in a.values())
    # torch's nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias
    assert np.abs(a["0.weight"]).max() <= 1 / np.sqrt(34)
    assert np.abs(a["2.bias"]).max() <= 1 / np.sqrt(64)
    assert np.abs(a["0.weight"]).max() > 0.9 / np.sqrt(34)


def test_torch_round_trip_and_numpy_forward_agree() -> None:
    import torch

    weights = init_weights(5, (7, 3), seed=4)
    model = build_mlp(5, (7, 3))
    set_weights(model, weights)
    back = get_weights(model)
    assert list(back) == list(weights)
    assert all(np.array_equal(back[k], weights[k]) for k in weights)
    X = np.random.default_rng(0).normal(size=(20, 5)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(X)).numpy()[:, 0]
    np.testing.assert_allclose(logits(weights, X), expected, rtol=1e-5, atol=1e-6)


def test_set_weights_rejects_mismatch() -> None:
    model = build_mlp(5, (7,))
    wrong = init_weights(6, (7,), 0)
    with pytest.raises(ValueError, match=r"'0.weight' has shape \(7, 6\)"):
        set_weights(model, wrong)
    with pytest.raises(ValueError, match="keys"):
        check_weights({"x": np.zeros(1)}, layer_shapes(5, (7,)))
