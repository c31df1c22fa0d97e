"""``iomt field-kit``: the kit's broker config starts a real Mosquitto with TLS on loopback,
the generated units' own ExecStart lines run a server and three HMUs over mqtts to a
finished run, and a wrong password or a foreign CA is refused."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml

from iomt.broker.mosquitto import find_mosquitto
from iomt.broker.ports import free_port
from iomt.broker.tls import make_ca_and_server_cert
from iomt.scenarios.field_kit import KitSettings, unit_command, write_kit
from iomt.scenarios.schema import validate_scenario
from tests.integration.test_run import iomt

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(find_mosquitto() is None, reason="the kit's broker is Mosquitto"),
]
HMUS = ["hmu-01", "hmu-02", "hmu-03"]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def connack(port: int, ca: Path, user: str, password: str) -> int | None:
    """The broker's CONNACK reason code for a TLS client trusting ``ca`` (None: none)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"probe-{user}")
    client.username_pw_set(user, password)
    client.tls_set(ca_certs=str(ca), tls_version=ssl.PROTOCOL_TLS_CLIENT)
    codes: list[int] = []
    client.on_connect = lambda c, u, f, rc, p: codes.append(rc.value)
    client.connect("127.0.0.1", port)
    deadline = time.monotonic() + 5
    while not codes and time.monotonic() < deadline:
        client.loop(timeout=0.1)
    client.disconnect()
    if client.socket() is not None:
        client.socket().close()
    return codes[0] if codes else None


def tls_refused(port: int, ca: Path) -> bool:
    """Whether a client trusting only ``ca`` refuses the broker's certificate."""
    context = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port)) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="127.0.0.1"):
                return False
        except ssl.SSLCertVerificationError:
            return True


@pytest.fixture
def kit(tmp_path: Path, dataset_path: Path) -> tuple[Path, KitSettings]:
    scenario = validate_scenario({
        "name": "kit", "seed": 5, "data": {"dataset": str(dataset_path)},
        "federation": {"hmus": 3, "clients_per_round": 3, "rounds": 2, "round_deadline_s": 30},
        "training": {"epochs": 1}, "metrics": {"resources_interval_s": 0},
    })  # fmt: skip
    root = tmp_path / "kit"
    settings = KitSettings(
        "trial-7", "127.0.0.1", free_port(), listen="127.0.0.1", prefix=root,
        python=sys.executable, broker_user="root", runs_dir=tmp_path / "runs",
    )  # fmt: skip
    return write_kit(scenario, HMUS, root, settings), settings


def test_the_kits_units_run_a_trial_over_mqtts(kit, tmp_path: Path) -> None:
    root, settings = kit
    for secret in [root / "broker/passwd", root / "broker/tls/server.key",
                   *root.glob("*/**/credentials.yaml")]:  # fmt: skip
        assert secret.stat().st_mode & 0o077 == 0, secret
    creds = yaml.safe_load((root / "hmus/hmu-02/credentials.yaml").read_text())
    assert set(creds) == {"hmu-02"}  # each device holds its own password only
    broker = subprocess.Popen(
        [find_mosquitto(), "-c", str(root / "broker/mosquitto.conf")], stderr=subprocess.DEVNULL
    )
    agents: list[subprocess.Popen] = []
    try:
        wait_for_port(settings.port)
        ca = root / "broker/tls/ca.crt"
        password = creds["hmu-02"]
        assert connack(settings.port, ca, "hmu-02", "not-the-password") not in (0, None)
        assert connack(settings.port, ca, "hmu-02", password) == 0
        assert not tls_refused(settings.port, ca)
        assert tls_refused(settings.port, make_ca_and_server_cert(tmp_path / "other").ca_cert)
        server = subprocess.Popen(unit_command(root / "server/iomt-server.service"),
                                  stderr=subprocess.PIPE, text=True)  # fmt: skip
        agents = [server] + [
            subprocess.Popen(unit_command(root / "hmus" / h / "iomt-hmu@.service", h),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for h in HMUS
        ]  # fmt: skip
        _, err = server.communicate(timeout=180)
        assert server.returncode == 0, err
        for proc in agents[1:]:
            out, err = proc.communicate(timeout=30)
            assert proc.returncode == 0 and "trained 2 rounds" in out, err
    finally:
        for proc in (*agents, broker):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    results = json.loads((tmp_path / "runs" / "trial-7" / "results.json").read_text())
    assert results["completed"] and all(r["received"] == HMUS for r in results["rounds"])
    assert results["broker"]["tls"] is True


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_the_units_pass_systemd_analyze_verify(kit, tmp_path: Path) -> None:
    root, _ = kit
    units = tmp_path / "units"
    units.mkdir()
    shutil.copy(root / "server/iomt-server.service", units / "iomt-server.service")
    shutil.copy(root / "hmus/hmu-01/iomt-hmu@.service", units / "iomt-hmu@hmu-01.service")
    for unit in sorted(units.iterdir()):
        proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                              text=True)  # fmt: skip
        complaints = [x for x in proc.stderr.splitlines() if unit.name.split("@")[0] in x]
        assert complaints == [], complaints


def test_the_cli_writes_a_kit_and_names_a_bad_hmu(tmp_path: Path, dataset_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"name: s\nfederation: {{hmus: 4, clients_per_round: 4}}\n"
                        f"data: {{dataset: {dataset_path}}}\n")  # fmt: skip
    proc = iomt("field-kit", "--scenario", str(scenario), "--hmus", "hmu-01..hmu-04",
                "--broker-host", "broker.local", "--out", str(tmp_path / "kit"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "kit/install-pi.sh").stat().st_mode & 0o111
    assert "mqtts://broker.local:8883" in (tmp_path / "kit/server/iomt-server.service").read_text()
    bad = iomt("field-kit", "--scenario", str(scenario), "--hmus", "hmu-09",
               "--broker-host", "b", "--out", str(tmp_path / "k2"))  # fmt: skip
    assert bad.returncode == 2 and "hmu-09 is not an HMU" in bad.stderr
    fog = iomt("field-kit", "--scenario", str(scenario), "--hmus", "hmu-01", "--broker-host",
               "b", "--out", str(tmp_path / "k3"), "--set", "topology.fog_nodes=2")  # fmt: skip
    assert fog.returncode == 2 and "topology.fog_nodes 2" in fog.stderr
    assert not (tmp_path / "k3").exists()
