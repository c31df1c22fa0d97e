"""The MQTT backend of the sink, for HMUs without a route to InfluxDB.

The sink's writer thread appends line-protocol lines here; the HMU's event loop takes
them out as payloads (each within the forwarder's size limits) and publishes them on
its own metrics topic, ``iomt.wire.topics.metrics(run_id, hmu_id)``, where the server's
``MetricsForwarder`` checks them and writes them to its sink.  Publishing is the
agent's job (it owns the connection): give ``pump``/``drain`` its publish coroutine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping

from iomt.errors import TestbedError
from iomt.monitoring.point import Point, encode

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], Awaitable[None]]


def to_payloads(lines: Iterable[str], *, max_bytes: int, max_lines: int) -> tuple[list[bytes], int]:
    """Pack lines into newline-separated payloads of at most ``max_bytes`` and ``max_lines``.

    Returns ``(payloads, skipped)``: a single line longer than ``max_bytes`` cannot be
    sent (the forwarder would refuse it) and is skipped.
    """
    payloads: list[bytes] = []
    current: list[bytes] = []
    size = 0
    skipped = 0
    for line in lines:
        data = line.encode("utf-8")
        if len(data) + 1 > max_bytes:
            skipped += 1
            continue
        if current and (size + len(data) + 1 > max_bytes or len(current) >= max_lines):
            payloads.append(b"\n".join(current) + b"\n")
            current, size = [], 0
        current.append(data)
        size += len(data) + 1
    if current:
        payloads.append(b"\n".join(current) + b"\n")
    return payloads, skipped


def payloads_of(
    points: Iterable[Point],
    *,
    tags: Mapping[str, str] | None = None,
    max_bytes: int = 65_536,
    max_lines: int = 1000,
) -> list[bytes]:
    """MQTT payloads carrying ``points`` as line protocol (``tags`` added to each point)."""
    lines = [encode(p, tags or {}) for p in points]
    return to_payloads(lines, max_bytes=max_bytes, max_lines=max_lines)[0]


class MqttMetricsPublisher:
    """Buffers the sink's lines (bounded) until the agent publishes them on ``topic``."""

    name = "mqtt"

    def __init__(
        self,
        topic: str,
        *,
        max_payload_bytes: int = 65_536,
        max_lines: int = 1000,
        max_buffer_lines: int = 20_000,
    ) -> None:
        self.topic = topic
        self.max_payload_bytes = max_payload_bytes
        self.max_lines = max_lines
        self.max_buffer_lines = max_buffer_lines
        self.published_lines = 0
        self.published_payloads = 0
        self.dropped = 0
        self._lines: deque[str] = deque()
        self._lock = threading.Lock()

    def write(self, lines: list[str]) -> None:
        """Called by the sink's writer thread."""
        with self._lock:
            room = self.max_buffer_lines - len(self._lines)
            if room < len(lines):
                self.dropped += len(lines) - max(room, 0)
                lines = lines[: max(room, 0)]
            self._lines.extend(lines)

    def flush(self, timeout: float) -> bool:
        return True  # publishing happens on the agent's loop (``drain``)

    def close(self, timeout: float) -> None:
        pass

    @property
    def waiting(self) -> int:
        """Lines not yet taken for publishing."""
        return len(self._lines)

    def take_payloads(self) -> list[bytes]:
        """Everything buffered so far, as payloads ready to publish (the buffer empties)."""
        with self._lock:
            lines = list(self._lines)
            self._lines.clear()
        payloads, skipped = to_payloads(
            lines, max_bytes=self.max_payload_bytes, max_lines=self.max_lines
        )
        self.dropped += skipped
        return payloads

    async def drain(self, publish: Publish) -> int:
        """Publish everything buffered now; returns the number of lines published."""
        sent = 0
        for payload in self.take_payloads():
            lines = payload.count(b"\n")
            try:
                await publish(self.topic, payload)
            except TestbedError as exc:
                self.dropped += lines
                log.warning("metrics: cannot publish %d lines on %s: %s", lines, self.topic, exc)
                continue
            sent += lines
            self.published_lines += lines
            self.published_payloads += 1
        return sent

    async def pump(self, publish: Publish, stop: asyncio.Event, interval_s: float = 1.0) -> None:
        """Publish what the sink wrote every ``interval_s`` until ``stop`` is set, then
        once more.  An event, not cancellation, ends it: a cancellation can be lost in
        an acknowledged publish (``iomt.stopping``)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)
            await self.drain(publish)
        await self.drain(publish)  # what was written while the last drain ran
