"""A launcher killed with SIGKILL mid-run leaves no process behind: broker, HMUs, workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

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
        if shape == "processes":
            assert sum("hmu" in p.cmdline() for p in family) == 3
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait()
        assert wait_for(lambda: not any(alive(p) for p in family), 10.0), [
            " ".join(p.cmdline()) for p in family if alive(p)
        ]
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
