"""SAFE-MED's poisoning sweep over MQTT: 0-40 % sign-flipping HMUs, three defences.

Runs ``iomt compare`` once per sweep file in ``scenarios/safemed/`` (``fedavg``, ``dp``:
FL + Gaussian DP, ``robust``: z-score screening + trust-weighted FedAvg), each with its
0 % point as the baseline of poison resilience; 20 HMUs, K = 20, 30 rounds, seeds
1..N.  Prints accuracy, macro-F1, poisoning TPR / FPR and resilience per share, and the
targets of the robust defence: within 2 points of clean at 30 %, within 5 at 40 %,
TPR >= 0.93 at FPR <= 0.06.  About 30 minutes on 2 cores with 5 seeds.

Run: ``.venv/bin/python -m bench.safemed_sweep [--seeds 5] [--families fedavg dp robust]``
"""

from __future__ import annotations

from bench.table_i import compare, print_table, runs_folder, sweep_parser

FAMILIES = ("fedavg", "dp", "robust")
COLUMNS = ("accuracy", "macro_f1", "tpr", "fpr", "resilience")


def main() -> None:
    parser = sweep_parser(__doc__)
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    args = parser.parse_args()
    rows = []
    with runs_folder(args.out) as out:
        for family in args.families:
            baseline = ("--baseline", f"safemed_{family}-0")
            rows += compare([f"safemed/{family}"], baseline, args.seeds, out / family)
    title = f"SAFE-MED sweep over MQTT, sign-flip x10 from round 1, seeds 1-{args.seeds}"
    print_table(title, rows, COLUMNS)
    by_name = {row["scenario"]: row for row in rows}
    if "robust" in args.families:
        clean = float(by_name["safemed_robust-0"]["accuracy_mean"])
        for share, allowed in (("0p3", 0.02), ("0p4", 0.05)):
            row = by_name[f"safemed_robust-{share}"]
            drop = clean - float(row["accuracy_mean"])
            tpr, fpr = float(row["tpr_mean"]), float(row["fpr_mean"])
            met = drop <= allowed and tpr >= 0.93 and fpr <= 0.06
            print(f"robust {share}: {100 * drop:+.2f} points below clean (allowed "
                  f"{100 * allowed:.0f}), TPR {tpr:.3f}, FPR {fpr:.3f}: "
                  f"{'met' if met else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
