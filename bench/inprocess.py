"""In-process FedAvg baseline: the testbed's local training and averaging without MQTT.

K HMUs get iid shares of the real training split; every round each trains from the
global weights (``iomt.fedlearn.train.train_local``) and the server averages
(``iomt.fedlearn.strategy.FedAvgAggregator``, as the server does).  Training runs on a
pool of ``workers`` threads (torch with one thread each) or processes; this is the floor
that the MQTT testbed's round time is compared against (bench/round_overhead.py
imports ``run_inprocess``).

Run: ``.venv/bin/python -m bench.inprocess [--rounds N] [--quick]``.  The machine is
shared, so figures vary by ~10 %; the lead re-measures at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from iomt.fedlearn.config import PartitionConfig, TrainingConfig
from iomt.fedlearn.evaluate import Evaluation, evaluate
from iomt.fedlearn.model import Weights, init_weights
from iomt.fedlearn.partition import partition, stratified_split
from iomt.fedlearn.scaling import Standardiser
from iomt.fedlearn.strategy import FedAvgAggregator
from iomt.fedlearn.train import OptimiserState, TrainResult, train_local, warm_up
from iomt.traffic.dataset import CsvSource

ROOT = Path(__file__).resolve().parents[1]

MODES = ("thread", "process", "serial")


def default_dataset() -> Path:
    """``IOMT_DATASET`` if set, else the shared copy next to the checkout."""
    named = os.environ.get("IOMT_DATASET")
    if named:
        return Path(named)
    return ROOT / ".." / "shared" / "data" / "wustl-ehms-2020.csv"


@dataclass(frozen=True)
class Split:
    """Scaled training rows dealt to HMUs, and the scaled held-out rows."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    parts: tuple[np.ndarray, ...]
    """Row indices into ``X_train`` per HMU."""


def prepare_split(
    dataset: Path,
    n_hmus: int,
    seed: int = 0,
    test_fraction: float = 0.2,
    partition_cfg: PartitionConfig | None = None,
    log: bool | None = None,
) -> Split:
    """Stratified held-out split, scaling fitted on training rows, shares per HMU.

    ``log=None`` keeps the ``Standardiser`` default.
    """
    table = CsvSource(dataset).load()
    rng = np.random.default_rng(seed)
    train, test = stratified_split(table.y, test_fraction, rng)
    scaler = (
        Standardiser.fit(table.X[train])
        if log is None
        else Standardiser.fit(table.X[train], log=log)
    )
    y_train = table.y[train]
    parts = partition(
        np.arange(len(train)), y_train, partition_cfg or PartitionConfig(), n_hmus, rng
    )
    return Split(
        scaler.transform(table.X[train]),
        y_train,
        scaler.transform(table.X[test]),
        table.y[test],
        tuple(parts),
    )


# -- process-pool plumbing: each worker keeps the HMU shares, tasks carry weights only --
_worker_shares: list[tuple[np.ndarray, np.ndarray]] = []


def _init_worker(shares: list[tuple[np.ndarray, np.ndarray]], threads: int) -> None:
    global _worker_shares
    _worker_shares = shares
    warm_up(threads)


def _train_share(
    hmu: int, weights: Weights, cfg: TrainingConfig, seed: int, state: OptimiserState | None
) -> TrainResult:
    X, y = _worker_shares[hmu]
    return train_local(weights, X, y, cfg, seed, state)


@dataclass(frozen=True)
class InprocessResult:
    """Per-round wall times (training + averaging) and the final held-out scores."""

    mode: str
    k: int
    round_seconds: tuple[float, ...]
    evaluation: Evaluation

    @property
    def median_round_s(self) -> float:
        """Median wall time of one round."""
        return statistics.median(self.round_seconds)


def client_seed(seed: int, round_no: int, hmu: int) -> int:
    """A distinct, reproducible training seed for each (run, round, HMU)."""
    return int(np.random.SeedSequence([seed, round_no, hmu]).generate_state(1)[0])


