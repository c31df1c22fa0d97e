"""Hundreds of connected HMUs on this machine: round time and memory of ``iomt run``.

Each case runs ``scenarios/fedavg.yaml`` as a user would (``iomt run`` with ``--set``
for the HMUs, fog nodes and rounds: real Mosquitto, every HMU an agent with its own MQTT
connection and data share, K = 20 selected per round, only they train, in the shared
pool of training workers) and reads ``results.json``:

* round time: the median of the rounds' ``duration_s`` (invitations out to the new
  global model), rounds 2.. (round 1 pays the workers' first batches);
* peak RSS of the whole process tree (CLI, training workers, every Mosquitto), sampled
  every 20 ms (``bench.run_footprint.watch``).

Targets (issue 15): 200 HMUs flat <= 1 s per round, with 10 fog nodes <= 1.5 s, tree
<= 2 GB; 1,000 HMUs flat <= 2 s per round, <= 4 GB.

With ``--table`` it runs SAFE-MED's scalability table instead: ``iomt compare
scenarios/safemed/scale.yaml`` (20, 50, 100, 200 HMUs behind 10 fogs, 10 % per
round) over ``--seeds``, and prints accuracy, MB per HMU per round, rounds to reach
0.93 accuracy and the median round time, mean over seeds.

Run: ``.venv/bin/python -m bench.scale [--rounds 10] [--cases 200 200-fog 1000]``
or ``.venv/bin/python -m bench.scale --table [--seeds 5] [--out DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench.inprocess import default_dataset
from bench.run_footprint import watch
from bench.table_i import cell, compare

ROOT = Path(__file__).resolve().parents[1]
CASES = {  # name: (HMUs, fog nodes, round target s, memory target GB)
    "200": (200, 0, 1.0, 2.0),
    "200-fog": (200, 10, 1.5, 2.0),
    "1000": (1000, 0, 2.0, 4.0),
}


def rounds_to(target: float, rounds: list[dict]) -> int | None:
    """The first round whose global model reaches ``target`` accuracy (None: never)."""
    return next((r["round"] for r in rounds if r["accuracy"] >= target), None)


def scalability(seeds: int, out: Path) -> None:
    rows = compare(["safemed/scale"], (), seeds, out)
    print(f"\nSAFE-MED scalability, 10 fog nodes, 10 % per round, seeds 1-{seeds}")
    print("| HMUs | accuracy | MB/HMU/round | rounds to 0.93 | round s (median) |")
    print("|---|---|---|---|---|")
    for row in rows:
        runs = [json.loads(p.read_text()) for p in (out / row["scenario"]).glob("*/results.json")]
        reached = [rounds_to(0.93, r["rounds"]) for r in runs]
        hit = [n for n in reached if n is not None]
        to_target = (f"{statistics.fmean(hit):.1f}" if hit else "never") + (
            f" ({len(hit)}/{len(runs)} seeds)" if len(hit) != len(runs) else ""
        )
        seconds = statistics.fmean(
            statistics.median(x["duration_s"] for x in r["rounds"]) for r in runs
        )
        hmus = runs[0]["scenario"].rsplit("-n", 1)[-1]
        accuracy, mb = cell(row, "accuracy"), cell(row, "mb_per_hmu_round")
        print(f"| {hmus} | {accuracy} | {mb} | {to_target} | {seconds:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--table", action="store_true", help="SAFE-MED's scalability table")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.table:
        with tempfile.TemporaryDirectory() as scratch:
            scalability(args.seeds, args.out or Path(scratch))
        return
    env = {**os.environ, "IOMT_DATASET": str(default_dataset())}
    scenario = ROOT / "scenarios" / "fedavg.yaml"
    print("| HMUs | fog nodes | K | round s (median) | target | peak tree GB | target | exit |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.cases:
        hmus, fogs, round_target, memory_target = CASES[name]
        with tempfile.TemporaryDirectory() as out:
            cmd = [sys.executable, "-m", "iomt.scenarios.cli", "run", str(scenario),
                   "--out", out, "--set", f"federation.hmus={hmus}",
                   "--set", f"topology.fog_nodes={fogs}",
                   "--set", f"federation.rounds={args.rounds}"]  # fmt: skip
            _, peak, _, code = watch(cmd, env)
            (results_file,) = Path(out).glob("*/results.json")
            rounds = json.loads(results_file.read_text())["rounds"]
        median = statistics.median(r["duration_s"] for r in rounds[1:])
        k = len(rounds[-1]["selected"]) if not fogs else "20 over 10 fogs"
        print(f"| {hmus} | {fogs} | {k} | {median:.3f} | <= {round_target:g} "
              f"| {peak / 2**30:.2f} | <= {memory_target:g} | {code} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
