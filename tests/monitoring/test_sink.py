"""The metrics sink against a real VictoriaMetrics: every point arrives, outages cost nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from iomt.broker.ports import free_port
from iomt.monitoring import measurements as m
from iomt.monitoring.config import InfluxTarget, MetricsConfig
from iomt.monitoring.line_file import METRICS_FILE
from iomt.monitoring.point import Point, parse_line
from iomt.monitoring.sink import MetricsSink
from tests.monitoring.victoria import VictoriaMetrics, by_name

ROOT = Path(__file__).resolve().parents[2]
HMUS = [f"hmu-{i:02d}" for i in range(1, 6)]


def target(vm: VictoriaMetrics) -> InfluxTarget:
    return InfluxTarget(url=vm.url, org="iomt", bucket="iomt", token="test-token")


def training_points(rounds: int, t0: int) -> list[Point]:
    """One ``hmu_training`` point per HMU and round, every value distinct and known."""
    points = []
    for r in range(1, rounds + 1):
        for i, hmu in enumerate(HMUS):
            points.append(
                m.hmu_training(
                    hmu, r, loss=1.0 / (r + i), samples=100 * r + i, train_s=0.001 * r,
                    update_norm=float(r * 10 + i), trust=0.5, flagged=(r + i) % 7 == 0,
                    time_ns=t0 + (r * 10 + i) * 1_000_000,
                )
            )  # fmt: skip
    return points


def test_without_a_server_only_the_file_is_written(tmp_path: Path) -> None:
    cfg = MetricsConfig()
    sink = MetricsSink.from_config(
        cfg, run_dir=tmp_path, tags={"run": "r-file", "scenario": "unit"}, env={},
        handle_signals=False,
    )  # fmt: skip
    assert [b.name for b in sink.backends] == ["file"]
    t0 = time.time_ns()
    points = [
        m.fl_round(1, accuracy=0.9, precision=0.8, recall=0.7, f1=0.75, loss=0.3,
                   duration_s=1.5, bytes_up=1000, bytes_down=2000, selected=5, received=4,
                   timed_out=False, time_ns=t0),
        m.qkd_link("hmu-01", status="isolated", qber=0.21, qber_upper=0.25, qber_threshold=0.11,
                   conclusive_rate=0.24, key_bits=0, time_ns=t0 + 1),
        m.security_event("tampered", hmu="hmu-02", round=3, time_ns=t0 + 2),
        m.resources("server", cpu_percent=12.5, rss_bytes=123_456_789, threads=7, time_ns=t0 + 3),
    ]  # fmt: skip
    for point in points:
        sink.emit(point)
    stats = sink.close()
    assert stats.emitted == 4 and stats.file_lines == 4 and stats.dropped == 0
    lines = (tmp_path / METRICS_FILE).read_text().splitlines()
    parsed = [parse_line(line) for line in lines]
    assert [p[0] for p in parsed] == ["fl_round", "qkd_link", "security", "resources"]
    assert parsed[0][1] == {"run": "r-file", "scenario": "unit"}
    assert parsed[0][2]["accuracy"] == 0.9 and parsed[0][2]["bytes_up"] == 1000
    assert parsed[0][2]["timed_out"] is False
    assert parsed[1][1]["hmu"] == "hmu-01" and parsed[1][2]["status"] == m.QKD_STATUS["isolated"]
    assert parsed[2][2] == {"rejected_tampered": 1, "round": 3}
    assert parsed[3][2]["rss_bytes"] == 123_456_789 and parsed[3][3] == t0 + 3


def test_every_point_reaches_victoria_metrics_with_its_values(
    tmp_path: Path, victoria: VictoriaMetrics
) -> None:
    run = "r-values"
    cfg = MetricsConfig(batch_size=250, flush_interval_ms=50)
    sink = MetricsSink(
        tags={"run": run, "scenario": "unit", "strategy": "fedavg"},
        file=tmp_path / METRICS_FILE, influx=target(victoria), config=cfg,
    )  # fmt: skip
    points = training_points(400, time.time_ns() - 10_000_000_000)  # 2000 points
    started = time.perf_counter()
    for point in points:
        sink.emit(point)
    per_point_us = (time.perf_counter() - started) / len(points) * 1e6
    stats = sink.close()
    assert stats.influx_written == len(points) and stats.dropped == 0, stats
    assert stats.file_lines == len(points)
    assert per_point_us < 50, f"emit costs {per_point_us:.1f} us per point"

    series = by_name(victoria.wait_for(f'{{run="{run}"}}', 7 * len(points)))
    assert set(series) == {f"hmu_training_{f}" for f in m.MEASUREMENTS["hmu_training"]}
    expected = {(p.tags["hmu"], p.time_ns // 1_000_000): p.fields for p in points}
    for name, field in ((f"hmu_training_{f}", f) for f in m.MEASUREMENTS["hmu_training"]):
        got = {}
        for s in series[name]:
            labels = s["metric"]
            assert labels["run"] == run and labels["strategy"] == "fedavg"
            assert labels["scenario"] == "unit"
            for value, stamp in zip(s["values"], s["timestamps"], strict=True):
                got[(labels["hmu"], stamp)] = value
        assert len(got) == len(points), name
        for key, fields in expected.items():
            assert got[key] == pytest.approx(float(fields[field]), rel=1e-12), (name, key)


def test_flush_waits_until_the_server_has_every_point(victoria: VictoriaMetrics) -> None:
    run = "r-flush"
    sink = MetricsSink(tags={"run": run}, influx=target(victoria), config=MetricsConfig())
    try:
        t0 = time.time_ns() - 10_000_000_000  # older than VictoriaMetrics' 1 s latency offset
        for i in range(300):
            at = t0 + i * 10**6
            sink.emit(m.resources("hmu-01", cpu_percent=float(i), rss_bytes=i, time_ns=at))
        assert sink.flush(10)
        assert sink.stats.influx_written == 300
        series = victoria.export(f'resources_rss_bytes{{run="{run}"}}')
        assert sum(len(s["values"]) for s in series) == 300
    finally:
        sink.close()


async def test_an_unreachable_server_neither_slows_nor_stops_the_run(tmp_path: Path) -> None:
    """The outage path: a closed port; the loop keeps its pace, the file stays complete."""
    closed = InfluxTarget(url=f"http://127.0.0.1:{free_port()}", org="o", bucket="b",
                          timeout_ms=200)  # fmt: skip
    cfg = MetricsConfig(
        batch_size=100, flush_interval_ms=20, buffer_points=500, retries=2,
        retry_interval_ms=50, max_retry_time_ms=400, close_timeout_s=1.0,
    )  # fmt: skip
    sink = MetricsSink(tags={"run": "r-outage"}, file=tmp_path / METRICS_FILE, influx=closed,
                       config=cfg)  # fmt: skip
    lags: list[float] = []

    async def ticker() -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - before - 0.005)

    tick = asyncio.create_task(ticker())
    points = training_points(1000, time.time_ns())  # 5000 points over ~1 s of "run"
    started = time.perf_counter()
    for i, point in enumerate(points):
        sink.emit(point)
        if i % 25 == 24:
            await asyncio.sleep(0.005)
    emitting = time.perf_counter() - started
    await asyncio.sleep(0.3)  # let retries happen while the run goes on
    tick.cancel()
    closing = time.perf_counter()
    stats = await sink.aclose()
    closed_in = time.perf_counter() - closing

    assert stats.influx_written == 0
    assert stats.influx_dropped == len(points), stats
    assert stats.influx_retries > 0
    assert stats.file_lines == len(points)
    lines = (tmp_path / METRICS_FILE).read_text().splitlines()
    assert len(lines) == len(points) and all(parse_line(line) for line in lines)
    # 200 sleeps of 5 ms take ~1 s; the outage may add little (shared 2-core machine)
    assert emitting < 3.5, f"emitting took {emitting:.2f}s"
    assert max(lags) < 0.3, f"the loop stalled for {max(lags):.3f}s"
    assert closed_in < cfg.close_timeout_s + 1.5, f"close took {closed_in:.2f}s"


def test_closing_while_a_request_is_in_flight_leaves_no_thread_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """influxdb-client's forced close used to crash its write thread when a request ended."""
    errors: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    closed = InfluxTarget(url=f"http://127.0.0.1:{free_port()}", org="o", bucket="b",
                          timeout_ms=200)  # fmt: skip
    cfg = MetricsConfig(batch_size=100, flush_interval_ms=10, retries=5, retry_interval_ms=300,
                        max_retry_time_ms=1500, close_timeout_s=0.2)  # fmt: skip
    sink = MetricsSink(influx=closed, config=cfg)
    for i in range(100):  # one request, the last one in flight when the sink closes
        sink.emit(m.resources("server", cpu_percent=1.0, rss_bytes=i, time_ns=i))
    time.sleep(0.1)  # the request is now retrying
    assert sink.close().influx_dropped == 100
    time.sleep(1.6)  # the request in flight gives up after its retries, after the close
    assert errors == []


