"""FedQ's Table I over MQTT: the four scenarios and the honest-DP variant, 5 seeds each.

Runs ``iomt compare`` as a user would (real Mosquitto, B92 keys, AES-GCM, replayed
traffic for the FedQ rows; 20 HMUs, K = 20, 30 rounds, seeds 1..N):

* ``fedavg``, ``fedavg_eve`` (a man-in-the-middle on 10 % of the HMUs' MQTT paths),
  ``fedq``, ``fedq_eve`` (intercept-resend Eve on 10 % of the quantum links), with
  FedQ's per-parameter Laplace DP at epsilon 0.5;
* ``fedq`` again with ``privacy.unit=update``: epsilon 0.5 spent on the whole update.

Prints one table of mean ± std and the targets: FedQ with Eve at accuracy >= 0.925
(FedQ reports 92.52 %); the quality target of plain FedAvg (accuracy >= 0.93,
macro-F1 >= 0.83).  About 12 minutes on 2 cores.

Run: ``.venv/bin/python -m bench.table_i [--seeds 5] [--out DIR]``
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench.inprocess import default_dataset

ROOT = Path(__file__).resolve().parents[1]

TABLE_I = ("fedavg", "fedavg_eve", "fedq", "fedq_eve")
HONEST = ("fedq", ("--set", "privacy.unit=update"), "fedq, ε per update")
COLUMNS = ("accuracy", "precision", "recall", "f1", "macro_f1", "epsilon_total")


def sweep_parser(doc: str) -> argparse.ArgumentParser:
    """A sweep bench's arguments: ``--seeds N`` (seeds 1..N) and ``--out DIR`` (keep the
    runs there; the same ``DIR`` again resumes, ``iomt compare`` reading what finished)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    return parser


@contextlib.contextmanager
def runs_folder(out: Path | None) -> Iterator[Path]:
    """``out``, or a scratch folder removed afterwards."""
    if out is not None:
        yield out
        return
    with tempfile.TemporaryDirectory() as scratch:
        yield Path(scratch)


def compare(files: list[str], extra: tuple[str, ...], seeds: int, out: Path) -> list[dict]:
    """Run ``iomt compare`` and read back its CSV rows."""
    env = {**os.environ, "IOMT_DATASET": str(default_dataset())}
    paths = [str(ROOT / "scenarios" / f"{name}.yaml") for name in files]
    command = [sys.executable, "-m", "iomt.scenarios.cli", "compare", *paths, "--seeds", str(seeds)]
    subprocess.run([*command, "--out", str(out), *extra], env=env, check=True)
    with (out / "compare.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def completed_runs(folder: Path) -> dict[int, tuple[Path, dict]]:
    """Each completed run ``iomt compare`` left in ``folder`` (``out/<scenario>``), by
    seed: its directory and its ``results.json``."""
    runs = ((p.parent, json.loads(p.read_text())) for p in folder.glob("*/results.json"))
    return {int(r["seed"]): (d, r) for d, r in runs if r["completed"]}


def seed_groups(seeds: list[int], size: int = 5) -> Iterator[list[int]]:
    """``seeds`` in groups of ``size`` consecutive seeds: 1-5, 6-10, ...  A setting
    chosen on the first group can then be checked on seeds it has not seen."""
    for first in range(1, max(seeds) + 1, size):
        group = [s for s in seeds if first <= s < first + size]
        if group:
            yield group


def spread(values: list[float]) -> float:
    """The sample standard deviation; 0 for a single value."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def cell(row: dict, key: str) -> str:
    mean, std = row[f"{key}_mean"], row[f"{key}_std"]
    if not mean:
        return "–"
    if key == "epsilon_total":
        return f"{float(mean):.3g}"
    return f"{float(mean):.4f} ± {float(std or 0):.4f}"


def print_table(title: str, rows: list[dict], columns: tuple[str, ...]) -> None:
    """``rows`` of ``compare`` as a Markdown table of ``columns`` under ``title``."""
    print(f"\n{title}")
    print("| scenario | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for row in rows:
        print(f"| {row['scenario']} | " + " | ".join(cell(row, k) for k in columns) + " |")


def main() -> None:
    args = sweep_parser(__doc__).parse_args()
    with runs_folder(args.out) as out:
        rows = compare(list(TABLE_I), (), args.seeds, out / "table_i")
        name, extra, label = HONEST
        honest = compare([name], extra, args.seeds, out / "honest")
    honest[0]["scenario"] = label
    rows += honest
    print_table(f"FedQ Table I over MQTT, seeds 1-{args.seeds} (mean ± std)", rows, COLUMNS)
    by_name = {row["scenario"]: row for row in rows}
    fedq_eve = float(by_name["fedq_eve"]["accuracy_mean"])
    fedavg = by_name["fedavg"]
    accuracy, macro_f1 = float(fedavg["accuracy_mean"]), float(fedavg["macro_f1_mean"])
    print(f"target FedQ + Eve accuracy >= 0.925: {fedq_eve:.4f} "
          f"{'met' if fedq_eve >= 0.925 else 'NOT met'}")  # fmt: skip
    met = accuracy >= 0.93 and macro_f1 >= 0.83
    print(f"target FedAvg accuracy >= 0.93 and macro-F1 >= 0.83: {accuracy:.4f} / "
          f"{macro_f1:.4f} {'met' if met else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
