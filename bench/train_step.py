"""One HMU's local training, numpy step (what the agents run) against torch's autograd.

Both train the IDS MLP (34 -> 64 -> 64 -> 1) from the same weights on one HMU's share
of WUSTL-EHMS-2020 at K = 20 (653 rows of 34 features), at the default E = 8 and at
FedQ's E = 2, batches of 64, Adam at 5e-3, one thread.  The numpy side is
``iomt.fedlearn.train.train_local``; the torch side is the loop it replaced (autograd
and torch's fused Adam), kept here as the baseline.  Prints the median milliseconds per
local training of each, their ratio, and how far apart the two models end up.

Run: ``.venv/bin/python -m bench.train_step [--repeats 15]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from iomt.fedlearn.config import TrainingConfig
from iomt.fedlearn.model import Weights, build_mlp, get_weights, init_weights, set_weights
from iomt.fedlearn.train import class_weights, train_local

ROWS, FEATURES = 653, 34


def torch_train(weights: Weights, X: np.ndarray, y: np.ndarray, cfg: TrainingConfig) -> Weights:
    import torch
    import torch.nn.functional as F

    model = build_mlp(X.shape[1], cfg.hidden)
    set_weights(model, weights)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, fused=True)
    features, targets = torch.from_numpy(X), torch.from_numpy(y.astype(np.float32))
    row_weights = torch.from_numpy(class_weights(y, cfg.class_weight))
    rng = np.random.default_rng(0)
    for _ in range(cfg.epochs):
        order = torch.from_numpy(rng.permutation(len(X)))
        xs, ts, ws = features[order], targets[order], row_weights[order]
        for start in range(0, len(X), cfg.batch_size):
            stop = start + cfg.batch_size
            logit = model(xs[start:stop]).squeeze(1)
            loss = F.binary_cross_entropy_with_logits(logit, ts[start:stop], weight=ws[start:stop])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            loss.item()
    return get_weights(model)


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(ROWS, FEATURES)).astype(np.float32)
    y = (X[:, 0] + 0.3 * rng.normal(size=ROWS) > 1.1).astype(np.int64)  # about 13 % attacks
    start = init_weights(FEATURES, (64, 64), seed=0)
    print("| E | torch autograd ms | numpy step ms | ratio | max weight difference |")
    print("|---|---|---|---|---|")
    for epochs in (8, 2):
        cfg = TrainingConfig(epochs=epochs, keep_optimiser_state=False)
        ours = median_ms(lambda cfg=cfg: train_local(start, X, y, cfg, seed=0), args.repeats)
        theirs = median_ms(lambda cfg=cfg: torch_train(start, X, y, cfg), args.repeats)
        a = train_local(start, X, y, cfg, seed=0).weights
        b = torch_train(start, X, y, cfg)
        gap = max(float(np.abs(a[k] - b[k]).max()) for k in a)
        print(f"| {epochs} | {theirs:.1f} | {ours:.1f} | {theirs / ours:.2f} | {gap:.1e} |")


if __name__ == "__main__":
    main()
