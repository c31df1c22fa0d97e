"""Asynchronous against synchronous federation on SAFE-MED's unreliable network.

Both runs are ``scenarios/fedavg.yaml`` (20 HMUs, K = 20) as a user runs it, with 20 %
churn, 100-500 kbps links with 10-50 ms latency and 0.5-2.0 GHz clocks, one after the
other in this invocation:

* sync: 30 rounds, each waiting for its invitees (or their last wills, or the deadline);
* async: buffer M = 10, staleness bound 5, server_lr 0.5 (M / K), 60 aggregations, so
  both runs apply about the same number of updates.

Printed per run: wall time until the global model first reaches 0.93 accuracy (from
the round records' ``elapsed_s``, the server's clock since the run started), the
accuracy at the end, updates applied and the run's wall time. Target (issue 15): async
reaches 0.93 sooner.

Run: ``.venv/bin/python -m bench.async_vs_sync [--seed 1] [--target 0.93]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.inprocess import default_dataset

ROOT = Path(__file__).resolve().parents[1]
NETWORK = (
    "federation.churn=0.2", "broker.reconnect_s=30", "links.bandwidth_kbps=[100,500]",
    "links.latency_ms=[10,50]", "links.compute_ghz=[0.5,2.0]",
)  # fmt: skip
MODES = {
    "sync": ("federation.rounds=30",),
    "async": ("federation.mode=async", "federation.buffer_size=10",
              "federation.server_lr=0.5", "federation.rounds=60"),
}  # fmt: skip


def time_to(target: float, rounds: list[dict]) -> float | None:
    """Seconds since the run started until a global model first scored ``target``."""
    return next((r["elapsed_s"] for r in rounds if r["accuracy"] >= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--target", type=float, default=0.93)
    args = parser.parse_args()
    env = {**os.environ, "IOMT_DATASET": str(default_dataset())}
    print(f"| mode | time to {args.target} (s) | final accuracy | updates applied | wall s |")
    print("|---|---|---|---|---|")
    for mode, settings in MODES.items():
        with tempfile.TemporaryDirectory() as out:
            sets = [x for s in (*NETWORK, *settings, f"seed={args.seed}") for x in ("--set", s)]
            cmd = [sys.executable, "-m", "iomt.scenarios.cli", "run",
                   str(ROOT / "scenarios" / "fedavg.yaml"), "--out", out, *sets]  # fmt: skip
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            found = list(Path(out).glob("*/results.json"))
            if not found:
                sys.exit(f"{mode}: no results.json (exit {proc.returncode}): {proc.stderr[-500:]}")
            (results_file,) = found
            results = json.loads(results_file.read_text())
        reached = time_to(args.target, results["rounds"])
        applied = sum(len(r["received"]) for r in results["rounds"])
        print(f"| {mode} | {'never' if reached is None else f'{reached:.1f}'} "
              f"| {results['final']['accuracy']:.4f} | {applied} "
              f"| {results['wall_time_s']:.1f} (exit {proc.returncode}) |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
