"""``iomt field-kit``: everything a field trial's broker host, server host and Pis need.

From a scenario and the HMUs of the trial it writes one directory (``KIT``)::

    KIT/README.txt                  what to copy where, and the commands to start
    KIT/install-pi.sh               the same pinned packages as setup.sh, in /opt/iomt
    KIT/broker/mosquitto.conf       TLS listener only (mqtts), no anonymous clients
    KIT/broker/passwd, acl          Mosquitto password hashes and the per-agent ACL
    KIT/broker/tls/                 a CA certificate and the broker's certificate and key
    KIT/server/                     scenario.yaml, credentials (server and QKD channel),
                                    enrolment (every HMU's), ca.crt, iomt-server.service
    KIT/hmus/<id>/                  scenario.yaml, its own credentials and enrolment
                                    secret, ca.crt; and iomt-hmu@.service, one template
                                    for every Pi (``systemctl enable iomt-hmu@hmu-03``)

Every file holding a secret is owner-only. Paths inside the files are where the kit is
installed (``prefix``, default ``/etc/iomt``): copy ``KIT/broker`` to
``<prefix>/broker`` on the broker host, ``KIT/server`` to ``<prefix>/server``, and
``KIT/hmus/<id>`` to ``<prefix>/hmus/<id>`` on that HMU's Pi. The CA's private key is
never written: the kit's certificate is the only one it signs (valid 30 days; a site
with its own CA replaces the three files in ``broker/tls`` and every ``ca.crt``).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from iomt.broker.acl import acl_for_run
from iomt.broker.credentials import make_credentials, render_password_file
from iomt.broker.files import agent_ids, write_acl, write_private
from iomt.broker.tls import make_ca_and_server_cert
from iomt.scenarios.agent_commands import write_secret_file
from iomt.scenarios.schema import Scenario, scenario_yaml
from iomt.scenarios.setups import make_enrolment
from iomt.wire.topics import CHANNEL_ID, SERVER_ID

SERVICE_USER = "iomt"


@dataclass(frozen=True)
class KitSettings:
    """Where the trial's broker is and where the kit is installed."""

    run_id: str
    broker_host: str
    port: int = 8883
    listen: str = ""
    """The address the broker listens on ('': every interface)."""
    prefix: Path = Path("/etc/iomt")
    python: str = "/opt/iomt/venv/bin/python"
    broker_user: str = "mosquitto"
    runs_dir: Path = Path("/var/lib/iomt/runs")

    @property
    def url(self) -> str:
        host = f"[{self.broker_host}]" if ":" in self.broker_host else self.broker_host
        return f"mqtts://{host}:{self.port}"


def write_kit(scenario: Scenario, hmus: list[str], kit: Path, settings: KitSettings) -> Path:
    """Write the field kit for ``hmus`` of ``scenario`` into ``kit`` (see the module doc)."""
    kit.mkdir(parents=True, exist_ok=True)
    rules = acl_for_run(settings.run_id, hmus)
    credentials = make_credentials(dict.fromkeys([*agent_ids(hmus), *rules]))
    secrets = make_enrolment(hmus) if scenario.qkd.enabled else {}
    broker = kit / "broker"
    tls = make_ca_and_server_cert(broker / "tls", settings.broker_host)
    write_private(broker / "passwd", render_password_file(credentials))
    write_acl(broker / "acl", rules)
    write_private(broker / "mosquitto.conf", broker_conf(settings), mode=0o644)
    text = scenario_yaml(scenario)
    ca = tls.ca_cert.read_bytes()
    places = {SERVER_ID: kit / "server", **{h: kit / "hmus" / h for h in hmus}}
    for agent, place in places.items():
        place.mkdir(parents=True, exist_ok=True)
        (place / "scenario.yaml").write_text(text, encoding="utf-8")
        (place / "ca.crt").write_bytes(ca)
        own = [SERVER_ID, CHANNEL_ID] if agent == SERVER_ID else [agent]
        write_secret_file(place / "credentials.yaml", {a: credentials[a].password for a in own})
        if secrets:
            mine = secrets if agent == SERVER_ID else {agent: secrets[agent]}
            write_secret_file(place / "enrolment.yaml", {h: s.hex() for h, s in mine.items()})
    qkd = bool(secrets)
    write_private(kit / "server" / "iomt-server.service", server_unit(settings, qkd), 0o644)
    unit = hmu_unit(settings, qkd)
    for hmu in hmus:
        write_private(kit / "hmus" / hmu / "iomt-hmu@.service", unit, 0o644)
    write_private(kit / "install-pi.sh", INSTALL_PI, 0o755)
    write_private(kit / "README.txt", kit_readme(settings, hmus), 0o644)
    return kit


