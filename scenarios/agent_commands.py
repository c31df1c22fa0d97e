"""Files and command lines for agents run as their own ``iomt server`` / ``iomt hmu`` processes
(field trials, and tests that drive the command line)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path

import yaml

from iomt.broker import BrokerHandle

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
