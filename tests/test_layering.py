"""Pure cores import no I/O: no asyncio, MQTT clients, subprocesses or packet capture."""

import subprocess
import sys

import pytest

CORES = [
    "wire.codec",
    "wire.envelope",
    "wire.messages",
    "wire.frame",
    "wire.topics",
    "server_agent.coordinator",
    "hmu_agent.session",
    "fedlearn.partition",
    "fedlearn.aggregate",
    "fedlearn.scaling",
    "scenarios.schema",
    "qkd_channel.channel",
    "qkd_channel.alice",
    "qkd_channel.bob",
    "qkd_channel.driver",
    "qkd_channel.simulation",
    "qkd_channel.config",
    "qkd_channel.transport",
    "wire.aead",
    "wire.link_cipher",
    "traffic.readings",
    "traffic.plan",
    "traffic.timing",
    "traffic.flow",
    "traffic.features",
    "traffic.batch",
    "traffic.truth",
    "traffic.synthetic",
    "monitoring.point",
    "monitoring.measurements",
    "monitoring.config",
    "monitoring.forwarder",
    "monitoring.broker_stats",
    "adversary",
    "adversary.mqtt_codec",
    "adversary.policy",
    "adversary.config",
    "hmu_agent.local_update",
]
# I/O, and the heavy optional parts that only their own edges may load
IO_MODULES = [
    "asyncio",
    "aiomqtt",
    "paho",
    "subprocess",
    "influxdb_client",
    "scapy",
    "qiskit",
    "qiskit_aer",
    "psutil",
    "matplotlib",
]


@pytest.mark.parametrize("module", CORES)
def test_core_imports_no_io_module(module):
    probe = (
        f"import sys, importlib; importlib.import_module({module!r}); "
        f"print(','.join(m for m in {IO_MODULES!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{module} pulls in {out.stdout.strip()}"
