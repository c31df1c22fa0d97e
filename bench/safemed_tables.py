"""SAFE-MED's tables T1-T3 over the real broker, from the sweep files of
``scenarios/safemed/``: ``methods.yaml`` (five methods and the QKD-keyed cipher
against 0-40 % sign-flipping HMUs) and ``ablation.yaml`` (the full pipeline and each
part taken out, 20 % attackers), both through one ``iomt compare`` over seeds 1..N
(one call, so that the ciphers of both train ahead together, two at a time).

* T1: per method, accuracy without attackers, gradient leakage % (``results.json``'s
  ``leakage.headline``: the fresh insider attacker for the neural ciphers, what the
  server reads otherwise), MB per HMU per round (measured where bytes leave and enter
  each HMU), and poison resilience read as SAFE-MED's figures imply it: accuracy with
  20 % sign-flipping HMUs.
* T2: accuracy of each method at 0, 10, 20, 30 and 40 % attackers.
* T3: the ablation's accuracy, leakage and poisoning TPR / FPR.

Run: ``.venv/bin/python -m bench.safemed_tables [--seeds 5] [--tables t1 t3] [--out DIR]``
(``--out`` keeps the runs, and a second invocation with the same ``--out`` resumes:
``iomt compare`` reads the runs it finds finished; the minutes printed are this
invocation's).
"""

from __future__ import annotations

import time

from bench.table_i import cell, compare, runs_folder, sweep_parser

METHODS = ("fedavg", "fl-dp", "fl-he", "neuralcrypto", "safemed", "keyed")
SHARES = ("0", "0p1", "0p2", "0p3", "0p4")


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    print(f"\n{title}")
    print("| " + " | ".join(header) + " |")
    print("|---" * len(header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main() -> None:
    parser = sweep_parser(__doc__)
    parser.add_argument("--tables", nargs="+", choices=("t1", "t3"), default=["t1", "t3"])
    args = parser.parse_args()
    files = {"t1": "safemed/methods", "t3": "safemed/ablation"}
    with runs_folder(args.out) as out:
        # one compare for both files: their ciphers train ahead together, two at a time
        started = time.monotonic()
        rows = compare([files[t] for t in args.tables], (), args.seeds, out / "tables")
        minutes = (time.monotonic() - started) / 60
        names = " + ".join({"t1": "T1 + T2", "t3": "T3"}[t] for t in args.tables)
        print(f"\n{names}: {minutes:.1f} min, seeds 1-{args.seeds}")
        by = {r["scenario"]: r for r in rows}
        if "t1" in args.tables:
            table(
                f"T1, seeds 1-{args.seeds}",
                ["method", "accuracy", "gradient leakage %", "MB/HMU/round",
                 "poison resilience (accuracy, 20 % attackers)"],
                [[m, cell(by[f"t1-{m}-0"], "accuracy"), cell(by[f"t1-{m}-0"], "gradient_leakage"),
                  cell(by[f"t1-{m}-0"], "mb_per_hmu_round"), cell(by[f"t1-{m}-0p2"], "accuracy")]
                 for m in METHODS],
            )  # fmt: skip
            table(
                f"T2, accuracy by share of sign-flipping HMUs, seeds 1-{args.seeds}",
                ["method", "0 %", "10 %", "20 %", "30 %", "40 %"],
                [[m, *(cell(by[f"t1-{m}-{s}"], "accuracy") for s in SHARES)] for m in METHODS],
            )
        if "t3" in args.tables:
            table(
                f"T3, ablation, 20 % sign-flipping HMUs, seeds 1-{args.seeds}",
                ["variant", "accuracy", "gradient leakage %", "poison TPR", "poison FPR"],
                [[r["scenario"].removeprefix("t3-"),
                  *(cell(r, k) for k in ("accuracy", "gradient_leakage", "tpr", "fpr"))]
                 for r in rows if r["scenario"].startswith("t3-")],
            )  # fmt: skip


if __name__ == "__main__":
    main()
