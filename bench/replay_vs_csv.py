"""IDS quality on replayed-traffic features against CSV features, on the same split.

Runs ``scenarios/fedavg.yaml`` (20 HMUs, K = 20) twice per seed, once with
``traffic.source: csv`` and once with ``traffic.source: replay`` (every flow rebuilt as
packets, written to per-HMU pcaps and measured back), and prints both figures. The
split and partition are the same for both (they derive from the seed). Target: the
replayed-feature IDS within 1 point of accuracy of the CSV-feature IDS.

Run: ``.venv/bin/python -m bench.replay_vs_csv [--seeds N] [--rounds R]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

from bench.inprocess import default_dataset
from iomt.scenarios.launcher import launch
from iomt.scenarios.schema import load_scenario

ROOT = Path(__file__).resolve().parents[1]


def final(source: str, seed: int, rounds: int) -> dict:
    overrides = [
        f"data.dataset={default_dataset()}",
        f"traffic.source={source}",
        f"seed={seed}",
        f"federation.rounds={rounds}",
        "metrics.enabled=false",
    ]
    scenario = load_scenario(ROOT / "scenarios" / "fedavg.yaml", overrides)
    with tempfile.TemporaryDirectory() as out:
        return asyncio.run(launch(scenario, Path(out))).results["final"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    gaps = []
    print(f"{'seed':>4} {'csv acc':>8} {'replay acc':>10} {'csv mF1':>8} {'replay mF1':>10}")
    for seed in range(1, args.seeds + 1):
        csv, replay = final("csv", seed, args.rounds), final("replay", seed, args.rounds)
        gaps.append(100 * (csv["accuracy"] - replay["accuracy"]))
        print(f"{seed:>4} {csv['accuracy']:>8.4f} {replay['accuracy']:>10.4f} "
              f"{csv['macro_f1']:>8.4f} {replay['macro_f1']:>10.4f}", flush=True)  # fmt: skip
    print(f"accuracy gap csv - replay: mean {statistics.fmean(gaps):+.2f} points, "
          f"largest {max(gaps, key=abs):+.2f} (target within 1 point)")  # fmt: skip


if __name__ == "__main__":
    main()
