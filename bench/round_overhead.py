"""Round overhead of the MQTT testbed against the same work done in one process.

For K = 5, 20 and 50 HMUs (all selected every round) it runs the testbed in-process
over a real Mosquitto with the full codec, and ``bench/inprocess.py``'s FedAvg loop
(same training settings, same data, both cores, no MQTT), and prints the median wall
time per round of each and their ratio. Targets: ratio <= 1.25 at K = 20, <= 1.4 at
K = 50. The first round of a run is left out of the median (pool and torch warm-up).

Run: ``.venv/bin/python -m bench.round_overhead [--rounds N] [--ks 5,20,50]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

from bench.inprocess import default_dataset, prepare_split, run_inprocess
from iomt.fedlearn.config import TrainingConfig
from iomt.scenarios.launcher import launch
from iomt.scenarios.schema import validate_scenario


def mqtt_round_seconds(k: int, rounds: int, dataset: Path) -> list[float]:
    scenario = validate_scenario(
        {
            "name": f"overhead-k{k}",
            "seed": 1,
            "federation": {"hmus": k, "clients_per_round": k, "rounds": rounds},
            "data": {"dataset": str(dataset)},
        }
    )
    with tempfile.TemporaryDirectory() as out:
        output = asyncio.run(launch(scenario, Path(out)))
    return [r["duration_s"] for r in output.results["rounds"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--ks", default="5,20,50")
    parser.add_argument("--dataset", type=Path, default=default_dataset())
    args = parser.parse_args()
    cfg = TrainingConfig()
    print(f"rounds per run: {args.rounds} (median of rounds 2..{args.rounds}); {cfg!r}")
    print(f"{'K':>4} {'mqtt s/round':>13} {'in-process s/round':>19} {'ratio':>7}")
    for k in (int(x) for x in args.ks.split(",")):
        mqtt = statistics.median(mqtt_round_seconds(k, args.rounds, args.dataset)[1:])
        base = run_inprocess(prepare_split(args.dataset, k), args.rounds, cfg, mode="process")
        local = statistics.median(base.round_seconds[1:])
        print(f"{k:>4} {mqtt:>13.3f} {local:>19.3f} {mqtt / local:>7.2f}", flush=True)


if __name__ == "__main__":
    main()
