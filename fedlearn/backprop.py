"""The IDS MLP's training step in numpy: forward, backward and the optimiser's update.

The network is ``iomt.fedlearn.model``'s: ``Linear -> ReLU -> ... -> Linear(., 1)``,
trained on binary cross-entropy with per-row weights (torch's
``binary_cross_entropy_with_logits(weight=w)``, mean over the batch).  All parameters
live in one float32 buffer with a view per tensor, the gradient in another, so the
optimiser updates every parameter in a handful of array operations.

Why not torch's autograd: at this size (34 -> 64 -> 64 -> 1, batches of 64) a step is
almost all per-operation overhead.  One step took 0.82 ms with torch (fused Adam, one
thread) and 0.21 ms here (``bench/train_step.py``); the tests check the gradients and
the Adam update against torch's to float32 rounding.

Adam is torch's (Kingma and Ba, 2015; no weight decay, no AMSGrad): ``m = b1 m + (1 -
b1) g``, ``v = b2 v + (1 - b2) g^2``, ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 -
b2^t) + eps)``.  SGD is plain ``p -= lr g``.
"""

from __future__ import annotations

import math

import numpy as np

from iomt.fedlearn.model import Weights

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8

STATE_NAMES = ("step", "exp_avg", "exp_avg_sq")
OptimiserState = dict[str, np.ndarray]
"""Adam's state per parameter tensor as ``{"<index>.step" | "<index>.exp_avg" |
"<index>.exp_avg_sq": array}``, the layout of torch's optimiser ``state_dict``."""


class FlatMlp:
    """The MLP's parameters in one buffer; ``loss_and_grad`` fills the gradient buffer."""

    def __init__(self, weights: Weights) -> None:
        self.keys = list(weights)
        self.shapes = [np.shape(weights[k]) for k in self.keys]
        sizes = [math.prod(s) for s in self.shapes]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.flat = np.concatenate([np.ravel(weights[k]) for k in self.keys]).astype(np.float32)
        self.grad = np.zeros_like(self.flat)
        self.params = self.views(self.flat)
        self.grads = self.views(self.grad)

    def views(self, buffer: np.ndarray) -> list[np.ndarray]:
        """``buffer`` (laid out as ``flat``) cut into one view per parameter tensor."""
        o = self.offsets
        return [buffer[o[i] : o[i + 1]].reshape(s) for i, s in enumerate(self.shapes)]

    def weights(self) -> Weights:
        return {k: p.copy() for k, p in zip(self.keys, self.params, strict=True)}

    def loss_and_grad(self, x: np.ndarray, t: np.ndarray, w: np.ndarray) -> float:
        """Mean weighted BCE of the batch (``x`` rows, 0/1 targets ``t``, row weights ``w``)."""
        layers = len(self.params) // 2
        inputs = [x]
        h = x
        for i in range(layers):  # Linear: h W^T + b, ReLU between layers
            h = h @ self.params[2 * i].T
            h += self.params[2 * i + 1]
            if i + 1 < layers:
                np.maximum(h, 0.0, out=h)
                inputs.append(h)
        z = h[:, 0]
        n = len(z)
        e = np.exp(-np.abs(z))
        loss = float(np.dot(w, np.maximum(z, 0.0) - z * t + np.log1p(e))) / n
        sigmoid = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        d = (w * (sigmoid - t) / np.float32(n)).astype(np.float32, copy=False)[:, None]
        for i in reversed(range(layers)):
            np.matmul(d.T, inputs[i], out=self.grads[2 * i])
            np.sum(d, axis=0, out=self.grads[2 * i + 1])
            if i > 0:
                d = d @ self.params[2 * i]
                d *= inputs[i] > 0  # ReLU's derivative (its output is positive where it passed)
        return loss


class Adam:
    """torch's Adam over a ``FlatMlp``'s buffer."""

    def __init__(self, model: FlatMlp, lr: float) -> None:
        self.model, self.lr = model, lr
        self.step_count = 0
        self.exp_avg = np.zeros_like(model.flat)
        self.exp_avg_sq = np.zeros_like(model.flat)
        self._scratch = np.zeros_like(model.flat)

    def step(self) -> None:
        g, m, v, s = self.model.grad, self.exp_avg, self.exp_avg_sq, self._scratch
        self.step_count += 1
        m *= BETA1
        m += (1 - BETA1) * g
        v *= BETA2
        np.multiply(g, g, out=s)
        s *= 1 - BETA2
        v += s
        np.sqrt(v, out=s)
        s /= math.sqrt(1 - BETA2**self.step_count)
        s += EPS
        np.divide(m, s, out=s)
        s *= self.lr / (1 - BETA1**self.step_count)
        self.model.flat -= s

    def state(self) -> OptimiserState:
        out: OptimiserState = {}
        m, v = self.model.views(self.exp_avg), self.model.views(self.exp_avg_sq)
        for i in range(len(m)):
            out[f"{i}.step"] = np.array(self.step_count, dtype=np.float32)
            out[f"{i}.exp_avg"] = m[i].copy()
            out[f"{i}.exp_avg_sq"] = v[i].copy()
        return out

    def load(self, saved: OptimiserState) -> None:
        """Continue from ``state()``'s output; ``ValueError`` if it is not this model's."""
        shapes = self.model.shapes
        want = {f"{i}.{name}" for i in range(len(shapes)) for name in STATE_NAMES}
        if set(saved) != want:
            raise ValueError(f"optimiser state has keys {sorted(saved)}, want {sorted(want)}")
        for i, shape in enumerate(shapes):
            for name in ("exp_avg", "exp_avg_sq"):
                if np.shape(saved[f"{i}.{name}"]) != shape:
                    raise ValueError(f"optimiser state {i}.{name} is not of shape {shape}")
        self.step_count = int(np.asarray(saved["0.step"]))
        self.exp_avg[:] = np.concatenate(
            [np.ravel(saved[f"{i}.exp_avg"]) for i in range(len(shapes))]
        )
        self.exp_avg_sq[:] = np.concatenate(
            [np.ravel(saved[f"{i}.exp_avg_sq"]) for i in range(len(shapes))]
        )


class Sgd:
    """Plain stochastic gradient descent (torch's SGD without momentum): no state."""

    def __init__(self, model: FlatMlp, lr: float) -> None:
        self.model, self.lr = model, lr

    def step(self) -> None:
        self.model.flat -= np.float32(self.lr) * self.model.grad

    def state(self) -> OptimiserState:
        return {}

    def load(self, saved: OptimiserState) -> None:
        if saved:
            raise ValueError("plain SGD keeps no state, but a state was given")
