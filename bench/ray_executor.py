"""HMU agents on a Ray cluster against the in-process launcher: round time, one run.

Starts a local two-node Ray cluster (``iomt.scenarios.ray_local``: a head and a second
node, each ``ray start`` from this environment), then runs ``scenarios/fedavg.yaml``
with 100 HMUs, K = 20 per round, as a user would: ``iomt run --executor in-process`` and
``iomt run --executor ray --address HEAD`` alternately, ``--repeats`` times each.  Each
run is a real Mosquitto and a real server; in the Ray runs each node's host task serves
its 50 HMUs (one MQTT session each, only the selected ones train).

Round time is the median of the rounds' ``duration_s`` from ``results.json``
(invitations out to the new global model), rounds 2.. (round 1 pays the training
workers' start); the ratio is Ray's median over the in-process median.

Target (issue 16): Ray within 1.5x of in-process.

Run: ``.venv/bin/python -m bench.ray_executor [--hmus 100] [--rounds 8] [--repeats 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.inprocess import default_dataset
from iomt.scenarios.ray_local import local_cluster

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.5


def one_run(executor: list[str], hmus: int, rounds: int, env: dict[str, str]) -> dict:
    """``iomt run`` of fedavg.yaml with ``executor``'s options; its results and wall time."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "iomt.scenarios.cli", "run",
                   str(ROOT / "scenarios" / "fedavg.yaml"), "--out", out,
                   "--set", f"federation.hmus={hmus}", "--set", f"federation.rounds={rounds}",
                   *executor]  # fmt: skip
        started = time.perf_counter()
        proc = subprocess.run(command, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            sys.exit(f"{' '.join(executor)}: exit {proc.returncode}: {proc.stderr.strip()[-400:]}")
        (path,) = Path(out).glob("*/results.json")
        results = json.loads(path.read_text())
    durations = [r["duration_s"] for r in results["rounds"][1:]]
    nodes = {h.get("ray_node") for h in results["hmus"].values()} - {None}
    return {"rounds": durations, "wall": wall, "k": len(results["rounds"][-1]["selected"]),
            "nodes": len(nodes), "accuracy": results["final"]["accuracy"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hmus", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    env = {**os.environ, "IOMT_DATASET": str(default_dataset())}
    runs: dict[str, list[dict]] = {"in-process": [], "ray": []}
    with local_cluster(nodes=2) as cluster:
        print(f"local Ray cluster at {cluster.address}: 2 nodes", flush=True)
        executors = {"in-process": ["--executor", "in-process"],
                     "ray": ["--executor", "ray", "--address", cluster.address]}  # fmt: skip
        for repeat in range(args.repeats):
            for name, options in executors.items():
                run = one_run(options, args.hmus, args.rounds, env)
                runs[name].append(run)
                middle = statistics.median(run["rounds"])
                line = f"{name} #{repeat + 1}: round median {middle:.3f} s"
                print(
                    f"{line}, wall {run['wall']:.1f} s, accuracy {run['accuracy']:.4f}", flush=True
                )
    print(f"\n{args.hmus} HMUs, K = {runs['ray'][0]['k']}, rounds 2..{args.rounds},"
          f" {args.repeats} runs each, interleaved")  # fmt: skip
    print("| executor | nodes | round s (median) | wall s (mean) |")
    print("|---|---|---|---|")
    median = {}
    for name, done in runs.items():
        median[name] = statistics.median(d for run in done for d in run["rounds"])
        wall = statistics.fmean(run["wall"] for run in done)
        nodes = done[0]["nodes"] or 1
        print(f"| {name} | {nodes} | {median[name]:.3f} | {wall:.1f} |")
    ratio = median["ray"] / median["in-process"]
    verdict = "met" if ratio <= TARGET else "NOT met"
    print(f"\nray / in-process round time: {ratio:.2f}x (target <= {TARGET}x: {verdict})")


if __name__ == "__main__":
    main()
