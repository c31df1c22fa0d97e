"""Robust aggregation, DP and compression in-process: accuracy, detection, bytes.

K = 20 iid HMUs on the real WUSTL-EHMS-2020 training split, 30 rounds, no MQTT
(bench/inprocess.py's data split and seeds; torch with 1 thread, a pool of 2 threads).
Every HMU takes part in every round.  Sections:

* ``robust``: clean FedAvg; then sign-flip and scaling attackers at 30 % and 40 % of the
  HMUs from round 1, against the robust defence (z-score screening, then trust-weighted
  FedAvg) and against plain FedAvg.  Reports final accuracy (and the mean of the last 5
  rounds, as the final round alone is noisy), poison resilience (attacked / clean
  accuracy) and poisoning detection TPR / FPR over all (HMU, round) pairs.
  Targets: within 2 points of clean at 30 %, within 5 at 40 %, TPR >= 0.93, FPR <= 0.06.
* ``rules``: the other aggregation rules (multi-Krum, median, trimmed mean) under
  30 % sign-flip attackers, and label flipping.
* ``privacy``: local DP at FedQ's epsilon = 0.5 per round (Laplace, L1 clip), FedQ's
  per-parameter reading of it (each parameter clipped to [-C, C], epsilon per
  parameter) and Gaussian (L2 clip, delta = 1e-5) at several clipping bounds, with the
  epsilon one whole update costs and the total over the run.
* ``compression``: top-k (k = 0.1) with error feedback and 8-bit codes: accuracy and
  bytes per update.

Run: ``.venv/bin/python -m bench.robustness [--sections robust rules privacy compression]
[--rounds 30] [--seed 0]``.  Accuracies are reproducible for a seed; timings vary
because the machine is shared, and the lead re-measures at the end.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench.inprocess import Split, client_seed, default_dataset, prepare_split
from iomt.fedlearn.accountant import epsilon_per_update, epsilon_total
from iomt.fedlearn.attacks import assign_attacks
from iomt.fedlearn.compression import dense_nbytes, payload_nbytes
from iomt.fedlearn.config import TrainingConfig
from iomt.fedlearn.defence_config import (
    AttackConfig,
    AttackEntry,
    AttackSchedule,
    CompressionConfig,
    DefenceConfig,
    PrivacyConfig,
    ScreeningConfig,
)
from iomt.fedlearn.evaluate import Evaluation, evaluate
from iomt.fedlearn.model import init_weights
from iomt.fedlearn.pipeline import build_pipeline
from iomt.fedlearn.resilience import DetectionRates, detection_rates, poison_resilience
from iomt.fedlearn.strategy import build_aggregator
from iomt.fedlearn.train import OptimiserState, warm_up
from iomt.fedlearn.updates import parameter_count
from iomt.hmu_agent.local_update import local_update
from iomt.server_agent.decoding import update_weights
from iomt.wire.messages import ModelUpdate
from iomt.wire.topics import hmu_ids

ROBUST = DefenceConfig(aggregator="trust", screening=ScreeningConfig(enabled=True))
FEDAVG = DefenceConfig()
NO_ATTACK = AttackConfig()
NO_DP = PrivacyConfig()
DENSE = CompressionConfig()
SIGN_FLIP_SCALE = 4.0
SCALING_SCALE = 10.0
LAPLACE_CLIPS = (1e-3, 1e-2, 1.0, 30.0)
PARAMETER_CLIPS = (3e-3, 1e-2, 3e-2, 1e-1)
GAUSS_CLIPS = (1e-3, 1e-2, 0.5)


def attack(kind: str, share: float, scale: float = 1.0) -> AttackConfig:
    """``share`` of the HMUs attack with ``kind`` from round 1 on."""
    schedule = AttackSchedule(start_round=1, share_start=share)
    return AttackConfig(entries=(AttackEntry(kind=kind, scale=scale, schedule=schedule),))  # type: ignore[arg-type]


@dataclass
class RunResult:
    """Final scores, per-round accuracy, detection and payload sizes of one run."""

    evaluation: Evaluation
    accuracy_by_round: list[float]
    detection: DetectionRates
    seconds: float
    payload_bytes: list[int] = field(default_factory=list)

    @property
    def tail_accuracy(self) -> float:
        """Mean accuracy over the last 5 rounds."""
        return statistics.fmean(self.accuracy_by_round[-5:])


def run_federation(
    split: Split,
    rounds: int,
    pool: ThreadPoolExecutor,
    *,
    defence: DefenceConfig = FEDAVG,
    attacks: AttackConfig = NO_ATTACK,
    privacy: PrivacyConfig = NO_DP,
    compression: CompressionConfig = DENSE,
    cfg: TrainingConfig | None = None,
    seed: int = 0,
) -> RunResult:
    """One in-process federation with the given attacks and defences (see module doc).

    Each HMU runs the agents' own round (``local_update`` with the scenario's update
    pipeline); the server decodes with ``update_weights`` and aggregates with the
    scenario's strategy.  Only the broker is left out.
    """
    cfg = cfg or TrainingConfig()
    started = time.perf_counter()
    hmus = hmu_ids(len(split.parts))
    shares = {
        h: (split.X_train[p], split.y_train[p]) for h, p in zip(hmus, split.parts, strict=True)
    }
    weights = init_weights(split.X_train.shape[1], cfg.hidden, seed)
    aggregator = build_aggregator(defence)
    pipelines = {
        h: build_pipeline(
            attacks=attacks, privacy=privacy, compression=compression, hmus=hmus, seed=seed
        )
        for h in hmus
    }
    accuracy, participants, attackers, flagged, sizes = [], [], [], [], []
    states: dict[str, OptimiserState | None] = {}  # each HMU's optimiser, kept between rounds
    for round_no in range(1, rounds + 1):
        futures = {
            h: pool.submit(
                local_update,
                weights,
                *shares[h],
                cfg,
                client_seed(seed, round_no, i),
                hmu=h,
                round_=round_no,
                pipeline=pipelines[h],
                optimiser_state=states.get(h),
            )  # fmt: skip
            for i, h in enumerate(hmus)
        }
        updates = {}
        for h, future in futures.items():
            done = future.result()
            states[h] = done.result.optimiser_state
            pipelines[h].restore(done.pipeline_state)  # a worker process trained a copy
            update = done.update
            if update.encoding:
                sizes.append(payload_nbytes(update.tensors))
            message = ModelUpdate(
                num_samples=done.result.num_samples, loss=float(done.result.loss),
                train_seconds=0.0, encoding=list(update.encoding), tensors=[],
            )  # fmt: skip
            updates[h] = (update_weights(h, message, update.tensors, weights), message.num_samples)
        outcome = aggregator.aggregate(weights, updates, round_no)
        weights = outcome.weights
        participants.append(set(hmus))
        attackers.append(set(assign_attacks(attacks, hmus, round_no, seed)))
        flagged.append(set(outcome.flagged))
        accuracy.append(evaluate(weights, split.X_test, split.y_test, cfg.hidden).accuracy)
    final = evaluate(weights, split.X_test, split.y_test, cfg.hidden)
    rates = detection_rates(participants, attackers, flagged)
    return RunResult(final, accuracy, rates, time.perf_counter() - started, sizes)


_clean_runs: dict[tuple[int, int, int], RunResult] = {}


def clean_run(split: Split, rounds: int, pool: ThreadPoolExecutor, seed: int) -> RunResult:
    """Plain FedAvg without attackers, DP or compression; run once per split and seed."""
    key = (id(split), rounds, seed)
    if key not in _clean_runs:
        _clean_runs[key] = run_federation(split, rounds, pool, seed=seed)
    return _clean_runs[key]


def _row(label: str, run: RunResult, clean: RunResult | None, detect: bool = True) -> str:
    pr = (
        f"{poison_resilience(run.evaluation.accuracy, clean.evaluation.accuracy):.3f}"
        if clean
        else "  -  "
    )
    rates = f"{run.detection.tpr:5.3f} {run.detection.fpr:5.3f}" if detect else "  -     -  "
    scores = run.evaluation
    return (
        f"  {label:34s} {scores.accuracy:6.4f} {run.tail_accuracy:6.4f}"
        f" {scores.f1:6.4f} {scores.roc_auc:6.4f}  {pr}  {rates}  {run.seconds:5.1f}s"
    )


HEADER = "  {:34s} {:>6s} {:>6s} {:>6s} {:>6s}  {:>5s}  {:>5s} {:>5s}  {:>6s}".format(
    "setting", "acc", "acc5", "f1", "auc", "PR", "TPR", "FPR", "time"
)


def section_robust(split: Split, rounds: int, pool: ThreadPoolExecutor, seed: int) -> None:
    print(f"\n[robust] sign-flip x{SIGN_FLIP_SCALE:g}, scaling x{SCALING_SCALE:g}; robust = "
          "screening (shorth z, |z| > 3.5 on log-norm, z < -3.5 on cosine) + trust")  # fmt: skip
    print(HEADER)
    clean = clean_run(split, rounds, pool, seed)
    print(_row("clean FedAvg", clean, None, detect=False), flush=True)
    clean_robust = run_federation(split, rounds, pool, defence=ROBUST, seed=seed)
    print(_row("clean robust", clean_robust, clean), flush=True)
    for kind, scale in (("sign-flip", SIGN_FLIP_SCALE), ("scaling", SCALING_SCALE)):
        for share in (0.3, 0.4):
            attacks = attack(kind, share, scale)
            for name, defence in (("robust", ROBUST), ("FedAvg", FEDAVG)):
                run = run_federation(
                    split, rounds, pool, defence=defence, attacks=attacks, seed=seed
                )
                gap = 100 * (clean.evaluation.accuracy - run.evaluation.accuracy)
                label = f"{kind} {share:.0%} {name} (gap {gap:+.1f} pt)"
                print(_row(label, run, clean, detect=name == "robust"), flush=True)


def section_rules(split: Split, rounds: int, pool: ThreadPoolExecutor, seed: int) -> None:
    print("\n[rules] other aggregation rules; attackers from round 1")
    print(HEADER)
    clean = clean_run(split, rounds, pool, seed)
    print(_row("clean FedAvg", clean, None, detect=False), flush=True)
    flip30 = attack("sign-flip", 0.3, SIGN_FLIP_SCALE)
    rules = {
        "multi-Krum": DefenceConfig(aggregator="multi-krum"),
        "median": DefenceConfig(aggregator="median"),
        "trimmed mean 0.3": DefenceConfig(aggregator="trimmed-mean", trim_fraction=0.3),
        "screening + FedAvg": DefenceConfig(screening=ScreeningConfig(enabled=True)),
    }
    for name, defence in rules.items():
        run = run_federation(split, rounds, pool, defence=defence, attacks=flip30, seed=seed)
        detect = name in ("multi-Krum", "screening + FedAvg")
        print(_row(f"sign-flip 30% {name}", run, clean, detect), flush=True)
    for share in (0.3,):
        for scale_name, attacks in (
            ("sign-flip x1", attack("sign-flip", share, 1.0)),
            ("label-flip", attack("label-flip", share)),
            ("gaussian sd 0.05", attack("gaussian", share, 0.05)),
        ):
            for name, defence in (("robust", ROBUST), ("FedAvg", FEDAVG)):
                run = run_federation(
                    split, rounds, pool, defence=defence, attacks=attacks, seed=seed
                )
                label = f"{scale_name} {share:.0%} {name}"
                print(_row(label, run, clean, detect=name == "robust"), flush=True)


def section_privacy(split: Split, rounds: int, pool: ThreadPoolExecutor, seed: int) -> None:
    print(f"\n[privacy] local DP on every update, {rounds} rounds; eps_total over all rounds")
    print(HEADER + "  eps/round  eps_total")
    clean = clean_run(split, rounds, pool, seed)
    print(_row("no DP", clean, None, detect=False), flush=True)
    laplace = [PrivacyConfig(mechanism="laplace", epsilon=0.5, clip=c) for c in LAPLACE_CLIPS]
    per_parameter = [
        PrivacyConfig(mechanism="laplace", unit="parameter", epsilon=0.5, clip=c)
        for c in PARAMETER_CLIPS
    ]
    gaussian = [PrivacyConfig(mechanism="gaussian", epsilon=0.5, clip=c) for c in GAUSS_CLIPS]
    loose = [PrivacyConfig(mechanism="gaussian", epsilon=e, clip=0.5) for e in (5.0, 50.0)]
    d = parameter_count(init_weights(split.X_train.shape[1], TrainingConfig().hidden))
    for privacy in laplace + per_parameter + gaussian + loose:
        run = run_federation(split, rounds, pool, privacy=privacy, seed=seed)
        unit = "/param" if privacy.unit == "parameter" else ""
        label = f"{privacy.mechanism} eps={privacy.epsilon:g}{unit} clip={privacy.bound:g}"
        per_round = epsilon_per_update(privacy, d)
        total = epsilon_total(privacy, rounds, d)
        print(
            _row(label, run, None, detect=False) + f"  {per_round:9.3g}  {total:9.3g}",
            flush=True,
        )


def section_compression(split: Split, rounds: int, pool: ThreadPoolExecutor, seed: int) -> None:
    print("\n[compression] bytes per update (array data; the codec index adds ~100 B per tensor)")
    print(HEADER + "  bytes/update  ratio")
    clean = clean_run(split, rounds, pool, seed)
    dense = dense_nbytes(init_weights(split.X_train.shape[1], TrainingConfig().hidden))
    print(_row("dense float32", clean, None, detect=False) + f"  {dense:12d}  1.00", flush=True)
    for kind, feedback in (
        ("quant8", True),
        ("topk", True),
        ("topk", False),
        ("topk-quant8", True),
    ):
        comp = CompressionConfig(kind=kind, k=0.1, error_feedback=feedback)  # type: ignore[arg-type]
        run = run_federation(split, rounds, pool, compression=comp, seed=seed)
        size = statistics.mean(run.payload_bytes)
        label = f"{kind} k=0.1 EF={'on' if feedback else 'off'}"
        print(
            _row(label, run, None, detect=False) + f"  {size:12.0f}  {dense / size:4.1f}",
            flush=True,
        )


SECTIONS = {
    "robust": section_robust,
    "rules": section_rules,
    "privacy": section_privacy,
    "compression": section_compression,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--hmus", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", type=Path, default=default_dataset())
    args = parser.parse_args()
    split = prepare_split(args.dataset, args.hmus, seed=args.seed)
    print(f"K = {args.hmus} iid HMUs, {args.rounds} rounds, seed {args.seed}, {TrainingConfig()!r}")
    print("acc: final accuracy; acc5: mean of the last 5 rounds; PR: poison resilience "
          "(acc / clean acc); TPR/FPR: poisoning detection over (HMU, round) pairs")  # fmt: skip
    warm_up(1)
    with ThreadPoolExecutor(2) as pool:
        for name in args.sections:
            SECTIONS[name](split, args.rounds, pool, args.seed)


if __name__ == "__main__":
    main()
