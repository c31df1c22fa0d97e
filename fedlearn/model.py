"""The IDS multilayer perceptron of FedQ, as a torch module and as plain numpy weights.

FedQ (Ihekoronye et al.) detects intrusions with an MLP of two hidden layers of 64
ReLU units.  Here the network ends in **one logit** ``z``: ``sigmoid(z)`` is the
probability that a flow is an attack, trained with binary cross-entropy.  One logit
instead of two softmax outputs halves the last layer, gives the attack score that
ROC AUC needs directly, and lets class weighting act on one term.

Weights travel as ``Weights``: an ordered ``dict`` from the torch ``state_dict`` key
(``"0.weight"``, ``"0.bias"``, ``"2.weight"``, ...) to a float32 array of the same
shape.  Everything except ``build_mlp``/``get_weights``/``set_weights`` is pure numpy,
so the server can initialise and evaluate the model without importing torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

Weights = dict[str, np.ndarray]
"""Parameters by ``state_dict`` key, float32, in layer order."""

DEFAULT_HIDDEN: tuple[int, ...] = (64, 64)


def layer_shapes(n_features: int, hidden: Sequence[int] = DEFAULT_HIDDEN) -> Weights:
    """Zero arrays of the shapes ``build_mlp(n_features, hidden)`` has, by key."""
    if n_features < 1 or any(h < 1 for h in hidden):
        raise ValueError(f"layer sizes must be positive: {n_features}, {tuple(hidden)}")
    sizes = [n_features, *hidden, 1]
    shapes: Weights = {}
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        # Linear layers sit at even positions of the Sequential, ReLUs in between.
        shapes[f"{2 * layer}.weight"] = np.zeros((fan_out, fan_in), np.float32)
        shapes[f"{2 * layer}.bias"] = np.zeros(fan_out, np.float32)
    return shapes


def build_mlp(n_features: int, hidden: Sequence[int] = DEFAULT_HIDDEN) -> torch.nn.Module:
    """``Linear -> ReLU -> ... -> Linear(., 1)``: one attack logit per flow."""
    from torch import nn

    layer_shapes(n_features, hidden)  # validates the sizes
    sizes = [n_features, *hidden]
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    layers.append(nn.Linear(sizes[-1], 1))
    return nn.Sequential(*layers)


def init_weights(n_features: int, hidden: Sequence[int] = DEFAULT_HIDDEN, seed: int = 0) -> Weights:
    """Fresh weights drawn as torch's ``nn.Linear`` default does, from a numpy seed.

    torch initialises weights with Kaiming-uniform (a = sqrt(5)) and biases uniformly,
    which both come to ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.
    """
    rng = np.random.default_rng(seed)
    weights: Weights = {}
    for key, zeros in layer_shapes(n_features, hidden).items():
        fan_in = zeros.shape[1] if key.endswith("weight") else _fan_in(weights, key)
        bound = 1.0 / np.sqrt(fan_in)
        weights[key] = rng.uniform(-bound, bound, size=zeros.shape).astype(np.float32)
    return weights


def _fan_in(weights: Weights, bias_key: str) -> int:
    return int(weights[bias_key.replace("bias", "weight")].shape[1])


def check_weights(weights: Weights, reference: Weights) -> None:
    """Raise ``ValueError`` unless ``weights`` has exactly ``reference``'s keys and shapes."""
    if list(weights) != list(reference):
        raise ValueError(f"weight keys {list(weights)} differ from {list(reference)}")
    for key, ref in reference.items():
        if np.shape(weights[key]) != ref.shape:
            raise ValueError(f"weight {key!r} has shape {np.shape(weights[key])}, want {ref.shape}")


def get_weights(model: torch.nn.Module) -> Weights:
    """Copy a module's parameters out as float32 numpy arrays, in ``state_dict`` order."""
    return {
        key: value.detach().cpu().numpy().astype(np.float32, copy=True)
        for key, value in model.state_dict().items()
    }


def set_weights(model: torch.nn.Module, weights: Weights) -> None:
    """Load ``weights`` into ``model`` in place; ``ValueError`` on a key or shape mismatch."""
    import torch

    state = model.state_dict()
    check_weights(weights, {k: v.numpy() for k, v in state.items()})
    with torch.no_grad():
        for key, value in state.items():
            value.copy_(torch.from_numpy(np.asarray(weights[key], dtype=np.float32)))


def logits(weights: Weights, X: np.ndarray) -> np.ndarray:
    """The MLP's attack logit for each row of ``X`` (n, d), in numpy (float32)."""
    keys = list(weights)
    h = np.asarray(X, dtype=np.float32)
    for i in range(0, len(keys), 2):
        h = h @ weights[keys[i]].T + weights[keys[i + 1]]
        if i + 2 < len(keys):
            np.maximum(h, 0.0, out=h)
    return h[:, 0]