def test_disabled_metrics_write_nothing(tmp_path: Path) -> None:
    sink = MetricsSink.from_config(
        MetricsConfig(enabled=False), run_dir=tmp_path, tags={"run": "r"}, env={}
    )
    sink.emit(m.resources("server", cpu_percent=1.0, rss_bytes=1))
    assert sink.close().emitted == 0
    assert not (tmp_path / METRICS_FILE).exists()


def test_points_after_close_are_counted_not_written(tmp_path: Path) -> None:
    sink = MetricsSink(tags={"run": "r"}, file=tmp_path / METRICS_FILE)
    sink.emit(m.resources("server", cpu_percent=1.0, rss_bytes=1))
    sink.close()
    sink.emit(m.resources("server", cpu_percent=2.0, rss_bytes=2))
    assert sink.close().queue_dropped == 1
    assert len((tmp_path / METRICS_FILE).read_text().splitlines()) == 1


def test_a_point_without_a_finite_field_is_counted_invalid(tmp_path: Path) -> None:
    sink = MetricsSink(file=tmp_path / METRICS_FILE)
    sink.emit(Point("resources", {"cpu_percent": float("nan")}, 1))
    sink.emit(m.resources("server", cpu_percent=1.0, rss_bytes=1, time_ns=2))
    stats = sink.close()
    assert stats.invalid == 1 and stats.file_lines == 1


