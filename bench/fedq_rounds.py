"""FedQ's conditions, one more thing tried for the IDS: more rounds.

Runs ``scenarios/fedq_eve.yaml`` (K = 20, Laplace epsilon 0.5 per parameter, a
quantum Eve on 10 % of the links) through ``iomt compare`` over seeds 1..N, once per
round count, over the real broker. The per-round epsilon is FedQ's; the whole run's
epsilon (``ε total``) grows with the rounds, and the table prints it.

Run: ``.venv/bin/python -m bench.fedq_rounds [--rounds 30 90 150] [--seeds 5] [--out DIR]``
"""

from __future__ import annotations

from bench.table_i import cell, compare, runs_folder, sweep_parser

TARGET_ACCURACY = 0.93
TARGET_MACRO_F1 = 0.83


def main() -> None:
    parser = sweep_parser(__doc__)
    parser.add_argument("--rounds", type=int, nargs="+", default=[30, 90, 150])
    args = parser.parse_args()
    rows = []
    with runs_folder(args.out) as out:
        for rounds in args.rounds:
            extra = ("--set", f"federation.rounds={rounds}")
            (row,) = compare(["fedq_eve"], extra, args.seeds, out / f"rounds-{rounds}")
            rows.append((rounds, row))
    print(f"\nFedQ's conditions (fedq_eve.yaml), seeds 1-{args.seeds}, mean ± std")
    print("| rounds | accuracy | macro-F1 | ε total | target |\n|---|---|---|---|---|")
    for rounds, row in rows:
        met = (
            float(row["accuracy_mean"]) >= TARGET_ACCURACY
            and float(row["macro_f1_mean"]) >= TARGET_MACRO_F1
        )
        print(f"| {rounds} | {cell(row, 'accuracy')} | {cell(row, 'macro_f1')} |"
              f" {cell(row, 'epsilon_total')} | {'met' if met else 'not met'} |")  # fmt: skip


if __name__ == "__main__":
    main()
