"""FedQ's conditions, more things tried for the IDS: more rounds, a shorter server step.

Runs ``scenarios/fedq_eve.yaml`` (K = 20, Laplace epsilon 0.5 per parameter, a
quantum Eve on 10 % of the links) through ``iomt compare`` over seeds 1..N, once per
round count and server step (``federation.server_lr``: the model moves that share of
the way to each aggregate), over the real broker. The per-round epsilon is FedQ's; the
whole run's epsilon (``ε total``) grows with the rounds, and the table prints it. The
server step is post-processing of what the HMUs released: it costs no privacy.

The figures are each run's own final model. With more than five seeds they are printed
per group of five (seeds 1-5, 6-10, ...), so that a setting chosen on the first group
can be checked on seeds it has not seen.

Run: ``.venv/bin/python -m bench.fedq_rounds [--rounds 30 90 150] [--server-lr 1 0.5]
[--seeds 5] [--out DIR]``
"""

from __future__ import annotations

import statistics

from bench.table_i import compare, completed_runs, runs_folder, seed_groups, spread, sweep_parser

TARGET_ACCURACY = 0.93
TARGET_MACRO_F1 = 0.83


def main() -> None:
    parser = sweep_parser(__doc__)
    parser.add_argument("--rounds", type=int, nargs="+", default=[30, 90, 150])
    parser.add_argument("--server-lr", type=float, nargs="+", default=[1.0])
    args = parser.parse_args()
    rows = []
    with runs_folder(args.out) as out:
        for rounds in args.rounds:
            for lr in args.server_lr:
                extra = ("--set", f"federation.rounds={rounds}",
                         "--set", f"federation.server_lr={lr:g}")  # fmt: skip
                folder = out / f"rounds-{rounds}-step-{lr:g}"
                (row,) = compare(["fedq_eve"], extra, args.seeds, folder)
                finals = {
                    seed: r["final"] for seed, (_, r) in completed_runs(folder / "fedq_eve").items()
                }
                rows.append((rounds, lr, row["epsilon_total_mean"], finals))
    print("\nFedQ's conditions (fedq_eve.yaml), each run's final model, mean ± std")
    print("| rounds | server step | seeds | accuracy | macro-F1 | weakest macro-F1 | ε total |"
          " target |\n|---|---|---|---|---|---|---|---|")  # fmt: skip
    for rounds, lr, epsilon, runs in rows:
        for seeds in seed_groups(sorted(runs)):
            acc = [runs[s]["accuracy"] for s in seeds]
            f1 = [runs[s]["macro_f1"] for s in seeds]
            met = statistics.mean(acc) >= TARGET_ACCURACY and statistics.mean(f1) >= TARGET_MACRO_F1
            print(f"| {rounds} | {lr:g} | {seeds[0]}-{seeds[-1]} |"
                  f" {statistics.mean(acc):.4f} ± {spread(acc):.4f} |"
                  f" {statistics.mean(f1):.4f} ± {spread(f1):.4f} | {min(f1):.4f} |"
                  f" {float(epsilon):.3g} | {'met' if met else 'not met'} |")  # fmt: skip


if __name__ == "__main__":
    main()
