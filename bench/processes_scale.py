"""``iomt run --processes`` at 50 HMUs: time until every HMU is online, memory, clean exit.

Runs ``scenarios/quickstart.yaml`` with ``federation.hmus=50`` (all 50 selected, 3
rounds) as a user would, and reports:

* online: from the launcher's ``broker: ... at`` log line (the broker is up and HMU
  processes start) to ``round 1: invited`` (the server saw all 50 online), from the
  run's ``run.log`` timestamps. Target: at most 30 s.
* PSS of the whole process tree (launcher, Mosquitto, fork server, HMU processes),
  sampled every 0.25 s from ``/proc/<pid>/smaps_rollup``; the peak is reported.
  Proportional set size splits each shared page between the processes sharing it,
  so the copy-on-write pages HMU processes share with the fork server are counted
  once. Target: at most 6 GB.
* clean exit: exit code 0, every HMU recorded ``done``, no process left 10 s later.

Run: ``.venv/bin/python -m bench.processes_scale [--hmus 50]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import psutil

from bench.inprocess import default_dataset

ROOT = Path(__file__).resolve().parents[1]


def tree_pss(root: psutil.Process) -> tuple[int, int]:
    """Total PSS (bytes) of ``root`` and its descendants, and how many processes."""
    total = count = 0
    try:
        members = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    for member in members:
        try:
            total += member.memory_full_info().pss
            count += 1
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total, count


def log_time(run_log: Path, needle: str) -> datetime:
    for line in run_log.read_text().splitlines():
        if needle in line:
            return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    raise SystemExit(f"{run_log}: no line with {needle!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hmus", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    env = {**os.environ, "IOMT_DATASET": str(default_dataset())}
    with tempfile.TemporaryDirectory() as out:
        cmd = [
            sys.executable, "-m", "iomt.scenarios.cli", "run",
            str(ROOT / "scenarios/quickstart.yaml"), "--out", out, "--processes",
            "--set", f"federation.hmus={args.hmus}",
            "--set", f"federation.clients_per_round={args.hmus}",
            "--set", f"federation.rounds={args.rounds}",
            "--set", "federation.online_timeout_s=120",
        ]  # fmt: skip
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        root = psutil.Process(proc.pid)
        peak = peak_count = 0
        seen: list[psutil.Process] = []
        while proc.poll() is None:
            pss, count = tree_pss(root)
            if pss > peak:
                peak, peak_count = pss, count
            try:
                seen.extend(p for p in root.children(recursive=True) if p not in seen)
            except psutil.NoSuchProcess:
                pass
            time.sleep(0.25)
        wall = time.perf_counter() - started
        if proc.returncode:
            sys.stderr.write(proc.stderr.read().decode())
        time.sleep(10)
        left = [p for p in seen if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        (run_dir,) = Path(out).iterdir()
        online = log_time(run_dir / "run.log", "round 1: invited") - log_time(
            run_dir / "run.log", "broker: "
        )
        results = json.loads((run_dir / "results.json").read_text())
        states = [h.get("state") for h in results["hmus"].values()]
    gb = 1024**3
    print(f"--processes, {args.hmus} HMUs, {args.rounds} rounds: exit {proc.returncode}, "
          f"wall {wall:.1f} s, {os.cpu_count()} cores")  # fmt: skip
    print(f"  all online after {online.total_seconds():.1f} s (target <= 30 s)")
    print(f"  peak PSS of the process tree: {peak / gb:.2f} GB over {peak_count} processes "
          f"(target <= 6 GB)")  # fmt: skip
    print(f"  HMUs recorded done: {states.count('done')}/{len(states)}; "
          f"processes left 10 s after exit: {len(left)}")  # fmt: skip
    print(f"  completed: {results['completed']}; accuracy {results['final']['accuracy']:.4f}")


if __name__ == "__main__":
    main()