def run_inprocess(
    split: Split,
    rounds: int,
    cfg: TrainingConfig | None = None,
    mode: str = "thread",
    workers: int = 2,
    seed: int = 0,
    clients_per_round: int | None = None,
) -> InprocessResult:
    """FedAvg over ``len(split.parts)`` HMUs for ``rounds`` rounds, all in this process.

    ``mode`` is ``"thread"`` (a ThreadPoolExecutor of ``workers``, torch with
    ``cfg.threads`` threads each), ``"process"`` (a ProcessPoolExecutor of ``workers``
    that each hold the HMU shares) or ``"serial"``.  Pool start-up and torch warm-up
    are paid before the first timed round.  ``clients_per_round`` (default: all HMUs)
    are drawn uniformly each round.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    cfg = cfg or TrainingConfig()
    n_hmus = len(split.parts)
    k = clients_per_round or n_hmus
    shares = [(split.X_train[p], split.y_train[p]) for p in split.parts]
    weights = init_weights(split.X_train.shape[1], cfg.hidden, seed)
    rng = np.random.default_rng(seed)
    pool: Executor | None = None
    if mode == "thread":
        warm_up(cfg.threads)
        pool = ThreadPoolExecutor(workers)
    elif mode == "process":
        pool = ProcessPoolExecutor(
            workers, mp_context=get_context("spawn"), initializer=_init_worker,
            initargs=(shares, cfg.threads),
        )  # fmt: skip
        # make every worker start (and warm up) before timing
        list(pool.map(time.sleep, [0.2] * workers))
    else:
        warm_up(cfg.threads)
    times = []
    states: dict[int, OptimiserState | None] = {}  # each HMU's optimiser, kept between rounds
    try:
        for round_no in range(rounds):
            started = time.perf_counter()
            chosen = np.sort(rng.choice(n_hmus, size=k, replace=False))
            seeds = [client_seed(seed, round_no, int(h)) for h in chosen]
            if mode == "process":
                assert pool is not None
                futures = [
                    pool.submit(_train_share, int(h), weights, cfg, s, states.get(int(h)))
                    for h, s in zip(chosen, seeds, strict=True)
                ]
                results = [f.result() for f in futures]
            elif mode == "thread":
                assert pool is not None
                futures = [
                    pool.submit(train_local, weights, *shares[h], cfg, s, states.get(int(h)))
                    for h, s in zip(chosen, seeds, strict=True)
                ]
                results = [f.result() for f in futures]
            else:
                results = [
                    train_local(weights, *shares[h], cfg, s, states.get(int(h)))
                    for h, s in zip(chosen, seeds, strict=True)
                ]
            states.update((int(h), r.optimiser_state) for h, r in zip(chosen, results, strict=True))
            updates = {
                int(h): (r.weights, r.num_samples) for h, r in zip(chosen, results, strict=True)
            }
            weights = FedAvgAggregator().aggregate(weights, updates, round_no).weights
            times.append(time.perf_counter() - started)
    finally:
        if pool is not None:
            pool.shutdown()
    scores = evaluate(weights, split.X_test, split.y_test, cfg.hidden)
    return InprocessResult(mode, k, tuple(times), scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="timed rounds per setting")
    parser.add_argument("--dataset", type=Path, default=default_dataset())
    parser.add_argument("--quick", action="store_true", help="K = 20 only, 3 rounds")
    args = parser.parse_args()
    rounds = 3 if args.quick else args.rounds
    cfg = TrainingConfig()
    print(f"in-process FedAvg, {os.cpu_count()} cores, {cfg!r}")
    print(f"{rounds} rounds per setting; median wall time per round (training + FedAvg)")

    split20 = prepare_split(args.dataset, 20)
    by_mode = {}
    for mode in ("serial", "thread", "process"):
        result = run_inprocess(split20, rounds, cfg, mode=mode)
        by_mode[mode] = result.median_round_s
        print(
            f"  K=20 {mode:8s} workers=2: {result.median_round_s:.3f} s/round"
            f"  (accuracy {result.evaluation.accuracy:.3f} after {rounds} rounds)"
        )
    best = min(("thread", "process"), key=by_mode.__getitem__)
    print(f"  faster pool at K=20: {best}")
    if args.quick:
        return
    for k in (5, 20, 50):
        result = run_inprocess(prepare_split(args.dataset, k), rounds, cfg, mode=best)
        print(f"  K={k:<3d} {best}: {result.median_round_s:.3f} s/round")


if __name__ == "__main__":
    main()
