"""CPU and memory of an agent's process, sampled with psutil as ``resources`` points.

``cpu_percent`` is the process's CPU time over the last interval as a percentage of
one core (psutil's convention: a process busy on two cores reads 200).  ``rss_bytes``
is its resident set size.  Agents that share one process (the in-process launcher)
share these figures, so sample once per process, tagged with its main agent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psutil

from iomt.monitoring.measurements import resources
from iomt.monitoring.point import Point

log = logging.getLogger(__name__)


class ResourceSampler:
    """``ResourceSampler("hmu-01", 5.0)``: ``sample()`` now, or ``await run(sink.emit)``."""

    def __init__(self, agent: str, interval_s: float = 5.0, *, pid: int | None = None) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, not {interval_s}")
        self.agent = agent
        self.interval_s = interval_s
        self.process = psutil.Process(pid)
        self.process.cpu_percent(None)  # the first reading only starts psutil's interval

    def sample(self, time_ns: int | None = None) -> Point:
        """CPU use since the previous sample (or construction), RSS and threads now."""
        proc = self.process
        with proc.oneshot():
            cpu = proc.cpu_percent(None)
            rss = proc.memory_info().rss
            threads = proc.num_threads()
        return resources(
            self.agent, cpu_percent=cpu, rss_bytes=rss, threads=threads, time_ns=time_ns
        )

    async def run(self, emit: Callable[[Point], None]) -> None:
        """Emit a sample now and every ``interval_s`` seconds until cancelled.

        Reading ``/proc`` takes tens of microseconds, so it runs on the loop.
        """
        while True:  # one sample at once, so even an agent that lives shorter reports
            try:
                emit(self.sample())
            except psutil.Error as exc:  # the process is going away
                log.debug("resource sampler for %s stopped: %s", self.agent, exc)
                return
            await asyncio.sleep(self.interval_s)
