"""What the comparison benches share: FedQ's run (``scenarios/fedavg.yaml``, K = 20,
E = 2) in several variants over the launcher's own Mosquitto, as ``iomt run`` runs it,
and their command line (``--seed``, ``--rounds``, ``--skip-runs``)."""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.inprocess import default_dataset
from iomt.scenarios.launcher import launch
from iomt.scenarios.schema import load_scenario

ROOT = Path(__file__).resolve().parents[1]


def fedq_variants(seed: int, rounds: int, variants: dict[str, list[str]]) -> dict[str, Any]:
    """``results.json`` of ``fedavg.yaml`` at E = 2 with each variant's ``--set`` items."""
    sets = ["training.epochs=2", f"federation.rounds={rounds}", f"seed={seed}",
            f"data.dataset={default_dataset()}", "metrics.resources_interval_s=0"]  # fmt: skip
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in variants.items():
            scenario = load_scenario(ROOT / "scenarios" / "fedavg.yaml", [*sets, *extra])
            folder = Path(tmp) / re.sub(r"\W+", "_", name)
            out[name] = asyncio.run(launch(scenario, folder)).results
    return out


def main(doc: str, first: Callable[[], None], runs: Callable[[int, int], None]) -> None:
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--skip-runs", action="store_true")
    args = parser.parse_args()
    first()
    if not args.skip_runs:
        runs(args.seed, args.rounds)