CHILD = """
import asyncio, sys, time
from pathlib import Path
from iomt.monitoring import measurements as m
from iomt.monitoring.config import MetricsConfig
from iomt.monitoring.sink import MetricsSink

async def main():
    cfg = MetricsConfig(flush_interval_ms=60_000, batch_size=100_000)
    env = {"IOMT_INFLUX_URL": sys.argv[3], "IOMT_INFLUX_ORG": "o", "IOMT_INFLUX_BUCKET": "b"}
    sink = MetricsSink.from_config(cfg, run_dir=Path(sys.argv[1]), tags={"run": sys.argv[2]},
                                   env=env)
    n = int(sys.argv[4])
    t0 = time.time_ns() - n * 10**6
    for i in range(n):
        sink.emit(m.resources("hmu-01", cpu_percent=float(i), rss_bytes=i, time_ns=t0 + i * 10**6))
    print("ready", flush=True)
    await asyncio.sleep(60)  # no finally, no close: the sink's own exit handling must flush

asyncio.run(main())
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_flushes_every_point(
    tmp_path: Path, victoria: VictoriaMetrics, signum: signal.Signals
) -> None:
    run, n = f"r-signal-{signum.name.lower()}", 3000
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path), run, victoria.url, str(n)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready", proc.stderr.read()  # type: ignore[union-attr]
        assert (tmp_path / METRICS_FILE).stat().st_size == 0  # nothing written before the signal
        proc.send_signal(signum)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert proc.returncode in (128 + signum, -signum, 1)
    assert len((tmp_path / METRICS_FILE).read_text().splitlines()) == n
    series = victoria.wait_for(f'resources_rss_bytes{{run="{run}"}}', n)
    assert sorted(v for s in series for v in s["values"]) == list(range(n))
