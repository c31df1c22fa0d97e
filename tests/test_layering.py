"""Pure cores import no I/O: no asyncio, MQTT clients, subprocesses or packet capture."""

import subprocess
import sys

import pytest

CORES = [
    "iomt.wire.codec",
    "iomt.wire.envelope",
    "iomt.wire.messages",
    "iomt.wire.frame",
    "iomt.wire.topics",
    "iomt.broker.url",
    "iomt.scenarios.yaml_guard",
    "iomt.refusals",
    "iomt.server_agent.coordinator",
    "iomt.hmu_agent.session",
    "iomt.fedlearn.partition",
    "iomt.fedlearn.strategy",
    "iomt.fedlearn.robust",
    "iomt.fedlearn.privacy",
    "iomt.fedlearn.compression",
    "iomt.fedlearn.screening",
    "iomt.fedlearn.trust",
    "iomt.fedlearn.pipeline",
    "iomt.server_agent.events",
    "iomt.server_agent.rounds",
    "iomt.server_agent.decoding",
    "iomt.fedlearn.scaling",
    "iomt.scenarios.schema",
    "iomt.qkd_channel.channel",
    "iomt.qkd_channel.backends",
    "iomt.qkd_channel.alice",
    "iomt.qkd_channel.bob",
    "iomt.qkd_channel.driver",
    "iomt.qkd_channel.simulation",
    "iomt.qkd_channel.config",
    "iomt.qkd_channel.transport",
    "iomt.wire.aead",
    "iomt.wire.link_cipher",
    "iomt.traffic.readings",
    "iomt.traffic.plan",
    "iomt.traffic.timing",
    "iomt.traffic.flow",
    "iomt.traffic.features",
    "iomt.traffic.batch",
    "iomt.traffic.truth",
    "iomt.traffic.synthetic",
    "iomt.monitoring.point",
    "iomt.monitoring.measurements",
    "iomt.monitoring.config",
    "iomt.monitoring.forwarder",
    "iomt.monitoring.broker_stats",
    "adversary",
    "iomt.adversary.mqtt_codec",
    "iomt.adversary.policy",
    "iomt.adversary.config",
    "iomt.hmu_agent.local_update",
    "iomt.adversary.fog_attack",
    "iomt.server_agent.fog_tier",
    "iomt.broker.topology",
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
