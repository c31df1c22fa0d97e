"""Every HMU of a run as its own OS process (``iomt hmu``), the server in this one."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from iomt.broker import BrokerHandle
from iomt.orphans import reap_with_me
from iomt.scenarios.setups import RunParts
from iomt.server_agent.setup import ServerOutcome

log = logging.getLogger(__name__)


def write_secret_file(path: Path, values: dict[str, str]) -> Path:
    """An owner-only YAML mapping (passwords, enrolment secrets) for agents' own processes."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(values, fh)
    return path


def _secrets_dir(directory: Path) -> Path:
    path = directory / "secrets"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def write_credentials(directory: Path, handle: BrokerHandle, agent: str, *also: str) -> Path:
    """``secrets/<agent>.credentials.yaml``: the broker password of ``agent`` (and of the
    agents in ``also`` that it runs beside itself, as the server runs the QKD channel),
    owner-only.  Each agent's process gets its own file, never anyone else's password."""
    passwords = {a: handle.credentials[a].password for a in (agent, *also)}
    return write_secret_file(_secrets_dir(directory) / f"{agent}.credentials.yaml", passwords)


def write_enrolment(
    directory: Path, enrolment: dict[str, bytes], agent: str, hmus: Iterable[str]
) -> Path:
    """``secrets/<agent>.enrolment.yaml``: the enrolment secrets (hex) of ``hmus``, owner-only:
    an HMU gets its own, the server every HMU's."""
    values = {h: enrolment[h].hex() for h in hmus}
    return write_secret_file(_secrets_dir(directory) / f"{agent}.enrolment.yaml", values)


def agent_command(
    role: str,
    scenario_file: Path,
    run_id: str,
    handle: BrokerHandle,
    creds: Path,
    enrolment: Path | None = None,
    broker_url: str | None = None,
) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "iomt.scenarios.cli",
        role,
        "--scenario",
        str(scenario_file),
        "--run-id",
        run_id,
        "--broker-url",
        broker_url or handle.url,
        "--credentials",
        str(creds),
    ]
    if enrolment is not None:
        cmd += ["--enrolment", str(enrolment)]
    if handle.ca_file is not None:
        cmd += ["--ca-file", str(handle.ca_file)]
    return cmd


async def run_processes(run: RunParts) -> tuple[ServerOutcome, dict[str, Any]]:
    """Each HMU as its own OS process; the server stays here so progress can be shown."""
    run_dir, handle = run.run_dir, run.handle
    qkd = run.scenario.qkd.enabled
    scenario_file = run_dir / "scenario.yaml"
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = run_dir / "agents"
    logs.mkdir(exist_ok=True)
    try:
        for hmu in run.scenario.hmu_ids:
            proxy = run.eves.get(hmu)
            url = f"mqtt://{proxy.host}:{proxy.port}" if proxy is not None else None
            creds = write_credentials(run_dir, handle, hmu)
            enrolment = write_enrolment(run_dir, run.enrolment, hmu, [hmu]) if qkd else None
            cmd = [
                *agent_command("hmu", scenario_file, run.run_id, handle, creds, enrolment, url),
                "--id",
                hmu,
            ]
            with (logs / f"{hmu}.log").open("wb") as out:
                procs[hmu] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
            reap_with_me(procs[hmu].pid)
        outcome = await run.server().run()
        deadline = time.monotonic() + 15.0
        report: dict[str, Any] = {}
        for hmu, proc in procs.items():
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            report[hmu] = {
                "state": "done" if proc.returncode == 0 else "failed",
                "exit": proc.returncode,
            }
        return outcome, report
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
