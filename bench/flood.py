"""A flood of 10,000 messages from one HMU's credentials: honest updates, accuracy, isolation.

Runs the same scenario twice over the launcher's own Mosquitto
(``iomt.scenarios.launcher.launch``, what ``iomt run`` calls): with ``attacks.flood``
sending ``--messages`` random 4 KB payloads on the flooder's update topic from its
first invitation, and with the same attack sending 0 messages (the clean run: the same
HMU never trains, so both runs aggregate the same honest updates).  Prints honest
updates lost, final accuracy of both runs and whether the models are equal, how long
after its first message the flooder was isolated at the broker, the books of the
flooder's messages, and how many log lines the refusals took.
Targets: 0 honest updates lost; accuracy identical; isolated within 2 s.

Run: ``.venv/bin/python -m bench.flood [--messages 10000] [--hmus 10] [--rounds 6]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path

import numpy as np

from bench.inprocess import default_dataset
from iomt.scenarios.launcher import launch
from iomt.scenarios.schema import validate_scenario
from iomt.server_agent.checkpoint import read_checkpoint


def scenario(dataset: Path, hmus: int, rounds: int, messages: int):
    return validate_scenario(
        {
            "name": "flood",
            "seed": 3,
            "federation": {
                "hmus": hmus,
                "clients_per_round": hmus,
                "rounds": rounds,
                "round_deadline_s": 5,
            },
            "training": {"epochs": 2},
            "attacks": {"flood": {"hmu": f"hmu-{hmus:02d}", "messages": messages}},
            "data": {"dataset": str(dataset)},
            "metrics": {"resources_interval_s": 0},
        }  # fmt: skip
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--hmus", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    dataset = default_dataset()
    flooder = f"hmu-{args.hmus:02d}"
    with tempfile.TemporaryDirectory() as out:
        runs = {
            m: asyncio.run(launch(scenario(dataset, args.hmus, args.rounds, m), Path(out) / str(m)))
            for m in (args.messages, 0)
        }
        flood, clean = runs[args.messages], runs[0]
        r = flood.results
        honest = args.hmus - 1
        lost = sum(
            honest - len([h for h in rnd["received"] if h != flooder]) for rnd in r["rounds"]
        )
        clean_w = read_checkpoint(clean.run_dir).weights
        equal = all(
            np.array_equal(v, clean_w[k]) for k, v in read_checkpoint(flood.run_dir).weights.items()
        )
        report = r["hmus"][flooder]["flood"]
        isolated = r["isolations"].get(flooder, {})
        lines = sum(
            flooder in line and "rejected" in line
            for line in (flood.run_dir / "run.log").read_text().splitlines()
        )
    books = r["books"]["updates"][flooder]
    print(f"flood of {args.messages} messages from {flooder}: {args.hmus} HMUs, "
          f"{args.rounds} rounds, E = 2, {os.cpu_count()} cores")  # fmt: skip
    print(f"  honest updates lost: {lost} of {honest * args.rounds} (target 0)")
    print(f"  final accuracy: flooded {r['final']['accuracy']:.4f}, clean "
          f"{clean.results['final']['accuracy']:.4f}; models identical: {equal}")  # fmt: skip
    if isolated:
        after = isolated["at"] - report["started_at"]
        print(f"  flooder isolated at the broker {after:.2f} s after its first message "
              f"(target <= 2 s); flood took {report['seconds']:.2f} s")  # fmt: skip
    else:
        print("  flooder NOT isolated")
    print(f"  books: sent {report['sent']} = let in {books['received']} + denied "
          f"{books['denied']}; let in = passed on {books['sent']} + dropped {books['dropped']}"
          f"; passed on = refused {books['refused']} + accepted {books['accepted']}; "
          f"balanced: {r['books']['flood']['balanced']}")  # fmt: skip
    print(f"  broker dropping episodes: {r['books']['dropping']}; refusal log lines: {lines}")
    print(f"  wall time: flooded {r['wall_time_s']:.1f} s, clean "
          f"{clean.results['wall_time_s']:.1f} s (the clean run waits out each round's "
          "deadline for the silent HMU)")  # fmt: skip


if __name__ == "__main__":
    main()
