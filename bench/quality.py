"""IDS quality of the default training settings: FedAvg, K = 20 iid HMUs, 30 rounds.

Trains in-process (no MQTT; bench/inprocess.py) on the 34 non-identifier features of
WUSTL-EHMS-2020 and scores the final global model on a stratified 20 % held-out split,
for five seeds (each seed draws its own split, partition, init and batch order).
The issue's target: accuracy >= 0.93 and macro-F1 >= 0.83.  bench/table_i.py measures
the same over MQTT.

``--ablation`` adds the steps from FedAvg's usual settings to the defaults, one change
at a time on the same seeds, and the defaults with the signed log before z-scores.

Run: ``.venv/bin/python -m bench.quality [--rounds 30] [--hmus 20] [--seeds 0 1 2 3 4]
[--ablation]``.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from bench.inprocess import default_dataset, prepare_split, run_inprocess
from iomt.fedlearn.config import TrainingConfig
from iomt.fedlearn.scaling import DEFAULT_LOG

TARGET_ACCURACY = 0.93
TARGET_MACRO_F1 = 0.83
REFERENCE = TrainingConfig(
    epochs=2, batch_size=32, learning_rate=1e-3, class_weight="none", keep_optimiser_state=False
)
ABLATION = (
    ("FedAvg reference: 2 epochs, Adam 1e-3, batch 32", REFERENCE, DEFAULT_LOG),
    (
        "8 epochs, Adam 5e-3, batch 64",
        REFERENCE.model_copy(update={"epochs": 8, "batch_size": 64, "learning_rate": 5e-3}),
        DEFAULT_LOG,
    ),
    (
        "+ class weights ~ 1/sqrt(n_c)",
        TrainingConfig(keep_optimiser_state=False),
        DEFAULT_LOG,
    ),
    ("+ HMUs keep Adam moments (defaults)", TrainingConfig(), DEFAULT_LOG),
    ("defaults, signed log before z-scores", TrainingConfig(), not DEFAULT_LOG),
)


def measure(args: argparse.Namespace, cfg: TrainingConfig, log: bool) -> tuple[float, float]:
    """Print one row per seed; return mean accuracy and macro-F1."""
    print("seed  accuracy  macro_f1  precision  recall   fpr     roc_auc  s/round")
    rows = []
    for seed in args.seeds:
        split = prepare_split(args.dataset, args.hmus, seed=seed, log=log)
        result = run_inprocess(split, args.rounds, cfg, mode=args.mode, seed=seed)
        e = result.evaluation
        rows.append(e)
        print(
            f"{seed:4d}  {e.accuracy:8.4f}  {e.macro_f1:8.4f}  {e.precision:9.4f}  {e.recall:6.4f}"
            f"  {e.fpr:6.4f}  {e.roc_auc:7.4f}  {result.median_round_s:7.3f}",
            flush=True,
        )
    accuracy = statistics.mean(e.accuracy for e in rows)
    macro_f1 = statistics.mean(e.macro_f1 for e in rows)
    recall = statistics.mean(e.recall for e in rows)
    print(f"mean  {accuracy:8.4f}  {macro_f1:8.4f}  {'':9s}  {recall:6.4f}")
    return accuracy, macro_f1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--hmus", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--dataset", type=Path, default=default_dataset())
    parser.add_argument("--mode", choices=("process", "thread", "serial"), default="process")
    parser.add_argument("--ablation", action="store_true")
    args = parser.parse_args()
    print(f"FedAvg, K={args.hmus} iid HMUs (all per round), {args.rounds} rounds, "
          f"34 non-identifier features, seeds {args.seeds}")  # fmt: skip
    if args.ablation:
        summary = []
        for label, cfg, log in ABLATION:
            print(f"\n{label} (signed log: {log})")
            summary.append((label, *measure(args, cfg, log)))
        print("\n| settings | accuracy | macro-F1 |\n|---|---|---|")
        for label, accuracy, macro_f1 in summary:
            print(f"| {label} | {accuracy:.4f} | {macro_f1:.4f} |")
        return
    cfg = TrainingConfig()
    print(f"{cfg!r}, signed log: {DEFAULT_LOG}")
    accuracy, macro_f1 = measure(args, cfg, DEFAULT_LOG)
    met = accuracy >= TARGET_ACCURACY and macro_f1 >= TARGET_MACRO_F1
    print(
        f"target accuracy >= {TARGET_ACCURACY} and macro-F1 >= {TARGET_MACRO_F1}:"
        f" {'met' if met else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
