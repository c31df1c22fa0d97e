"""Metrics sink speed: hot-path cost of ``emit`` and points per second into VictoriaMetrics.

Starts its own VictoriaMetrics (Debian ``victoria-metrics``) on 127.0.0.1 at a free
port with a temporary store, and measures:

1. the cost per point on the agent's hot path (microseconds): ``emit`` of a built
   point, a measurement builder plus ``emit``, with the file and InfluxDB backends
   running, with InfluxDB unreachable, and with metrics disabled;
2. sustained throughput: N points emitted as fast as one thread can, until InfluxDB
   (VictoriaMetrics' v2 write API) acknowledged every one (points/s), checked by
   reading the series back; and the same into ``metrics.lp`` alone.

Run: ``.venv/bin/python -m bench.metrics_sink [--points N]``.  The machine is shared
(2 cores), so figures vary; the lead re-measures at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from iomt.broker.ports import free_port
from iomt.monitoring import measurements as m
from iomt.monitoring.config import InfluxTarget, MetricsConfig
from iomt.monitoring.sink import MetricsSink
from tests.monitoring.victoria import VictoriaMetrics, find_victoria_metrics


def hot_path_us(sink: MetricsSink, n: int = 20_000, repeats: int = 5) -> tuple[float, float]:
    """Median microseconds per point: (emit only, builder + emit)."""
    point = m.hmu_training("hmu-01", 1, loss=0.1, samples=100, train_s=0.2, update_norm=1.0,
                           trust=0.9, flagged=False)  # fmt: skip
    emit_only, build_emit = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n):
            sink.emit(point)
        emit_only.append((time.perf_counter() - t) / n * 1e6)
        sink.flush(30)
        t = time.perf_counter()
        for i in range(n):
            sink.emit(m.hmu_training("hmu-01", i, loss=0.1, samples=100, train_s=0.2,
                                     update_norm=1.0, trust=0.9, flagged=False))  # fmt: skip
        build_emit.append((time.perf_counter() - t) / n * 1e6)
        sink.flush(30)
    return statistics.median(emit_only), statistics.median(build_emit)


def throughput(sink: MetricsSink, n: int, run: str) -> float:
    """Points per second from the first ``emit`` to every point acknowledged."""
    t0 = time.time_ns() - 3_600_000_000_000  # an hour ago, 1 ms apart: distinct samples
    points = [
        m.resources("hmu-01", cpu_percent=float(i % 100), rss_bytes=i, time_ns=t0 + i * 1_000_000)
        for i in range(n)
    ]
    started = time.perf_counter()
    for point in points:
        sink.emit(point)
    if not sink.flush(120):
        raise RuntimeError("the sink did not flush in 120 s")
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=200_000, help="for the throughput runs")
    args = parser.parse_args()
    binary = find_victoria_metrics()
    if binary is None:
        sys.exit("needs victoria-metrics: apt-get install victoria-metrics")
    vm = VictoriaMetrics(binary).start()
    tmp = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    try:
        target = InfluxTarget(vm.url, "bench", "bench")
        print(f"VictoriaMetrics {vm.url}; {args.points:,} points per throughput run\n")

        print("hot path, microseconds per point (median of 5 x 20,000):")
        cases = {
            "file + InfluxDB": dict(file=tmp / "hot.lp", influx=target),
            "file + InfluxDB unreachable": dict(
                file=tmp / "down.lp",
                influx=InfluxTarget(f"http://127.0.0.1:{free_port()}", "o", "b", timeout_ms=200),
            ),
            "file only": dict(file=tmp / "file.lp"),
            "metrics disabled": {},
        }
        for name, backends in cases.items():
            cfg = MetricsConfig(retries=1, retry_interval_ms=100, max_retry_time_ms=500,
                                close_timeout_s=2)  # fmt: skip
            sink = MetricsSink(tags={"run": "bench-hot"}, config=cfg, **backends)  # type: ignore[arg-type]
            emit_us, build_us = hot_path_us(sink)
            stats = sink.close()
            print(f"  {name:30s} emit {emit_us:5.2f}   builder+emit {build_us:5.2f}"
                  f"   (dropped {stats.dropped:,})")  # fmt: skip

        print("\nsustained throughput until every point is acknowledged:")
        for batch in (1000, 5000):
            cfg = MetricsConfig(batch_size=batch, flush_interval_ms=100,
                                buffer_points=args.points + 1)  # fmt: skip
            run = f"bench-tp-{batch}"
            sink = MetricsSink(tags={"run": run}, influx=target, config=cfg)
            rate = throughput(sink, args.points, run)
            stats = sink.close()
            series = vm.wait_for(f'resources_rss_bytes{{run="{run}"}}', args.points, timeout=30)
            stored = sum(len(s["values"]) for s in series)
            print(f"  InfluxDB API, batch {batch:5d}: {rate:9,.0f} points/s "
                  f"(acknowledged {stats.influx_written:,}, read back {stored:,})")  # fmt: skip
        cfg = MetricsConfig(buffer_points=args.points + 1)
        sink = MetricsSink(tags={"run": "bench-file"}, file=tmp / "tp.lp", config=cfg)
        rate = throughput(sink, args.points, "bench-file")
        sink.close()
        print(f"  metrics.lp only:           {rate:9,.0f} points/s")
    finally:
        vm.stop()
        for path in tmp.iterdir():
            path.unlink()
        tmp.rmdir()


if __name__ == "__main__":
    main()
