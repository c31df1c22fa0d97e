"""FedQ's conditions, one more thing tried for the IDS: the mean of the last k global
models as the final model (post-processing of released models: no privacy cost).

Runs ``scenarios/fedq_eve.yaml`` through ``iomt compare`` over seeds 1..N with
``privacy_audit: true`` (each round's global model kept), then scores the mean of the
last k global models on each run's own held-out rows. k = 1 is the run's own final
model (the figure ``iomt compare`` reports).

With ``--rounds R`` the runs are R rounds long instead of 30, and with more than five
seeds the table is printed per group of five (seeds 1-5, 6-10, ...), so that a k chosen
on the first group can be checked on seeds it has not seen.

Run: ``.venv/bin/python -m bench.tail_average [--seeds 5] [--rounds 30] [--out DIR]``
"""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np

from bench.table_i import compare, completed_runs, runs_folder, seed_groups, spread, sweep_parser
from iomt.fedlearn.evaluate import evaluate
from iomt.scenarios.attack_runs import run_data
from iomt.server_agent import audit
from iomt.server_agent.checkpoint import read_checkpoint

TAILS = (1, 3, 5, 10)


def tail_scores(run_dir: Path) -> dict[int, tuple[float, float]]:
    """Accuracy and macro-F1 of the mean of the last k global models, per k."""
    scenario, data = run_data(run_dir)
    models = [audit.read_round(run_dir, r)[0] for r in audit.rounds_kept(run_dir)]
    models.append(read_checkpoint(run_dir).weights)  # the model after the last round
    scores = {}
    for k in TAILS:
        mean = {name: np.mean([m[name] for m in models[-k:]], axis=0) for name in models[-1]}
        e = evaluate(mean, data.x_test, data.y_test, scenario.training.hidden)
        scores[k] = (e.accuracy, e.macro_f1)
    return scores


def main() -> None:
    parser = sweep_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    extra = ("--set", "privacy_audit=true", "--set", f"federation.rounds={args.rounds}")
    with runs_folder(args.out) as out:
        compare(["fedq_eve"], extra, args.seeds, out)
        runs = completed_runs(out / "fedq_eve")
        per_seed = {seed: tail_scores(run_dir) for seed, (run_dir, _) in runs.items()}
    for seeds in seed_groups(sorted(per_seed)):
        print(f"\nFedQ's conditions (fedq_eve.yaml), {args.rounds} rounds,"
              f" seeds {seeds[0]}-{seeds[-1]}: final model = mean of the last k global"
              " models")  # fmt: skip
        print("| k | accuracy | macro-F1 | weakest macro-F1 |\n|---|---|---|---|")
        for k in TAILS:
            acc, f1 = ([per_seed[s][k][i] for s in seeds] for i in (0, 1))
            print(f"| {k} | {statistics.mean(acc):.4f} ± {spread(acc):.4f} |"
                  f" {statistics.mean(f1):.4f} ± {spread(f1):.3f} | {min(f1):.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
