"""Gradient inversion: the feature rows of an HMU's batch, rebuilt from its update as the
aggregator (or a fog node) observes it.

Threat model: an honest-but-curious server holds the global weights it sent and the
update it reads back (the plaintext update under FedAvg, the noised one under DP, the
decoder's or a fresh attacker's reconstruction under the neural cipher; under CKKS it
reads only the aggregate).  It knows the model and the loss (binary cross-entropy on
one logit, the IDS's) and rebuilds the batch:

* **DLG / iDLG** (Zhu et al. 2019; Zhao et al. 2020): dummy rows whose gradient is
  brought to the observed one in squared Euclidean distance, with L-BFGS;
* **Inverting Gradients** (Geiping et al. 2020): the same in cosine distance over all
  parameters, with Adam and no total-variation prior (rows are tabular, not images).

Labels: for a batch of one, iDLG's rule, exact here: the output bias's gradient is
``sigmoid(z) - y``, negative exactly when ``y = 1``.  For larger batches the attacker
is given the labels, as in Geiping et al.: an upper bound on the attacker.

An update after E local epochs is not one gradient: the attack matches its direction
(``global - local``, the way training moved) with the cosine loss, which ignores scale,
and rebuilds as many rows as it is asked for.

Scores (``score``): rows are paired with true rows by the assignment that minimises
their squared distance; SSIM (scikit-image, along the feature axis of each record,
window 7) and PSNR of the records-by-features matrix, both with the data range of the
true rows on the model's input scale (standardised features); and R^2 per feature over
the batch's records (its median summarises it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from iomt.fedlearn.model import Weights, build_mlp, set_weights


def _model(weights: Weights) -> nn.Module:
    n_features = next(iter(weights.values())).shape[1]
    hidden = [w.shape[0] for k, w in list(weights.items())[:-2] if k.endswith("weight")]
    model = build_mlp(n_features, hidden)
    set_weights(model, weights)
    return model


def _grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, graph: bool) -> list:
    loss = nn.functional.binary_cross_entropy_with_logits(model(x).squeeze(1), y)
    return list(torch.autograd.grad(loss, list(model.parameters()), create_graph=graph))


def batch_gradient(weights: Weights, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The flattened gradient of the mean loss of rows ``x`` with labels ``y`` (one step of
    batch ``len(x)``: what a single-step update reveals)."""
    model = _model(weights)
    grads = _grads(model, torch.as_tensor(x, dtype=torch.float32),
                   torch.as_tensor(y, dtype=torch.float32), graph=False)  # fmt: skip
    return torch.cat([g.reshape(-1) for g in grads]).numpy()


def idlg_label(weights: Weights, gradient: np.ndarray) -> int:
    """The label of a batch of one, read from the output bias's gradient (its last value)."""
    del weights  # the output bias is the last parameter whatever the hidden sizes
    return int(gradient[-1] < 0)


@dataclass(frozen=True)
class Inversion:
    """Rebuilt rows and how the optimisation ended."""

    rows: np.ndarray
    labels: np.ndarray
    distance: float
    steps: int


def invert(
    weights: Weights,
    gradient: np.ndarray,
    batch: int,
    *,
    labels: np.ndarray | None = None,
    method: str = "cosine",
    steps: int = 2000,
    lr: float = 0.1,
    box: tuple[float, float] = (-10.0, 10.0),
    seed: int = 0,
    restarts: int = 1,
    progress=None,
) -> Inversion:
    """Rebuild ``batch`` rows whose gradient matches ``gradient``.

    ``method``: ``cosine`` (Inverting Gradients, Adam) or ``l2`` (DLG, L-BFGS).  Without
    ``labels`` a batch of one takes iDLG's label; larger batches need them.  ``box``
    bounds every feature (the attacker knows the input scale).  ``restarts``: random
    starts (seeds ``seed``, ``seed + 1``, ...), the one left nearest the gradient kept,
    as Geiping et al. do; DLG's L-BFGS from a bad start can settle far from any record.
    ``progress(step, distance)`` is called every 100 steps.
    """
    if restarts < 1:
        raise ValueError(f"restarts {restarts}: at least 1")
    tries = (
        _invert_once(weights, gradient, batch, labels, method, steps, lr, box, seed + i, progress)
        for i in range(restarts)
    )
    return min(tries, key=lambda t: t.distance if np.isfinite(t.distance) else np.inf)


