"""Time to establish QKD keys for 20 HMUs over MQTT (target: at most 3 s).

Runs ``scenarios/fedq.yaml`` for one round in-process over a real Mosquitto with the
channel agent: every HMU sends its B92 states through the channel agent, the server
post-processes each session over authenticated topics, and both sides derive their
AES-256-GCM keys. The figure is the time from the key requests to the last session's
outcome, as the server records it (``qkd_keying_s`` in results.json). Each key is
also far longer than the 256 bits AES-256 needs.

Run: ``.venv/bin/python -m bench.qkd_keys [--repeat N]``
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    overrides = [
        f"data.dataset={default_dataset()}",
        "federation.rounds=1",
        "traffic.source=csv",
    ]
    scenario = load_scenario(ROOT / "scenarios" / "fedq.yaml", overrides)
    times, key_bits = [], []
    for i in range(args.repeat):
        scenario = scenario.model_copy(update={"seed": i + 1})
        with tempfile.TemporaryDirectory() as out:
            results = asyncio.run(launch(scenario, Path(out))).results
        times.append(results["qkd_keying_s"][0])
        key_bits += [q["final_key_bits"] for q in results["qkd"].values()]
        print(f"  run {i + 1}: {times[-1]:.2f} s for {len(results['qkd'])} HMUs", flush=True)
    print(f"keys for 20 HMUs over MQTT: median {statistics.median(times):.2f} s (target <= 3 s)")
    print(f"final key bits per HMU: min {min(key_bits)}, median {statistics.median(key_bits):.0f}")


if __name__ == "__main__":
    main()
