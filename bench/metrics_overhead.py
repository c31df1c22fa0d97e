"""Wall time of the FedQ scenario with the InfluxDB sink on and off (target: within 3 %).

Starts a VictoriaMetrics (Debian ``victoria-metrics``, which accepts the InfluxDB v2
write API) on 127.0.0.1, then runs ``scenarios/fedq.yaml`` in-process alternately with
``metrics.enabled: false`` and with the sink writing to VictoriaMetrics (and the
run's ``metrics.lp``), and prints the median wall time of each and their ratio.

Run: ``.venv/bin/python -m bench.metrics_overhead [--repeat N] [--rounds R]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench.inprocess import default_dataset
from iomt.scenarios.launcher import launch
from iomt.scenarios.schema import load_scenario
from tests.monitoring.victoria import VictoriaMetrics, find_victoria_metrics

ROOT = Path(__file__).resolve().parents[1]


def wall_time(overrides: list[str]) -> tuple[float, dict]:
    scenario = load_scenario(ROOT / "scenarios" / "fedq.yaml", overrides)
    with tempfile.TemporaryDirectory() as out:
        results = asyncio.run(launch(scenario, Path(out))).results
    return results["wall_time_s"], results.get("metrics", {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    binary = find_victoria_metrics()
    if binary is None:
        sys.exit("needs victoria-metrics: apt-get install victoria-metrics")
    vm = VictoriaMetrics(binary).start()
    try:
        os.environ.update(
            IOMT_INFLUX_URL=vm.url,
            IOMT_INFLUX_ORG="iomt",
            IOMT_INFLUX_BUCKET="iomt",
            IOMT_INFLUX_TOKEN="bench",
        )
        base = [f"data.dataset={default_dataset()}", f"federation.rounds={args.rounds}"]
        wall_time([*base, "federation.rounds=1"])  # build the replay cache, warm the OS caches
        off, on, written = [], [], 0
        for i in range(args.repeat):
            off.append(wall_time([*base, "metrics.enabled=false"])[0])
            seconds, stats = wall_time(base)
            on.append(seconds)
            written += stats.get("influx_written", 0)
            print(f"  run {i + 1}: sink off {off[-1]:.2f} s, sink on {on[-1]:.2f} s", flush=True)
        a, b = statistics.median(off), statistics.median(on)
        print(f"FedQ scenario ({args.rounds} rounds), median wall time: sink off {a:.2f} s, "
              f"sink on (InfluxDB v2 API + metrics.lp) {b:.2f} s")  # fmt: skip
        print(f"overhead: {100 * (b / a - 1):+.1f} % (target within 3 %); "
              f"{written} points written to VictoriaMetrics")  # fmt: skip
    finally:
        vm.stop()


if __name__ == "__main__":
    main()
