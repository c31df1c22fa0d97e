"""The numpy training step against torch's autograd and Adam on the same model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from iomt.fedlearn.backprop import Adam, FlatMlp, Sgd
from iomt.fedlearn.model import build_mlp, get_weights, init_weights, set_weights

HIDDEN = (16, 8)


def _batch(seed: int = 0, n: int = 24, d: int = 5):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    t = (rng.random(n) < 0.3).astype(np.float32)
    w = rng.uniform(0.5, 2.0, size=n).astype(np.float32)
    return x, t, w


def _torch_model(weights):
    model = build_mlp(5, HIDDEN)
    set_weights(model, weights)
    return model


def _torch_loss(model, x, t, w):
    logit = model(torch.from_numpy(x)).squeeze(1)
    return F.binary_cross_entropy_with_logits(
        logit, torch.from_numpy(t), weight=torch.from_numpy(w)
    )


def test_loss_and_gradients_match_torch_autograd() -> None:
    weights = init_weights(5, HIDDEN, seed=3)
    x, t, w = _batch()
    x[0] *= 40  # a large logit: the stable form of the loss must hold
    flat = FlatMlp(weights)
    loss = flat.loss_and_grad(x, t, w)
    model = _torch_model(weights)
    expected = _torch_loss(model, x, t, w)
    expected.backward()
    assert loss == pytest.approx(expected.item(), rel=1e-5)
    for (key, param), grad in zip(model.named_parameters(), flat.grads, strict=True):
        np.testing.assert_allclose(grad, param.grad.numpy(), rtol=1e-4, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_optimiser_steps_match_torch(kind: str) -> None:
    weights = init_weights(5, HIDDEN, seed=4)
    flat = FlatMlp(weights)
    ours = Adam(flat, 0.01) if kind == "adam" else Sgd(flat, 0.05)
    model = _torch_model(weights)
    theirs = (
        torch.optim.Adam(model.parameters(), lr=0.01)
        if kind == "adam"
        else torch.optim.SGD(model.parameters(), lr=0.05)
    )
    for step in range(25):
        x, t, w = _batch(seed=step)
        flat.loss_and_grad(x, t, w)
        ours.step()
        theirs.zero_grad()
        _torch_loss(model, x, t, w).backward()
        theirs.step()
    for key, value in get_weights(model).items():
        np.testing.assert_allclose(flat.weights()[key], value, rtol=1e-4, atol=1e-5, err_msg=key)


def test_adam_state_round_trips_and_rejects_another_model() -> None:
    flat = FlatMlp(init_weights(5, HIDDEN, seed=0))
    adam = Adam(flat, 0.01)
    for step in range(3):
        flat.loss_and_grad(*_batch(seed=step))
        adam.step()
    saved = adam.state()
    assert float(saved["0.step"]) == 3 and saved["0.exp_avg"].shape == (16, 5)
    again = Adam(FlatMlp(init_weights(5, HIDDEN, seed=0)), 0.01)
    again.load(saved)
    np.testing.assert_array_equal(again.exp_avg_sq, adam.exp_avg_sq)
    assert again.step_count == 3
    with pytest.raises(ValueError, match="optimiser state"):
        Adam(FlatMlp(init_weights(5, (4,), seed=0)), 0.01).load(saved)
