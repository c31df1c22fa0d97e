"""Round overhead of the MQTT testbed against the same work done in one process.

For each K (all HMUs selected every round) it runs the testbed in-process over a real
Mosquitto with the full codec (``iomt.scenarios.launcher.launch``, what ``iomt run``
calls), and ``bench/inprocess.py``'s loop (the HMUs' ``train_local`` in a process pool
plus the server's FedAvg, same data and settings, both cores, no MQTT), and prints the
median wall time per round of each and their ratio.  The first round of a run is left
out (pool and torch warm-up); the in-process bound is the median over ``--repeats``
runs.  Targets: ratio <= 1.25 at K = 20 and <= 1.4 at K = 50, at FedQ's E = 2 and
at the default E = 8.

Run: ``.venv/bin/python -m bench.round_overhead [--rounds N] [--ks 5,20,50]
[--epochs 2,8] [--repeats 3] [--json]``; ``--json`` prints one object per (K, E) with
``k``, ``epochs``, ``mqtt_median``, ``inproc_median`` and ``ratio``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
from pathlib import Path

from bench.inprocess import default_dataset, prepare_split, run_inprocess
from iomt.fedlearn.config import TrainingConfig
from iomt.scenarios.launcher import launch
from iomt.scenarios.schema import validate_scenario


def mqtt_round_seconds(k: int, rounds: int, epochs: int, dataset: Path) -> list[float]:
    """Per-round wall times of one ``iomt run`` of K HMUs over a real Mosquitto."""
    scenario = validate_scenario(
        {
            "name": f"overhead-k{k}",
            "seed": 1,
            "federation": {"hmus": k, "clients_per_round": k, "rounds": rounds},
            "training": {"epochs": epochs},
            "data": {"dataset": str(dataset)},
        }
    )
    with tempfile.TemporaryDirectory() as out:
        output = asyncio.run(launch(scenario, Path(out)))
    return [r["duration_s"] for r in output.results["rounds"]]


def measure(k: int, epochs: int, rounds: int, repeats: int, dataset: Path) -> dict[str, float]:
    """Median s/round over MQTT and of the in-process bound (median of ``repeats`` runs)."""
    mqtt = statistics.median(mqtt_round_seconds(k, rounds, epochs, dataset)[1:])
    split = prepare_split(dataset, k)
    cfg = TrainingConfig(epochs=epochs)
    bounds = [
        statistics.median(run_inprocess(split, rounds, cfg, mode="process").round_seconds[1:])
        for _ in range(repeats)
    ]
    local = statistics.median(bounds)
    return {
        "k": k,
        "epochs": epochs,
        "mqtt_median": round(mqtt, 4),
        "inproc_median": round(local, 4),
        "ratio": round(mqtt / local, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--ks", default="5,20,50")
    parser.add_argument("--epochs", default="2,8", help="local epochs, comma-separated")
    parser.add_argument("--repeats", type=int, default=3, help="in-process runs per setting")
    parser.add_argument("--dataset", type=Path, default=default_dataset())
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args()
    if not args.json:
        print(f"rounds per run: {args.rounds} (median of rounds 2..{args.rounds})")
        print(f"{'K':>4} {'E':>3} {'mqtt s/round':>13} {'in-process s/round':>19} {'ratio':>7}")
    for epochs in (int(x) for x in args.epochs.split(",")):
        for k in (int(x) for x in args.ks.split(",")):
            row = measure(k, epochs, args.rounds, args.repeats, args.dataset)
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                print(
                    f"{k:>4} {epochs:>3} {row['mqtt_median']:>13.3f}"
                    f" {row['inproc_median']:>19.3f} {row['ratio']:>7.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
