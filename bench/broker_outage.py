"""The broker down for 2 s mid-run: updates lost and wall time against an undisturbed run.

Runs the same scenario twice in one process over the launcher's own Mosquitto
(``iomt.scenarios.launcher.launch``, what ``iomt run`` calls): once undisturbed, once
with the broker SIGKILLed during round 3's training and kept down for ``--down``
seconds before the launcher's watchdog restarts it (the outage is injected by holding
the restart back; everything else is the code users run).  Prints the updates each
round received, whether the final models are equal, and the extra wall time.
Targets: 0 updates lost; at most 5 s longer than undisturbed for a 2 s outage.

Run: ``.venv/bin/python -m bench.broker_outage [--down 2] [--hmus 10] [--rounds 6]``
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from bench.inprocess import default_dataset
from iomt.broker.mosquitto import MosquittoBroker
from iomt.scenarios.launcher import launch
from iomt.scenarios.schema import validate_scenario


def scenario(dataset: Path, hmus: int, rounds: int):
    return validate_scenario(
        {
            "name": "outage",
            "seed": 3,
            "federation": {"hmus": hmus, "clients_per_round": hmus, "rounds": rounds},
            "training": {"epochs": 2},
            "data": {"dataset": str(dataset)},
            "metrics": {"enabled": False},
        }
    )


def run(dataset: Path, hmus: int, rounds: int, out: Path, down_s: float | None) -> tuple:
    restart = MosquittoBroker.restart_async

    async def delayed_restart(self: MosquittoBroker) -> None:
        await asyncio.sleep(down_s or 0.0)  # the broker stays down this long
        await restart(self)

    def kill_in_round_three(record: dict) -> None:
        if down_s is None or record["round"] != 2:
            return

        def kill() -> None:
            for child in psutil.Process().children(recursive=True):
                if child.name() == "mosquitto" and str(out) in " ".join(child.cmdline()):
                    child.kill()

        threading.Timer(0.1, kill).start()

    MosquittoBroker.restart_async = delayed_restart  # type: ignore[method-assign]
    try:
        started = time.perf_counter()
        output = asyncio.run(
            launch(scenario(dataset, hmus, rounds), out, on_round=kill_in_round_three)
        )
        wall = time.perf_counter() - started
    finally:
        MosquittoBroker.restart_async = restart  # type: ignore[method-assign]
    with np.load(output.run_dir / "checkpoints" / "global.npz") as saved:
        weights = {k: saved[k] for k in saved.files}
    return output.results, wall, weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--down", type=float, default=2.0, help="seconds the broker stays down")
    parser.add_argument("--hmus", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--dataset", type=Path, default=default_dataset())
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        calm, calm_s, calm_w = run(args.dataset, args.hmus, args.rounds, Path(tmp, "calm"), None)
        storm, storm_s, storm_w = run(
            args.dataset, args.hmus, args.rounds, Path(tmp, "storm"), args.down
        )
    expected = args.hmus * args.rounds
    got = sum(len(r["received"]) for r in storm["rounds"])
    same = all(np.allclose(calm_w[k], storm_w[k], rtol=0, atol=1e-6) for k in calm_w)
    print(
        f"{args.hmus} HMUs, {args.rounds} rounds, broker SIGKILLed in round 3, down {args.down:g} s"
    )
    print(f"  updates received: {got} of {expected} (lost: {expected - got})")
    print(f"  completed: {storm['completed']}; final model equal to undisturbed: {same}")
    print(f"  wall time: undisturbed {calm_s:.1f} s, with the outage {storm_s:.1f} s "
          f"(+{storm_s - calm_s:.1f} s; target <= +5 s)")  # fmt: skip


if __name__ == "__main__":
    main()
