"""The broker's own counters (``$SYS``), folded in as they arrive and emitted every few seconds."""

from __future__ import annotations

from collections.abc import Callable

from iomt.monitoring.broker_stats import BrokerStats
from iomt.monitoring.point import Point


class BrokerWatch:
    """Feed it ``$SYS`` messages; it emits a ``broker`` point at most every ``interval_s``."""

    def __init__(self, emit: Callable[[Point], None], interval_s: float = 5.0) -> None:
        self._emit = emit
        self._stats = BrokerStats()
        self._interval_s = interval_s
        self._emitted_at = float("-inf")

        self.dropped = 0
        """Messages the broker says it dropped, as of its last ``$SYS`` report."""

    def observe(self, topic: str, payload: bytes, now: float) -> int:
        """Fold in one ``$SYS`` message; returns how many more messages the broker dropped."""
        self._stats.observe(topic, payload)
        dropped = self._stats.values.get("messages_dropped", 0)
        more, self.dropped = max(0, dropped - self.dropped), max(dropped, self.dropped)
        if now - self._emitted_at >= self._interval_s:
            point = self._stats.point()
            if point is not None:
                self._emit(point)
                self._emitted_at = now
        return more
