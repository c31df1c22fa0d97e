"""The InfluxDB v2 backend of the sink: influxdb-client's batching ``WriteApi``, bounded.

The sink's writer thread hands each batch of line-protocol lines to the ``WriteApi``,
which posts it to ``/api/v2/write`` from its own background thread and retries
failures with exponential back-off (urllib3 ``Retry`` under the hood).  What the
library does not bound, this class does: at most ``max_pending`` points may wait for
the server; further points are dropped and counted, and so are points whose retries
run out or that are still unsent when the sink closes.  The write thread is a daemon
(reactivex ``EventLoopScheduler``) so an unreachable server never holds up the
interpreter at exit beyond the close timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import PointSettings, WriteApi, WriteOptions, WriteType
from reactivex.scheduler import EventLoopScheduler

from iomt.monitoring.config import InfluxTarget

log = logging.getLogger(__name__)

_FORCE_CLOSE_WAIT_MS = 500  # after our own flush wait, the library's close need not wait long


class _WriteApi(WriteApi):
    """``WriteApi`` that survives a request finishing after a forced close.

    influxdb-client 1.50 drops its disposable when ``close`` gives up waiting; a request
    still in flight then completes into ``_on_complete`` and raises ``AttributeError``
    in the write thread.  Nothing is left to dispose at that point, so skip it.
    """

    def _on_complete(self) -> None:
        if self._disposable is not None:
            super()._on_complete()


def _lines_in(data: Any) -> int:
    if isinstance(data, bytes | bytearray):
        return data.count(b"\n") + 1 if data else 0
    if isinstance(data, str):
        return data.count("\n") + 1 if data else 0
    return 1


class InfluxBackend:
    """Writes batches of lines to one InfluxDB v2 bucket; never blocks its caller."""

    name = "influx"

    def __init__(
        self,
        target: InfluxTarget,
        *,
        max_pending: int = 50_000,
        retries: int = 3,
        retry_interval_ms: int = 1000,
        max_retry_time_ms: int = 10_000,
    ) -> None:
        self.target = target
        self.max_pending = max_pending
        self.pending = 0
        self.written = 0
        self.dropped = 0
        self.retries = 0
        self.last_error: str | None = None
        self._cond = threading.Condition()
        self._closed = False
        self._scheduler = EventLoopScheduler()
        self._client = InfluxDBClient(
            url=target.url, token=target.token or None, org=target.org, timeout=target.timeout_ms
        )
        options = WriteOptions(
            write_type=WriteType.batching,
            batch_size=1,  # the sink's writer thread already batches lines
            flush_interval=100,
            jitter_interval=0,
            retry_interval=retry_interval_ms,
            max_retries=retries,
            max_retry_delay=max_retry_time_ms,
            max_retry_time=max_retry_time_ms,
            exponential_base=2,
            max_close_wait=_FORCE_CLOSE_WAIT_MS,
            write_scheduler=self._scheduler,
        )
        self._api = _WriteApi(
            influxdb_client=self._client,
            write_options=options,
            point_settings=PointSettings(),
            success_callback=self._on_success,
            error_callback=self._on_error,
            retry_callback=self._on_retry,
        )

    def write(self, lines: list[str]) -> None:
        """Queue ``lines`` for the server, or drop and count them if too many already wait."""
        n = len(lines)
        if not n:
            return
        with self._cond:
            if self._closed or self.pending + n > self.max_pending:
                first = self.dropped == 0
                self.dropped += n
                if first:
                    log.warning(
                        "metrics: InfluxDB at %s is behind (%d points waiting); dropping points "
                        "(they stay in metrics.lp)", self.target.url, self.pending,
                    )  # fmt: skip
                return
            self.pending += n
        data = "\n".join(lines).encode("utf-8")
        try:
            self._api.write(self.target.bucket, self.target.org, data)
        except Exception as exc:  # the library failing must not stop the sink
            self._settle(n, ok=False, error=exc)

    def flush(self, timeout: float) -> bool:
        """Wait until the server acknowledged or refused every queued point (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float) -> None:
        """Flush for up to ``timeout`` seconds, then give up what is still unsent (counted)."""
        done = self.flush(timeout)
        with self._cond:
            self._closed = True
            abandoned, self.pending = self.pending, 0
            self.dropped += abandoned
        if not done:
            log.warning(
                "metrics: %d points not confirmed by InfluxDB at %s after %.1fs: dropped (%s)",
                abandoned, self.target.url, timeout, self.last_error or "no answer",
            )  # fmt: skip
            self._scheduler.dispose()  # forget queued batches; the daemon thread ends
        try:
            self._api.close()
        finally:
            self._scheduler.dispose()
            self._client.close()

    def _on_success(self, _conf: Any, data: Any) -> None:
        self._settle(_lines_in(data), ok=True)

    def _on_error(self, _conf: Any, data: Any, exc: Exception) -> None:
        self._settle(_lines_in(data), ok=False, error=exc)

    def _on_retry(self, _conf: Any, _data: Any, exc: Exception) -> None:
        with self._cond:
            self.retries += 1
            self.last_error = _short(exc)

    def _settle(self, n: int, *, ok: bool, error: Exception | None = None) -> None:
        with self._cond:
            if self._closed:
                return  # already counted as dropped when the backend closed
            self.pending -= n
            if ok:
                self.written += n
            else:
                self.dropped += n
                self.last_error = _short(error)
            self._cond.notify_all()
        if not ok:
            log.warning("metrics: InfluxDB refused or missed %d points: %s", n, self.last_error)


def _short(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]
