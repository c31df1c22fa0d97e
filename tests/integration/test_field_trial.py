"""A field trial's shape: every agent its own `iomt` process against one broker, with QKD."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from iomt.broker import start_broker
from iomt.scenarios.agent_commands import agent_command, write_credentials, write_enrolment
from iomt.scenarios.schema import scenario_yaml, validate_scenario
from iomt.scenarios.setups import make_enrolment
from iomt.wire.topics import CHANNEL_ID, SERVER_ID

pytestmark = pytest.mark.integration


def trial(tmp_path: Path, dataset: Path, name: str, seed: int, hmus: int, **extra: object):
    """A small trial's scenario and the file every agent of it reads."""
    scenario = validate_scenario(
        {
            "name": name,
            "seed": seed,
            "federation": {
                "hmus": hmus,
                "clients_per_round": hmus,
                "rounds": 2,
                "round_deadline_s": 30,
            },  # fmt: skip
            "training": {"epochs": 1},
            "data": {"dataset": str(dataset)},
            "metrics": {"resources_interval_s": 0},
            **extra,
        }
    )
    scenario_file = tmp_path / f"{name}.yaml"
    scenario_file.write_text(scenario_yaml(scenario))
    return scenario, scenario_file


async def test_standalone_server_and_hmus_key_and_train(tmp_path: Path, dataset_path: Path):
    qkd = {"enabled": True, "qubits": 131072, "depolarising": 0.005}
    scenario, scenario_file = trial(tmp_path, dataset_path, "trial", 2, 2, qkd=qkd)
    hmus = ["hmu-01", "hmu-02"]
    async with start_broker(scenario.broker, tmp_path, "trial-1", hmus) as handle:
        secrets = make_enrolment(hmus)
        creds = write_credentials(tmp_path, handle, SERVER_ID, CHANNEL_ID)
        enrolment = write_enrolment(tmp_path, secrets, SERVER_ID, hmus)
        base = agent_command("server", scenario_file, "trial-1", handle, creds, enrolment)
        server = subprocess.Popen([*base, "--out", str(tmp_path / "runs")], stderr=subprocess.PIPE)
        agents = [
            subprocess.Popen(
                [
                    *agent_command(
                        "hmu",
                        scenario_file,
                        "trial-1",
                        handle,
                        write_credentials(tmp_path, handle, h),
                        write_enrolment(tmp_path, secrets, h, [h]),
                    ),
                    "--id",
                    h,
                ],
                stderr=subprocess.PIPE,
            )
            for h in hmus
        ]
        try:
            _, err = server.communicate(timeout=180)
            assert server.returncode == 0, err.decode()
            for proc in agents:
                _, err = proc.communicate(timeout=30)
                assert proc.returncode == 0, err.decode()
        finally:
            for proc in (server, *agents):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    results = json.loads((tmp_path / "runs" / "trial-1" / "results.json").read_text())
    assert results["mode"] == "server-only" and results["completed"]
    assert all(results["qkd"][h]["status"] == "accepted" for h in hmus)
    assert all(r["received"] == hmus for r in results["rounds"])
    assert results["qkd"]["hmu-01"]["link"]["sessions"] == 1


async def test_many_hmus_per_process_with_one_command_per_machine(tmp_path: Path, dataset_path):
    scenario, scenario_file = trial(tmp_path, dataset_path, "hosts", 4, 6)
    hmus = scenario.hmu_ids
    async with start_broker(scenario.broker, tmp_path, "hosts-1", hmus) as handle:
        creds = write_credentials(tmp_path, handle, SERVER_ID)
        server = subprocess.Popen(
            [*agent_command("server", scenario_file, "hosts-1", handle, creds), "--out",
             str(tmp_path / "runs")], stderr=subprocess.PIPE,
        )  # fmt: skip
        machines = {"hmu-01..hmu-04": hmus[:4], "hmu-05,hmu-06": hmus[4:]}
        hosts = [
            subprocess.Popen(
                [
                    *agent_command(
                        "hmu",
                        scenario_file,
                        "hosts-1",
                        handle,
                        write_credentials(tmp_path, handle, *members),
                    ),
                    "--ids",
                    spec,
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            for spec, members in machines.items()
        ]
        try:
            _, err = server.communicate(timeout=180)
            assert server.returncode == 0, err.decode()
            for proc, members in zip(hosts, machines.values(), strict=True):
                out, err = proc.communicate(timeout=30)
                assert proc.returncode == 0, err
                assert [line.split(":")[0] for line in out.splitlines()] == members
                assert all("trained 2 rounds" in line for line in out.splitlines())
        finally:
            for proc in (server, *hosts):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    results = json.loads((tmp_path / "runs" / "hosts-1" / "results.json").read_text())
    assert results["completed"] and all(r["received"] == hmus for r in results["rounds"])
