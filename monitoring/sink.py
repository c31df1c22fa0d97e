"""The one metrics sink of every agent: ``emit(point)`` on the hot path, writing done elsewhere.

``emit`` only appends the point to an in-memory queue (under a microsecond,
thread-safe, never blocks, usable from the event loop or a worker thread).  A daemon
writer thread wakes every ``flush_interval_ms`` (or as soon as ``batch_size`` points
wait), encodes the points as line protocol and hands each batch to the backends:

* ``LineProtocolFile``: ``metrics.lp`` in the run directory, always complete;
* ``InfluxBackend``: InfluxDB v2 write API (bounded, retried, drops counted);
* ``MqttMetricsPublisher``: lines an HMU publishes on its metrics topic.

Closing (``close()``/``await aclose()``, or leaving ``with``/``async with``) flushes
everything and waits at most ``close_timeout_s`` for InfluxDB.  So that no point is
lost on the way out, every open sink is also closed when the interpreter exits
(normal exit, ``SystemExit``, ``KeyboardInterrupt`` on SIGINT) before the thread pools
shut down, and ``exit_on_sigterm()`` (called by ``from_config``) turns SIGTERM into
``SystemExit`` so that ``finally`` blocks and that exit hook run.  SIGKILL loses at most
the last ``flush_interval_ms`` of points.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol

from iomt.monitoring.config import InfluxTarget, MetricsConfig, resolve_influx
from iomt.monitoring.exit_hooks import close_at_exit, exit_on_sigterm, forget_at_exit
from iomt.monitoring.line_file import METRICS_FILE, LineProtocolFile
from iomt.monitoring.point import TAG_KEYS, Encoder, LineError, Point

log = logging.getLogger(__name__)


class Backend(Protocol):
    """Where the writer thread puts batches of encoded lines."""

    name: str

    def write(self, lines: list[str]) -> None: ...

    def flush(self, timeout: float) -> bool: ...

    def close(self, timeout: float) -> None: ...


@dataclass(frozen=True)
class SinkStats:
    """Counters of one sink, in points."""

    emitted: int
    """Points ``emit`` accepted."""
    invalid: int
    """Points that could not be encoded (no finite field, bad name)."""
    queue_dropped: int
    """Points refused by ``emit`` because the queue was full, or emitted after close."""
    file_lines: int
    influx_written: int
    influx_dropped: int
    """Points InfluxDB never confirmed: buffer full, retries exhausted, unsent at close."""
    influx_retries: int
    """Write requests retried."""
    mqtt_dropped: int
    mqtt_published: int

    @property
    def dropped(self) -> int:
        """Every point lost on the way to some backend (``metrics.lp`` has all but queue drops)."""
        return self.queue_dropped + self.influx_dropped + self.mqtt_dropped

    def as_dict(self) -> dict[str, int]:
        """Plain counters for ``results.json``."""
        out = {k: int(v) for k, v in self.__dict__.items()}
        out["dropped"] = self.dropped
        return out


class _Marker(threading.Event):
    """Put in the queue by ``flush``; the writer sets it when it gets there (FIFO)."""


class MetricsSink:
    """``sink.emit(point)`` from anywhere; ``close()`` (or ``await aclose()``) at the end.

    ``tags`` are added to every point (``run``, ``scenario``, ``strategy``; a point's
    own tags win).  With no backend the sink accepts points and discards them.
    """

    def __init__(
        self,
        *,
        tags: Mapping[str, str] | None = None,
        file: Path | None = None,
        influx: InfluxTarget | None = None,
        publisher: Backend | None = None,
        config: MetricsConfig | None = None,
    ) -> None:
        cfg = config or MetricsConfig()
        self.config = cfg
        self.tags = dict(tags or {})
        unknown = set(self.tags).difference(TAG_KEYS)
        if unknown:
            raise ValueError(f"metrics tags must be among {TAG_KEYS}, not {sorted(unknown)}")
        self._encoder = Encoder(self.tags)
        self._batch = cfg.batch_size
        self._interval = cfg.flush_interval_ms / 1000
        self._max_queue = max(cfg.buffer_points, 10 * cfg.batch_size)
        self._queue: deque[Point | _Marker] = deque()
        self._wake = threading.Event()
        self._popped = 0  # points the writer has handed to the backends
        self._invalid = 0
        self._queue_dropped = 0
        self._closed = False
        self._stopping = False
        self._close_lock = threading.Lock()
        self.file: LineProtocolFile | None = LineProtocolFile(file) if file is not None else None
        self.influx = None
        if influx is not None:
            from iomt.monitoring.influx import InfluxBackend  # heavy import, only when used

            self.influx = InfluxBackend(
                influx,
                max_pending=cfg.buffer_points,
                retries=cfg.retries,
                retry_interval_ms=cfg.retry_interval_ms,
                max_retry_time_ms=cfg.max_retry_time_ms,
            )
        self.publisher = publisher
        self.backends: list[Backend] = [
            b for b in (self.file, self.influx, publisher) if b is not None
        ]
        self._thread: threading.Thread | None = None
        if self.backends:
            self._thread = threading.Thread(target=self._run, name="metrics-writer", daemon=True)
            self._thread.start()
            close_at_exit(self)

    @classmethod
    def from_config(
        cls,
        config: MetricsConfig,
        *,
        run_dir: Path | None,
        tags: Mapping[str, str],
        publisher: Backend | None = None,
        file_name: str = METRICS_FILE,
        env: Mapping[str, str] | None = None,
        handle_signals: bool = True,
    ) -> MetricsSink:
        """The sink a scenario asks for: ``run_dir/metrics.lp``, InfluxDB if configured.

        ``publisher`` (an ``MqttMetricsPublisher``) adds the MQTT route of an HMU.
        With ``metrics.enabled: false`` the sink discards everything.  Raises
        ``ScenarioError`` for an incomplete InfluxDB configuration.
        """
        if not config.enabled:
            return cls(tags=tags, config=config)
        if handle_signals:
            exit_on_sigterm()
        target = resolve_influx(config.influx, env)
        file = run_dir / file_name if run_dir is not None else None
        sink = cls(tags=tags, file=file, influx=target, publisher=publisher, config=config)
        log.info("metrics: %s", ", ".join(_describe(b) for b in sink.backends) or "discarded")
        return sink

    # -- the hot path -------------------------------------------------------------

    def emit(self, point: Point) -> None:
        """Queue ``point`` for every backend; never blocks, never raises for a full queue."""
        if self._thread is None:
            return
        queue = self._queue
        if self._closed or len(queue) >= self._max_queue:
            self._refuse(1)
            return
        queue.append(point)
        if len(queue) >= self._batch:
            self._wake.set()

    def emit_many(self, points: Iterable[Point]) -> None:
        """``emit`` each of ``points``."""
        for point in points:
            self.emit(point)

    def _refuse(self, n: int) -> None:
        with self._close_lock:
            first = self._queue_dropped == 0
            self._queue_dropped += n
        if first:
            why = "the sink is closed" if self._closed else "the queue is full"
            log.warning("metrics: dropping points: %s", why)

    # -- the writer thread --------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            stopping = self._stopping
            self._drain()
            if stopping:
                return

    def _drain(self) -> None:
        pop = self._queue.popleft
        while True:
            batch: list[Point] = []
            marker: _Marker | None = None
            try:
                while len(batch) < self._batch:
                    item = pop()
                    if isinstance(item, _Marker):
                        marker = item
                        break
                    batch.append(item)
            except IndexError:
                pass
            if batch:
                self._write(batch)
            if marker is not None:
                marker.set()
            elif not batch:
                return

    def _write(self, batch: list[Point]) -> None:
        lines = []
        line = self._encoder.line
        for point in batch:
            try:
                lines.append(line(point))
            except (LineError, TypeError, ValueError, AttributeError) as exc:
                self._invalid += 1
                log.warning("metrics: cannot encode %r: %s", point, exc)
        for backend in self.backends:
            try:
                backend.write(lines)
            except Exception:  # a backend bug must not stop the others or the writer
                log.exception("metrics: the %s backend failed", backend.name)
        self._popped += len(batch)

    # -- flushing and closing -----------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every point emitted so far is written everywhere (or ``timeout``).

        Returns False when the time ran out (InfluxDB unreachable, typically).  In
        asyncio code use ``await sink.aflush()``.
        """
        if self._thread is None or self._closed:
            return True
        timeout = self.config.close_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + timeout
        marker = _Marker()
        self._queue.append(marker)
        self._wake.set()
        ok = marker.wait(timeout)
        for backend in self.backends:
            ok = backend.flush(max(0.0, deadline - time.monotonic())) and ok
        return ok

    def close(self, timeout: float | None = None) -> SinkStats:
        """Flush and close every backend (InfluxDB waited for at most ``timeout`` seconds).

        Idempotent; points emitted afterwards are counted in ``queue_dropped``.
        """
        with self._close_lock:
            if self._closed:
                return self.stats
            self._closed = True
        if self._thread is None:
            return self.stats
        timeout = self.config.close_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + timeout
        self._stopping = True
        self._wake.set()
        self._thread.join()  # local work only (encoding, file, hand-over), never the network
        for backend in self.backends:
            try:
                backend.close(max(0.0, deadline - time.monotonic()))
            except Exception:
                log.exception("metrics: closing the %s backend failed", backend.name)
        forget_at_exit(self)
        stats = self.stats
        if stats.dropped:
            log.warning("metrics: %d points were dropped (%s)", stats.dropped, stats.as_dict())
        return stats

    async def aflush(self, timeout: float | None = None) -> bool:
        """``flush`` from asyncio code without blocking the loop."""
        return await asyncio.to_thread(self.flush, timeout)

    async def aclose(self, timeout: float | None = None) -> SinkStats:
        """``close`` from asyncio code without blocking the loop."""
        return await asyncio.to_thread(self.close, timeout)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def stats(self) -> SinkStats:
        influx = self.influx
        publisher = self.publisher
        waiting = sum(1 for item in list(self._queue) if not isinstance(item, _Marker))
        return SinkStats(
            emitted=self._popped + waiting,
            invalid=self._invalid,
            queue_dropped=self._queue_dropped,
            file_lines=self.file.lines if self.file is not None else 0,
            influx_written=influx.written if influx is not None else 0,
            influx_dropped=influx.dropped if influx is not None else 0,
            influx_retries=influx.retries if influx is not None else 0,
            mqtt_dropped=int(getattr(publisher, "dropped", 0)),
            mqtt_published=int(getattr(publisher, "published_lines", 0)),
        )

    def __enter__(self) -> MetricsSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> MetricsSink:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _describe(backend: Backend) -> str:
    if isinstance(backend, LineProtocolFile):
        return f"file {backend.path}"
    target = getattr(backend, "target", None)
    if target is not None:
        return f"InfluxDB {target.url} bucket {target.bucket}"
    return f"MQTT {getattr(backend, 'topic', backend.name)}"