def _invert_once(
    weights: Weights,
    gradient: np.ndarray,
    batch: int,
    labels: np.ndarray | None,
    method: str,
    steps: int,
    lr: float,
    box: tuple[float, float],
    seed: int,
    progress,
) -> Inversion:
    if method not in ("cosine", "l2"):
        raise ValueError(f"method {method!r}: cosine or l2")
    if labels is None:
        if batch != 1:
            raise ValueError("labels are recovered for a batch of one only; give them")
        labels = np.array([idlg_label(weights, gradient)])
    labels = np.asarray(labels, dtype=np.float32).reshape(-1)
    if len(labels) != batch:
        raise ValueError(f"{len(labels)} labels for a batch of {batch}")
    torch.manual_seed(seed)
    model = _model(weights)
    for p in model.parameters():
        p.requires_grad_(False)
    target = torch.as_tensor(np.asarray(gradient, dtype=np.float32))
    y = torch.as_tensor(labels)
    n_features = next(iter(weights.values())).shape[1]
    x = torch.randn(batch, n_features, requires_grad=True)

    def distance() -> torch.Tensor:
        for p in model.parameters():
            p.requires_grad_(True)
        g = torch.cat([t.reshape(-1) for t in _grads(model, x, y, graph=True)])
        if method == "cosine":
            return 1 - nn.functional.cosine_similarity(g, target, dim=0)
        return ((g - target) ** 2).sum()

    if method == "cosine":
        opt: torch.optim.Optimizer = torch.optim.Adam([x], lr=lr)
    else:
        opt = torch.optim.LBFGS([x], lr=1.0, max_iter=1, history_size=100)
    last = float("nan")
    for step in range(1, steps + 1):

        def closure() -> torch.Tensor:
            opt.zero_grad()
            d = distance()
            d.backward()
            return d

        last = float(opt.step(closure).detach())
        with torch.no_grad():
            x.clamp_(*box)
        if not np.isfinite(last):
            break
        if progress is not None and step % 100 == 0:
            progress(step, last)
    return Inversion(x.detach().numpy().copy(), labels, last, step)


def update_direction(global_w: Weights, local_w: Weights) -> np.ndarray:
    """What a multi-step update reveals of the gradient: ``global - local``, flattened in
    the model's parameter order (its direction is what the cosine attack matches)."""
    return np.concatenate([(global_w[k] - local_w[k]).reshape(-1) for k in global_w])


def score(rows: np.ndarray, truth: np.ndarray) -> dict[str, object]:
    """SSIM, PSNR and per-feature R^2 of ``rows`` against ``truth`` (records x
    features), rows paired by least squared distance; the data range is the truth's."""
    from scipy.optimize import linear_sum_assignment
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    rows, truth = np.asarray(rows, np.float64), np.asarray(truth, np.float64)
    cost = ((rows[:, None, :] - truth[None, :, :]) ** 2).sum(axis=2)
    r, t = linear_sum_assignment(cost)
    rows, truth = rows[r], truth[t]
    data_range = float(truth.max() - truth.min()) or 1.0
    win = min(7, truth.shape[1] - (1 - truth.shape[1] % 2))
    ssim = structural_similarity(truth, rows, data_range=data_range, channel_axis=0, win_size=win)
    psnr = peak_signal_noise_ratio(truth, rows, data_range=data_range)
    r2: list[float] = []
    if len(truth) > 1:  # features that vary within the batch
        var = truth.var(axis=0)
        res = ((rows - truth) ** 2).mean(axis=0)
        r2 = [float(1 - e / v) for e, v in zip(res, var, strict=True) if v > 0]
    return {
        "ssim": float(ssim),
        "psnr": float(psnr),
        "r2_median": float(np.median(r2)) if r2 else None,
        "r2_per_feature": r2,
        "data_range": data_range,
    }
