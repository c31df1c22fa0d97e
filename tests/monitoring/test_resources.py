"""CPU and RSS of the process, sampled with psutil."""

from __future__ import annotations

import asyncio
import time

import psutil
import pytest

from iomt.monitoring.point import Point
from iomt.monitoring.resources import ResourceSampler


def test_a_busy_process_reads_busy_and_rss_matches_psutil() -> None:
    sampler = ResourceSampler("server", interval_s=1.0)
    until = time.process_time() + 0.3
    while time.process_time() < until:  # ~0.3 s of CPU on this thread
        pass
    point = sampler.sample(time_ns=11)
    assert point.measurement == "resources" and point.tags == {"hmu": "server"}
    assert point.time_ns == 11
    assert point.fields["cpu_percent"] > 20.0
    rss = psutil.Process().memory_info().rss
    assert abs(point.fields["rss_bytes"] - rss) < 0.2 * rss
    assert point.fields["threads"] >= 1


async def test_run_emits_every_interval_until_cancelled() -> None:
    got: list[Point] = []
    sampler = ResourceSampler("hmu-03", interval_s=0.05)
    task = asyncio.create_task(sampler.run(got.append))
    await asyncio.sleep(0.33)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert 4 <= len(got) <= 7  # 0.33 s / 0.05 s, loose for a shared machine
    assert all(p.tags == {"hmu": "hmu-03"} and p.fields["rss_bytes"] > 0 for p in got)
    stamps = [p.time_ns for p in got]
    assert stamps == sorted(stamps)


def test_a_non_positive_interval_is_refused() -> None:
    with pytest.raises(ValueError):
        ResourceSampler("server", interval_s=0)
