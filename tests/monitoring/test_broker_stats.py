"""The broker's $SYS counters, parsed alone and read from a real Mosquitto."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from iomt.broker.ports import accepts_connections, free_port
from iomt.monitoring.broker_stats import SYS_FILTER, SYS_TOPICS, BrokerStats
from iomt.monitoring.measurements import MEASUREMENTS
from iomt.wire.bus import Bus


def test_counters_are_parsed_and_others_ignored() -> None:
    stats = BrokerStats()
    assert stats.point() is None
    assert stats.observe("$SYS/broker/clients/connected", b"4")
    assert stats.observe("$SYS/broker/bytes/sent", b"123456")
    assert not stats.observe("$SYS/broker/uptime", b"12 seconds")
    assert not stats.observe("$SYS/broker/messages/sent", b"lots")
    point = stats.point(time_ns=7)
    assert point is not None and point.measurement == "broker" and point.time_ns == 7
    assert point.fields == {"clients_connected": 4, "bytes_sent": 123456}
    assert set(SYS_TOPICS.values()) == set(MEASUREMENTS["broker"])


@pytest.fixture
def sys_broker(tmp_path: Path) -> Iterator[int]:
    """A Mosquitto whose ACL grants anonymous clients ``read $SYS/broker/#``, every second."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(binary):
        pytest.fail("needs Mosquitto: apt-get install mosquitto", pytrace=False)
    port = free_port()
    (tmp_path / "acl").write_text(f"topic read {SYS_FILTER}\ntopic readwrite probe/#\n")
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        f"acl_file {tmp_path / 'acl'}",
        "sys_interval 1",
        "persistence false",
    ]
    if os.geteuid() == 0:
        lines.append("user root")  # the pytest temp dir is private to root
    (tmp_path / "mosquitto.conf").write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([binary, "-c", str(tmp_path / "mosquitto.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not accepts_connections("127.0.0.1", port):
            assert proc.poll() is None and time.monotonic() < deadline, "mosquitto did not start"
            time.sleep(0.02)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


async def test_counters_come_from_a_real_broker(sys_broker: int) -> None:
    stats = BrokerStats()
    kwargs = {"hostname": "127.0.0.1", "port": sys_broker, "identifier": "sys-reader"}
    async with Bus(kwargs) as bus:
        await bus.subscribe(SYS_FILTER)
        for _ in range(20):
            await bus.publish("probe/x", b"y" * 1000, qos=0)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            delivery = await bus.receive(timeout=0.2)
            if delivery is not None:
                stats.observe(delivery.topic, delivery.payload)
            values = stats.values
            if values.get("messages_received", 0) >= 20 and values.get("bytes_received", 0) > 2e4:
                break
    point = stats.point()
    assert point is not None
    assert point.fields["clients_connected"] >= 1
    assert point.fields["messages_received"] >= 20
    assert point.fields["bytes_received"] > 20_000
