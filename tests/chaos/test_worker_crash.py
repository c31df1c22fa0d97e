"""A training worker killed mid-round, and a run whose rounds get no update: never silent."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from iomt.scenarios.in_process import TrainingPool
from iomt.scenarios.launcher import launch
from iomt.scenarios.schema import validate_scenario

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def scenario(dataset: Path, **federation: object):
    return validate_scenario(
        {
            "name": "chaos",
            "seed": 4,
            "federation": {
                "hmus": 3,
                "clients_per_round": 3,
                "rounds": 3,
                # a round takes about 5 s here; four times that for slower or busier machines
                "round_deadline_s": 20,
                **federation,
            },
            # seconds of training per task: the kill lands mid-training, never while a worker
            # writes its result (a result cut in half deadlocks CPython's process pool)
            "training": {"epochs": 800},
            "data": {"dataset": str(dataset), "limit": 3000},
            "metrics": {"enabled": False},
        }
    )


def test_a_killed_worker_fails_its_round_visibly_and_later_rounds_train(
    dataset_path: Path, tmp_path: Path
) -> None:
    pool = TrainingPool(2)
    killed: list[int] = []

    def kill_a_worker_during_round_two(record: dict) -> None:
        if record["round"] != 1:
            return

        def kill() -> None:
            pid = pool.worker_pids()[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

        threading.Timer(0.5, kill).start()

    try:
        output = asyncio.run(
            launch(
                scenario(dataset_path, min_updates=0),
                tmp_path,
                executor=pool,
                on_round=kill_a_worker_during_round_two,
            )
        )
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    results = output.results
    assert killed and pool.replaced == 1
    first, second, third = results["rounds"]
    assert len(first["received"]) == 3
    assert len(second["received"]) < 3  # the updates in flight were lost ...
    failed = {h for h, r in results["hmus"].items() if "2" in r["failures"]}
    assert failed == set(second["selected"]) - set(second["received"])  # ... and say so
    for hmu in failed:
        report = results["hmus"][hmu]
        assert "training worker lost" in report["failures"]["2"]
        assert report["rounds_trained"] == 2  # rounds 1 and 3, not the lost one
    assert len(third["received"]) == 3  # a new pool trains the next round
    assert results["completed"] is True


def test_a_run_whose_rounds_get_no_update_exits_non_zero(
    dataset_path: Path, tmp_path: Path
) -> None:
    path = tmp_path / "diverging.yaml"
    path.write_text(
        "name: diverging\nseed: 1\n"
        "federation: {hmus: 2, clients_per_round: 2, rounds: 3, round_deadline_s: 5}\n"
        "training: {epochs: 1, learning_rate: 1.0e+300}\n"  # every update overflows to inf
        f"data: {{dataset: {dataset_path}, limit: 2000}}\n"
    )
    out = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "iomt.scenarios.cli", "run", str(path), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "min_updates" in proc.stderr.splitlines()[-1]
    (run_dir,) = out.iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["completed"] is False
    assert results["rounds"][0]["received"] == []
    assert len(results["rounds"]) == 1  # it stopped at the first empty round
    assert results["rejected"].get("DecodeError", 0) == 2  # the overflowed updates
