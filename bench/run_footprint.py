"""Wall time and peak memory of whole runs, as a user starts them.

1. A FedQ-sized run (``scenarios/fedavg.yaml`` with ``training.epochs=2``: 20 HMUs,
   K = 20, 64-64 MLP, 2 local epochs, real data, 30 rounds), from ``iomt run`` to
   ``results.json``. Targets: at most 25 s on 2 cores; peak memory of the whole
   process tree (CLI, Mosquitto) at most 1.0 GB.
2. One HMU process, measured inside ``iomt run scenarios/quickstart.yaml --processes``
   (HMU processes are the fork server's children). RSS counts the pages it shares with
   the fork server, so it is what a standalone ``iomt hmu`` on a Raspberry Pi needs.
   Target: peak RSS at most 400 MB.

Memory is sampled every 20 ms with psutil (RSS summed over the tree at each sample).

Run: ``.venv/bin/python -m bench.run_footprint [--skip-fedq] [--skip-hmu]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench.inprocess import default_dataset

ROOT = Path(__file__).resolve().parents[1]


def watch(cmd: list[str], env: dict[str, str]) -> tuple[float, int, dict[int, int], int]:
    """Run ``cmd``; return wall seconds, peak tree RSS, peak RSS per HMU process, exit code."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = psutil.Process(proc.pid)
    peak_tree = 0
    peak_hmu: dict[int, int] = {}
    while proc.poll() is None:
        total = 0
        try:
            members = [root, *root.children(recursive=True)]
            servers = {p.pid for p in root.children() if "forkserver" in " ".join(p.cmdline())}
        except psutil.NoSuchProcess:  # a child ended while being listed: look again
            continue
        for member in members:
            try:
                rss = member.memory_info().rss
                forked = member.ppid() in servers
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            total += rss
            if forked:  # an HMU process
                peak_hmu[member.pid] = max(peak_hmu.get(member.pid, 0), rss)
        peak_tree = max(peak_tree, total)
        time.sleep(0.02)
    proc.wait()
    wall = time.perf_counter() - started
    if proc.returncode:
        sys.stderr.write(proc.stderr.read().decode())
    return wall, peak_tree, peak_hmu, proc.returncode


FEDQ_SIZED = ("--set", "training.epochs=2")
"""The issue's FedQ-sized run trains 2 local epochs; the scenario default is 8."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-fedq", action="store_true")
    parser.add_argument("--skip-hmu", action="store_true")
    args = parser.parse_args()
    env = {**os.environ, "IOMT_DATASET": str(default_dataset())}
    iomt = [sys.executable, "-m", "iomt.scenarios.cli", "run"]
    mb = 1024 * 1024
    with tempfile.TemporaryDirectory() as out:
        if not args.skip_fedq:
            wall, peak, _, code = watch(
                [*iomt, str(ROOT / "scenarios/fedavg.yaml"), "--out", out, *FEDQ_SIZED], env
            )
            (results_file,) = Path(out).glob("*/results.json")
            results = json.loads(results_file.read_text())
            final = results["final"]
            print(f"FedQ-sized run (fedavg.yaml, {len(results['rounds'])} rounds): exit {code}")
            print(f"  wall time, iomt run -> results.json: {wall:.1f} s (target <= 25 s)")
            print(f"  peak RSS of the process tree: {peak / mb:.0f} MB (target <= 1024 MB)")
            print(
                f"  accuracy {final['accuracy']:.4f}  macro-F1 {final['macro_f1']:.4f}"
                f"  recall {final['recall']:.4f}"
            )
        if not args.skip_hmu:
            quick = ROOT / "scenarios/quickstart.yaml"
            _, _, per_hmu, code = watch([*iomt, str(quick), "--out", out, "--processes"], env)
            worst = max(per_hmu.values()) if per_hmu else 0
            print(f"HMU processes (quickstart --processes): exit {code}")
            print(f"  peak RSS of one HMU process: {worst / mb:.0f} MB (target <= 400 MB)")


if __name__ == "__main__":
    main()
