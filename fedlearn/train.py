"""Local training of the IDS MLP at one HMU: weights in, weights out (FedAvg client step).

``train_local`` is the ``ClientUpdate`` of McMahan et al. (2017, "Communication-
Efficient Learning of Deep Networks from Decentralized Data", Algorithm 1): start from
the global weights, run ``epochs`` passes of mini-batch optimisation over the local
rows, return the new weights and the number of rows they were trained on.

The step itself (forward, backward, Adam) is numpy's, in ``iomt.fedlearn.backprop``:
at this model's size torch's per-operation overhead was three quarters of a step.

The result depends only on the inputs and ``seed``: the model has no dropout, the
batch order comes from ``numpy.random.default_rng(seed)``, and numpy's BLAS runs with
``cfg.threads`` threads (one by default, which is also the fastest for this MLP).
Plain FedAvg makes a fresh optimiser each round.  With ``keep_optimiser_state`` (the
default) an HMU hands the Adam moments it ended a round with to its next round
(``optimiser_state`` in, ``TrainResult.optimiser_state`` out), as numpy arrays so the
state can cross a process pool.  The state never leaves the HMU: it is not part of
the update.  Measured on K = 20 iid HMUs for 30 rounds (bench/quality.py), keeping
the moments raises macro-F1 by about 0.01: Adam's bias-corrected first steps from
zeroed moments are as large as the learning rate in every coordinate, every round.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass

import numpy as np

from iomt.fedlearn.backprop import Adam, FlatMlp, OptimiserState, Sgd
from iomt.fedlearn.config import TrainingConfig
from iomt.fedlearn.model import Weights, check_weights, init_weights, layer_shapes
from iomt.fedlearn.updates import delta, flatten

log = logging.getLogger(__name__)

__all__ = ["OptimiserState", "TrainResult", "class_weights", "train_local", "warm_up"]


@dataclass(frozen=True)
class TrainResult:
    """What one local training run hands back to the federation."""

    weights: Weights
    num_samples: int
    loss: float
    """Mean (class-weighted) training loss over the last epoch."""
    seconds: float
    optimiser_state: OptimiserState | None = None
    """The optimiser's moments after training, for the next round (``None``: not kept)."""


def class_weights(y: np.ndarray, mode: str) -> np.ndarray:
    """Per-row loss weights: all 1, ``∝ 1 / n_c`` (``"balanced"``) or ``∝ 1 / sqrt(n_c)``.

    Balanced weights (King and Zeng, 2001; sklearn's ``"balanced"``) give both classes
    the same total weight; ``"sqrt"`` goes half way (in log terms) from none to
    balanced.  Either way the mean weight over the rows is 1, and a class absent from
    ``y`` leaves every weight at 1.
    """
    y = np.asarray(y)
    n = len(y)
    if mode == "none":
        return np.ones(n, dtype=np.float32)
    if mode not in ("balanced", "sqrt"):
        raise ValueError(f"unknown class_weight {mode!r}")
    counts = np.array([(y != 1).sum(), (y == 1).sum()], dtype=np.float64)
    if counts.min() == 0:
        return np.ones(n, dtype=np.float32)
    per_class = 1.0 / counts if mode == "balanced" else 1.0 / np.sqrt(counts)
    per_class *= n / (per_class * counts).sum()
    return per_class.astype(np.float32)[(y == 1).astype(np.int64)]


@functools.cache
def _blas():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()  # finding the BLAS libraries takes 0.5 ms; once


def train_local(
    weights: Weights,
    X: np.ndarray,
    y: np.ndarray,
    cfg: TrainingConfig,
    seed: int,
    optimiser_state: OptimiserState | None = None,
) -> TrainResult:
    """Train from ``weights`` on rows ``X`` (n, d) with labels ``y`` (0/1); see module doc.

    ``optimiser_state`` is the previous round's ``TrainResult.optimiser_state``; it is
    used only when ``cfg.keep_optimiser_state``.
    """
    started = time.perf_counter()
    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.asarray(y)
    if X.ndim != 2 or len(X) == 0 or y.shape != (len(X),):
        raise ValueError(f"need non-empty X (n, d) and y (n,), got {X.shape} and {y.shape}")
    check_weights(weights, layer_shapes(X.shape[1], tuple(cfg.hidden)))
    model = FlatMlp(weights)
    kind = Adam if cfg.optimizer == "adam" else Sgd
    optimiser = kind(model, cfg.learning_rate)
    if cfg.keep_optimiser_state and optimiser_state:
        optimiser.load(optimiser_state)

    targets = (y == 1).astype(np.float32)
    row_weights = class_weights(y, cfg.class_weight)
    rng = np.random.default_rng(seed)
    n = len(X)
    epoch_loss = 0.0
    with _blas().limit(limits=cfg.threads, user_api="blas"):
        for _ in range(cfg.epochs):
            order = rng.permutation(n)
            xs, ts, ws = X[order], targets[order], row_weights[order]
            total = 0.0
            for start in range(0, n, cfg.batch_size):
                stop = start + cfg.batch_size
                loss = model.loss_and_grad(xs[start:stop], ts[start:stop], ws[start:stop])
                optimiser.step()
                total += loss * (min(stop, n) - start)
            epoch_loss = total / n
    kept = optimiser.state() if cfg.keep_optimiser_state else None
    return TrainResult(model.weights(), n, epoch_loss, time.perf_counter() - started, kept)


def warm_up(threads: int = 1) -> float:
    """Pay the first-call costs (imports, BLAS set-up) once; returns the seconds it took."""
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    cfg = TrainingConfig(hidden=(8,), epochs=1, threads=threads)
    train_local(init_weights(4, (8,), 0), X, y, cfg, 0)
    took = time.perf_counter() - started
    log.debug("warm-up took %.2f s", took)
    return took


def real_updates(
    global_w: Weights, parts: list[tuple[np.ndarray, np.ndarray]], training: TrainingConfig,
    seed: int,
) -> list[np.ndarray]:  # fmt: skip
    """One local update per share of real data, from ``global_w`` (the accounting side's
    ground truth: the launcher holds every share)."""
    return [
        flatten(delta(global_w, train_local(global_w, x, y, training, seed + i).weights))
        for i, (x, y) in enumerate(parts)
    ]
