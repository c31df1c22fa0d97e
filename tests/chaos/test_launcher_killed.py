"""A launcher killed with SIGKILL mid-run leaves no process behind (broker, HMUs, workers),
and ``iomt run --resume`` then finishes the run with the undisturbed run's final model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from iomt.server_agent.checkpoint import read_checkpoint

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCENARIO = """\
name: killed
seed: 2
federation: {hmus: 3, clients_per_round: 3, rounds: 200}
training: {epochs: 1}
metrics: {resources_interval_s: 0}
"""


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_for(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("shape", ["in-process", "processes"])
def test_no_child_outlives_a_killed_launcher(
    shape: str, dataset_path: Path, tmp_path: Path
) -> None:
    path = tmp_path / "killed.yaml"
    path.write_text(SCENARIO + f"data: {{dataset: {dataset_path}, limit: 2000}}\n")
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "iomt.scenarios.cli", "run", str(path), "--out", str(out)]
    if shape == "processes":
        cmd.append("--processes")
    launcher = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # mid-run: a round is checkpointed and every HMU is up
        assert wait_for(lambda: any(out.glob("*/checkpoints/state.json")), 120)
        parent = psutil.Process(launcher.pid)
        family = parent.children(recursive=True)
        names = " ".join(" ".join(p.cmdline()) for p in family)
        assert "mosquitto" in names
        if shape == "processes":  # HMU processes are forked from the fork server
            server = [p for p in parent.children() if "forkserver" in " ".join(p.cmdline())]
            assert len(server) == 1
            assert sum(p.ppid() == server[0].pid for p in family) == 3
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait()
        assert wait_for(lambda: not any(alive(p) for p in family), 10.0), [
            " ".join(p.cmdline()) for p in family if alive(p)
        ]
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()


RESUMED = """\
name: resumed
seed: 3
federation: {hmus: 4, clients_per_round: 2, rounds: 30}
training: {epochs: 1}
defence: {aggregator: trust, screening: {enabled: true}}
compression: {kind: topk}
metrics: {resources_interval_s: 0}
"""


def iomt(*args: str) -> list[str]:
    return [sys.executable, "-m", "iomt.scenarios.cli", *args]


def test_a_killed_run_resumes_to_the_undisturbed_final_model(
    dataset_path: Path, tmp_path: Path
) -> None:
    """Client selection, trust ledger, optimiser moments and compression residuals all
    carry over; tolerance 1e-6 (float32 training on one thread is deterministic)."""
    path = tmp_path / "resumed.yaml"
    path.write_text(RESUMED + f"data: {{dataset: {dataset_path}, limit: 2000}}\n")
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    subprocess.run(iomt("run", str(path), "--out", str(whole), "--processes"), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)  # fmt: skip
    launcher = subprocess.Popen(iomt("run", str(path), "--out", str(broken), "--processes"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    def checkpointed(rounds: int) -> bool:
        states = list(broken.glob("*/checkpoints/state.json"))
        return bool(states) and json.loads(states[0].read_text())["round"] >= rounds

    try:
        assert wait_for(lambda: checkpointed(3), 120)
        family = psutil.Process(launcher.pid).children(recursive=True)
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait()
        assert wait_for(lambda: not any(alive(p) for p in family), 10.0)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    (run_dir,) = broken.iterdir()
    killed_at = json.loads((run_dir / "checkpoints" / "state.json").read_text())["round"]
    assert killed_at < 30, "the run finished before it was killed: make it longer"
    done = subprocess.run(iomt("run", "--resume", str(run_dir), "--processes"),
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = json.loads((run_dir / "results.json").read_text())
    reference = json.loads(next(whole.glob("*/results.json")).read_text())
    assert results["completed"] and results["resumed_after_round"] == killed_at
    assert [r["round"] for r in results["rounds"]] == list(range(1, 31))
    assert [r["selected"] for r in results["rounds"]] == [
        r["selected"] for r in reference["rounds"]
    ]
    expected = read_checkpoint(next(whole.iterdir())).weights
    for name, value in read_checkpoint(run_dir).weights.items():
        np.testing.assert_allclose(value, expected[name], atol=1e-6)
    assert results["final"]["accuracy"] == pytest.approx(reference["final"]["accuracy"], abs=1e-9)


def test_a_completed_run_is_not_resumed(dataset_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "short.yaml"
    path.write_text(SCENARIO.replace("rounds: 200", "rounds: 1")
                    + f"data: {{dataset: {dataset_path}, limit: 2000}}\n")  # fmt: skip
    subprocess.run(iomt("run", str(path), "--out", str(tmp_path / "o")), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)  # fmt: skip
    (run_dir,) = (tmp_path / "o").iterdir()
    again = subprocess.run(iomt("run", "--resume", str(run_dir)), capture_output=True, text=True)
    assert again.returncode == 2
    assert again.stderr.strip().endswith("the run completed; there is nothing to resume")
    assert "Traceback" not in again.stderr
