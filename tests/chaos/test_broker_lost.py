"""The broker killed mid-round: restarted and nothing lost; gone for good: a clear, failed run."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from iomt.broker import BrokerConfig, MosquittoBroker
from iomt.scenarios.agent_commands import agent_command, write_credentials
from iomt.scenarios.launcher import launch
from iomt.scenarios.schema import scenario_yaml, validate_scenario
from iomt.server_agent.checkpoint import read_checkpoint
from iomt.wire.topics import SERVER_ID

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def scenario(dataset: Path):
    return validate_scenario(
        {
            "name": "broker-lost",
            "seed": 6,
            "federation": {"hmus": 3, "clients_per_round": 3, "rounds": 4},
            "training": {"epochs": 300},  # about a second of training per round
            "data": {"dataset": str(dataset), "limit": 3000},
            "metrics": {"enabled": False},
        }
    )


def test_a_broker_killed_mid_round_is_restarted_and_no_update_is_lost(
    dataset_path: Path, tmp_path: Path
) -> None:
    undisturbed = asyncio.run(launch(scenario(dataset_path), tmp_path / "calm"))
    storm = tmp_path / "storm"
    killed: list[int] = []

    def kill_the_broker_in_round_three(record: dict) -> None:
        if record["round"] != 2:
            return

        def kill() -> None:  # this run's broker only, not the session's shared ones
            for child in psutil.Process().children(recursive=True):
                try:
                    if child.name() == "mosquitto" and str(storm) in " ".join(child.cmdline()):
                        child.kill()
                        killed.append(child.pid)
                except psutil.Error:  # another run's broker exiting meanwhile: not ours
                    continue

        threading.Timer(0.3, kill).start()  # while the HMUs train round 3

    disturbed = asyncio.run(
        launch(scenario(dataset_path), storm, on_round=kill_the_broker_in_round_three)
    )
    assert killed
    results = disturbed.results
    assert results["completed"] is True
    assert [len(r["received"]) for r in results["rounds"]] == [3, 3, 3, 3]
    calm = read_checkpoint(undisturbed.run_dir).weights
    storm = read_checkpoint(disturbed.run_dir).weights
    for key in calm:  # the same updates in every round: the same model (float32 sums)
        np.testing.assert_allclose(storm[key], calm[key], rtol=0, atol=1e-6)
    log = (disturbed.run_dir / "run.log").read_text()
    assert "restarting it on port" in log and "reconnected to the broker" in log


def test_a_broker_that_never_comes_back_ends_the_run_as_not_completed(
    dataset_path: Path, tmp_path: Path
) -> None:
    """A field trial's broker (nobody restarts it) dies: the server gives up after
    broker.reconnect_s, says so in one line and results.json, and every agent exits."""
    hmus = ["hmu-01", "hmu-02"]
    run_id = "gone"
    sc = validate_scenario(
        {
            "name": "gone",
            "seed": 1,
            "federation": {"hmus": 2, "clients_per_round": 2, "rounds": 50},
            "training": {"epochs": 1},
            "data": {"dataset": str(dataset_path), "limit": 2000},
            "broker": {"reconnect_s": 1},
            "metrics": {"resources_interval_s": 0},
        }
    )
    scenario_file = tmp_path / "gone.yaml"
    scenario_file.write_text(scenario_yaml(sc))
    external = MosquittoBroker(BrokerConfig(), tmp_path / "broker", run_id, hmus)
    handle = external.start()
    out = tmp_path / "runs"
    procs: list[subprocess.Popen] = []
    try:
        server_creds = write_credentials(tmp_path, handle, SERVER_ID)
        server = subprocess.Popen(
            [*agent_command("server", scenario_file, run_id, handle, server_creds),
             "--out", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        procs.append(server)
        for h in hmus:
            cmd = agent_command("hmu", scenario_file, run_id, handle,
                                write_credentials(tmp_path, handle, h))  # fmt: skip
            procs.append(subprocess.Popen([*cmd, "--id", h], stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 120
        while not (out / run_id / "checkpoints" / "state.json").exists():
            assert time.monotonic() < deadline and server.poll() is None
            time.sleep(0.1)
        assert external.pid is not None
        os.kill(external.pid, signal.SIGKILL)
        _, err = server.communicate(timeout=60)
        for proc in procs[1:]:
            proc.wait(timeout=30)  # the HMUs give up too
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        external.stop()
    assert server.returncode == 3, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "did not come back within 1 s" in lines[0]
    results = json.loads((out / run_id / "results.json").read_text())
    assert results["completed"] is False and "broker.reconnect_s" in results["reason"]
    assert 1 <= len(results["rounds"]) < 50