def broker_conf(settings: KitSettings) -> str:
    """The broker host's ``mosquitto.conf``: one TLS listener, passwords and the ACL."""
    base = settings.prefix / "broker"
    return "\n".join([
        f"# iomt-testbed field trial {settings.run_id}: copy to {base}/mosquitto.conf",
        "per_listener_settings false",
        "allow_anonymous false",
        f"user {settings.broker_user}",
        f"password_file {base}/passwd",
        f"acl_file {base}/acl",
        "persistence false",
        f"listener {settings.port}{f' {settings.listen}' if settings.listen else ''}",
        f"cafile {base}/tls/ca.crt",
        f"certfile {base}/tls/server.crt",
        f"keyfile {base}/tls/server.key",
        "tls_version tlsv1.2",
        "connection_messages true",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "",
    ])  # fmt: skip


def agent_args(settings: KitSettings, role: str, place: Path, qkd: bool) -> list[str]:
    """The ``iomt`` command line of one agent, its files under ``place``."""
    args = [
        settings.python, "-m", "iomt.scenarios.cli", role,
        "--scenario", str(place / "scenario.yaml"), "--run-id", settings.run_id,
        "--broker-url", settings.url, "--credentials", str(place / "credentials.yaml"),
        "--ca-file", str(place / "ca.crt"),
    ]  # fmt: skip
    return args + (["--enrolment", str(place / "enrolment.yaml")] if qkd else [])


def _unit(description: str, exec_start: list[str]) -> str:
    return "\n".join([
        "[Unit]",
        f"Description={description}",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"User={SERVICE_USER}",
        f"ExecStart={shlex.join(exec_start)}",
        "Restart=on-failure",
        "RestartSec=5",
        "NoNewPrivileges=true",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ])  # fmt: skip


def server_unit(settings: KitSettings, qkd: bool) -> str:
    args = agent_args(settings, "server", settings.prefix / "server", qkd)
    return _unit(f"iomt-testbed FL server, trial {settings.run_id}",
                 [*args, "--out", str(settings.runs_dir)])  # fmt: skip


def hmu_unit(settings: KitSettings, qkd: bool) -> str:
    """One template for every Pi: the instance name is the HMU id (``%i``)."""
    args = agent_args(settings, "hmu", settings.prefix / "hmus" / "%i", qkd)
    return _unit(f"iomt-testbed HMU %i, trial {settings.run_id}", [*args, "--id", "%i"])


def unit_command(unit: Path, instance: str = "") -> list[str]:
    """A unit's ``ExecStart`` as an argument list, ``%i`` read as ``instance``."""
    (line,) = [x for x in unit.read_text().splitlines() if x.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart=").replace("%i", instance))


def kit_readme(settings: KitSettings, hmus: list[str]) -> str:
    p = settings.prefix
    return f"""iomt-testbed field kit, trial {settings.run_id}, broker {settings.url}

Broker host (Mosquitto 2): copy broker/ to {p}/broker, then
    chown -R {settings.broker_user} {p}/broker && mosquitto -c {p}/broker/mosquitto.conf
Server host: run install-pi.sh (any Debian or Raspberry Pi OS), copy server/ to
{p}/server, then
    cp {p}/server/iomt-server.service /etc/systemd/system/ && systemctl enable --now iomt-server
Each Pi ({", ".join(hmus)}): run install-pi.sh, copy hmus/<id>/ to {p}/hmus/<id>, then
    cp {p}/hmus/<id>/iomt-hmu@.service /etc/systemd/system/
    systemctl enable --now iomt-hmu@<id>
Secret files (credentials.yaml, enrolment.yaml, broker/passwd, broker/tls/server.key)
are owner-only: keep them so (chown {SERVICE_USER}) when you copy them.
"""


INSTALL_PI = """#!/usr/bin/env bash
# Install iomt-testbed for a field trial on Raspberry Pi OS (64-bit) or Debian:
# the service user, Mosquitto's client libraries, and a virtual environment in
# /opt/iomt/venv with the same pinned packages as setup.sh. Run as root, from a copy
# of the iomt-testbed project: sudo ./install-pi.sh /path/to/iomt-testbed
set -euo pipefail
project=${1:?give the path of the iomt-testbed project}
id -u iomt >/dev/null 2>&1 || useradd --system --home /var/lib/iomt --create-home iomt
apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv
python3 -m venv /opt/iomt/venv
if [ "$(uname -m)" = aarch64 ]; then  # PyPI's aarch64 torch is a CUDA build
  /opt/iomt/venv/bin/pip install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
else
  /opt/iomt/venv/bin/pip install -q torch==2.13.0
fi
/opt/iomt/venv/bin/pip install -q "$project"
install -d -o iomt -g iomt /var/lib/iomt/runs
echo "installed: /opt/iomt/venv/bin/python -m iomt.scenarios.cli --help"
"""
