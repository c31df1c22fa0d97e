"""Metrics from the field: HMU -> MQTT metrics topic -> forwarder -> sink -> VictoriaMetrics."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from iomt.broker import BrokerHandle, client_kwargs
from iomt.errors import DecodeError, ProtocolViolation
from iomt.monitoring import measurements as m
from iomt.monitoring.config import InfluxTarget, MetricsConfig
from iomt.monitoring.forwarder import ForwardLimits, MetricsForwarder
from iomt.monitoring.point import encode, parse_line
from iomt.monitoring.publisher import MqttMetricsPublisher, payloads_of, to_payloads
from iomt.monitoring.sink import MetricsSink
from iomt.wire import topics
from iomt.wire.bus import Bus
from tests.broker_fixtures import SESSION_RUN_ID
from tests.monitoring.victoria import VictoriaMetrics

RUN = "run-7"


def payload(*points: m.Point, tags: dict[str, str] | None = None) -> bytes:
    return b"".join(payloads_of(points, tags=tags or {"run": RUN, "scenario": "theirs"}))


def test_accepts_own_points_and_retags_them() -> None:
    now = time.time_ns()
    fwd = MetricsForwarder(RUN)
    points = fwd.accept(
        "hmu-01",
        payload(
            m.hmu_training("hmu-01", 3, loss=0.5, samples=10, train_s=0.2, time_ns=now),
            m.resources("hmu-01", cpu_percent=3.0, rss_bytes=100, time_ns=now + 1),
            m.security_event("tampered", round=3, time_ns=now + 2),  # no hmu tag: the sender's
        ),
        now_ns=now,
    )
    assert [p.measurement for p in points] == ["hmu_training", "resources", "security"]
    assert all(p.tags == {"hmu": "hmu-01"} for p in points)  # run/scenario are the server's
    assert points[0].fields == {"round": 3, "loss": 0.5, "samples": 10, "train_s": 0.2}
    assert [p.time_ns for p in points] == [now, now + 1, now + 2]


def _refused(fwd: MetricsForwarder, data: bytes, error: type[Exception], now: int) -> None:
    with pytest.raises(error):
        fwd.accept("hmu-01", data, now_ns=now)


def test_refuses_whole_payloads_that_break_a_rule() -> None:
    now = time.time_ns()
    fwd = MetricsForwarder(RUN, limits=ForwardLimits(max_bytes=2000, max_lines=5))
    good = m.resources("hmu-01", cpu_percent=1.0, rss_bytes=1, time_ns=now)
    other = m.resources("hmu-02", cpu_percent=1.0, rss_bytes=1, time_ns=now)
    _refused(fwd, payload(good, other), ProtocolViolation, now)  # another HMU's tag
    _refused(fwd, payload(good, tags={"run": "run-8"}), ProtocolViolation, now)  # another run
    round_point = m.fl_round(1, accuracy=1, precision=1, recall=1, f1=1, loss=0, duration_s=1,
                             bytes_up=1, bytes_down=1, time_ns=now)  # fmt: skip
    _refused(fwd, payload(round_point), ProtocolViolation, now)  # server-only measurement
    _refused(fwd, b"resources,hmu=hmu-01 bogus=1.0 %d\n" % now, ProtocolViolation, now)
    _refused(fwd, b"resources,hmu=hmu-01 rss_bytes=1.5 %d\n" % now, DecodeError, now)  # int field
    _refused(fwd, b'resources,hmu=hmu-01 cpu_percent="high" %d\n' % now, DecodeError, now)
    _refused(fwd, b"resources,hmu=hmu-01,ward=7 cpu_percent=1.0 %d\n" % now, ProtocolViolation, now)
    _refused(fwd, b"resources,hmu=hmu-01 cpu_percent=1.0\n", DecodeError, now)  # no timestamp
    _refused(fwd, payload(good._replace(time_ns=now - 10**15)), ProtocolViolation, now)  # skew
    _refused(fwd, b"\xff\xfe", DecodeError, now)
    _refused(fwd, b"resources,hmu=hmu-01 cpu_percent\n", DecodeError, now)
    _refused(fwd, b"\n \n", DecodeError, now)
    _refused(fwd, b"x" * 2001, DecodeError, now)
    _refused(fwd, payload(*[good] * 6), DecodeError, now)  # 6 lines > 5


def test_handle_counts_refusals_by_reason_and_never_raises() -> None:
    got: list[m.Point] = []
    fwd = MetricsForwarder(RUN, emit=got.append)
    now = time.time_ns()
    ok = payload(m.resources("hmu-01", cpu_percent=1.0, rss_bytes=1, time_ns=now))
    assert fwd.handle(topics.metrics(RUN, "hmu-01"), ok, now) == 1
    assert fwd.handle(topics.metrics(RUN, "hmu-02"), ok, now) == 0  # hmu-01's tag
    assert fwd.handle(topics.metrics(RUN, "hmu-02"), b"garbage", now) == 0
    assert fwd.handle(topics.update(RUN, "hmu-01"), ok, now) == 0
    assert fwd.handle("iomt/run-7/metrics/HMU 1", ok, now) == 0
    assert len(got) == 1 and fwd.accepted == 1
    assert fwd.rejected == {"ProtocolViolation": 3, "DecodeError": 1}


def test_payloads_respect_the_size_limits() -> None:
    lines = [f"m x={i}.0 {i}" for i in range(100)]
    payloads, skipped = to_payloads([*lines, "m y=" + "1" * 300 + ".0 1"], max_bytes=200,
                                    max_lines=7)  # fmt: skip
    assert skipped == 1
    assert all(len(p) <= 200 and p.count(b"\n") <= 7 for p in payloads)
    assert b"".join(payloads).decode().splitlines() == lines


async def test_field_metrics_travel_over_mosquitto_into_victoria_metrics(
    mosquitto_broker: BrokerHandle, victoria: VictoriaMetrics, tmp_path: Path
) -> None:
    """hmu-01 publishes 1,500 points; hmu-02's forgeries are refused or never delivered."""
    run, scenario, n = SESSION_RUN_ID, "forwarding-test", 1500
    server_sink = MetricsSink(
        tags={"run": run, "scenario": scenario},
        file=tmp_path / "metrics.lp",
        influx=InfluxTarget(url=victoria.url, org="o", bucket="b"),
    )
    forwarder = MetricsForwarder(run, emit=server_sink.emit)
    publisher = MqttMetricsPublisher(topics.metrics(run, "hmu-01"), max_payload_bytes=4096)
    hmu_sink = MetricsSink(tags={"run": run, "scenario": "hmu-view"}, publisher=publisher,
                           config=MetricsConfig(flush_interval_ms=20))  # fmt: skip
    t0 = time.time_ns() - 5_000_000_000
    async with (
        Bus(client_kwargs(mosquitto_broker, topics.SERVER_ID, identifier="fwd-server")) as server,
        Bus(client_kwargs(mosquitto_broker, "hmu-01", identifier="fwd-hmu-01")) as hmu,
        Bus(client_kwargs(mosquitto_broker, "hmu-02", identifier="fwd-hmu-02")) as rogue,
    ):
        await server.subscribe(topics.metrics_filter(run))
        stop = asyncio.Event()
        pump = asyncio.create_task(publisher.pump(hmu.publish, stop, interval_s=0.05))
        for i in range(n):
            hmu_sink.emit(m.hmu_training("hmu-01", i, loss=i / n, samples=i, train_s=0.01,
                                         time_ns=t0 + i * 1_000_000))  # fmt: skip
        forged = encode(m.resources("hmu-01", cpu_percent=99.0, rss_bytes=1, time_ns=t0), {})
        await rogue.publish(topics.metrics(run, "hmu-02"), forged.encode())  # refused: tag
        await rogue.publish(topics.metrics(run, "hmu-02"), b"\x00not line protocol")  # refused
        await rogue.publish(topics.metrics(run, "hmu-01"), forged.encode())  # ACL drops it
        await hmu_sink.aclose()
        stop.set()
        await pump
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            forwarder.accepted < n or sum(forwarder.rejected.values()) < 2
        ):
            delivery = await server.receive(timeout=0.5)
            if delivery is not None:
                forwarder.handle(delivery.topic, delivery.payload, time.time_ns())
        extra = await server.receive(timeout=0.3)  # the ACL-dropped forgery must not arrive
    stats = server_sink.close()
    assert extra is None
    assert publisher.published_payloads > 1 and publisher.dropped == 0
    assert forwarder.accepted == n
    assert forwarder.rejected == {"ProtocolViolation": 1, "DecodeError": 1}
    assert stats.influx_written == n and stats.file_lines == n

    series = victoria.wait_for(f'hmu_training_samples{{scenario="{scenario}"}}', n)
    assert [s["metric"]["hmu"] for s in series] == ["hmu-01"]
    assert series[0]["metric"]["run"] == run
    assert sorted(series[0]["values"]) == list(range(n))
    assert victoria.export(f'resources_cpu_percent{{scenario="{scenario}"}}') == []
    lines = (tmp_path / "metrics.lp").read_text().splitlines()
    assert {parse_line(line)[1]["scenario"] for line in lines} == {scenario}
