"""``iomt compare``: run scenarios over several seeds and tabulate mean ± std per column.

Columns: accuracy, precision, recall, F1, macro-F1, detection time (ms per flow),
leakage where defined (the privacy budget spent: total epsilon of the HMU that spent
most; blank without DP), poisoning detection TPR/FPR where attacks are injected, and
bytes on the wire per round, MB each HMU sent and received per round (measured where
the bytes leave and enter it), gradient leakage % (``results.json``'s
``leakage.headline``), and poison resilience (accuracy over the baseline scenario's,
seed for seed) when a baseline is named. Written as Markdown, CSV and PNG.
"""

from __future__ import annotations

import csv
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iomt.fedlearn.resilience import poison_resilience

COLUMNS: tuple[tuple[str, str], ...] = (
    ("accuracy", "accuracy"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("f1", "F1"),
    ("macro_f1", "macro-F1"),
    ("detection_time_ms", "detection ms/flow"),
    ("epsilon_total", "leakage (ε total)"),
    ("tpr", "poison TPR"),
    ("fpr", "poison FPR"),
    ("bytes_per_round", "bytes/round"),
    ("mb_per_hmu_round", "MB/HMU/round"),
    ("gradient_leakage", "gradient leakage %"),
    ("resilience", "poison resilience"),
)


def run_figures(
    results: dict[str, Any], clean: dict[str, Any] | None = None
) -> dict[str, float | None]:
    """One run's value for every column (None where the column does not apply).

    ``clean`` is the same seed's run of the baseline scenario: with it, poison
    resilience is this run's accuracy over the baseline's (``iomt.fedlearn.resilience``).
    """
    final = results["final"]
    rounds = results["rounds"] or [{}]
    spent = [
        p["epsilon_total"]
        for p in results.get("privacy", {}).values()
        if p.get("epsilon_total") is not None
    ]
    poisoning = results.get("poisoning", {})
    communication = results.get("communication")
    attacked = poisoning.get("tp", 0) + poisoning.get("fn", 0) > 0
    return {
        **{key: final.get(key) for key in ("accuracy", "precision", "recall", "f1", "macro_f1")},
        "detection_time_ms": final.get("detection_time_ms"),
        "epsilon_total": max(spent) if spent else None,
        "tpr": poisoning.get("tpr") if attacked else None,
        "fpr": poisoning.get("fpr") if attacked else None,
        "bytes_per_round": statistics.fmean(
            r.get("bytes_up", 0) + r.get("bytes_down", 0) for r in rounds
        ),
        "mb_per_hmu_round": (
            communication["mb_up_per_hmu_round"] + communication["mb_down_per_hmu_round"]
            if communication
            else None
        ),
        "gradient_leakage": results.get("leakage", {}).get("headline"),
        "resilience": (
            poison_resilience(final["accuracy"], clean["final"]["accuracy"]) if clean else None
        ),
    }


@dataclass(frozen=True)
class Row:
    """One scenario over its seeds: mean and standard deviation per column."""

    scenario: str
    seeds: tuple[int, ...]
    mean: dict[str, float | None]
    std: dict[str, float | None]
    incomplete: int = 0


def summarise(
    scenario: str,
    seeds: Sequence[int],
    runs: Sequence[dict[str, Any]],
    baseline: Sequence[dict[str, Any]] | None = None,
) -> Row:
    """Mean ± std over seeds; ``baseline`` holds the clean runs, seed for seed."""
    clean = list(baseline) if baseline is not None else [None] * len(runs)
    figures = [run_figures(r, c) for r, c in zip(runs, clean, strict=True)]
    mean: dict[str, float | None] = {}
    std: dict[str, float | None] = {}
    for key, _ in COLUMNS:
        values = [f[key] for f in figures if f[key] is not None]
        mean[key] = statistics.fmean(values) if values else None
        std[key] = statistics.stdev(values) if len(values) > 1 else (0.0 if values else None)
    failed = sum(not r.get("completed", True) for r in runs)
    return Row(scenario, tuple(seeds), mean, std, failed)


def _cell(mean: float | None, std: float | None, key: str) -> str:
    if mean is None:
        return "–"
    if key == "resilience":
        return f"{mean:.3f} ± {std or 0:.3f}"
    if key == "bytes_per_round":
        return f"{mean:,.0f} ± {std or 0:,.0f}"
    digits = 4 if key != "detection_time_ms" else 5
    return f"{mean:.{digits}f} ± {std or 0:.{digits}f}"


def write_markdown(rows: Sequence[Row], path: Path) -> Path:
    head = "| scenario | seeds | " + " | ".join(label for _, label in COLUMNS) + " |"
    rule = "|" + "---|" * (len(COLUMNS) + 2)
    lines = [head, rule]
    for row in rows:
        cells = [_cell(row.mean[k], row.std[k], k) for k, _ in COLUMNS]
        seeds = f"{len(row.seeds)}" + (f" ({row.incomplete} incomplete)" if row.incomplete else "")
        lines.append(f"| {row.scenario} | {seeds} | " + " | ".join(cells) + " |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_csv(rows: Sequence[Row], path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["scenario", "seeds", *[f"{k}_{s}" for k, _ in COLUMNS for s in ("mean", "std")]]
        )
        for row in rows:
            values: list[Any] = []
            for key, _ in COLUMNS:
                values += ["" if row.mean[key] is None else row.mean[key],
                           "" if row.std[key] is None else row.std[key]]  # fmt: skip
            writer.writerow([row.scenario, " ".join(map(str, row.seeds)), *values])
    return path


def write_plot(rows: Sequence[Row], path: Path) -> Path:
    """Grouped bars of the classification scores with ± std whiskers."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    keys = ["accuracy", "precision", "recall", "f1", "macro_f1"]
    fig = Figure(figsize=(max(6.0, 1.6 * len(rows) + 3), 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.8 / len(keys)
    for i, key in enumerate(keys):
        means = [row.mean[key] or 0.0 for row in rows]
        stds = [row.std[key] or 0.0 for row in rows]
        xs = [j + (i - (len(keys) - 1) / 2) * width for j in range(len(rows))]
        ax.bar(xs, means, width, yerr=stds, capsize=2, label=key.replace("_", "-"))
    ax.set_xticks(range(len(rows)), [row.scenario for row in rows], rotation=20, ha="right")
    ax.set_ylim(0, 1.0)
    ax.set_ylabel("score on the held-out split (mean ± std over seeds)")
    ax.legend(ncols=len(keys), fontsize="small", loc="lower center")
    ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, dpi=120)
    return path
