"""The broker's own counters from its ``$SYS`` topics, as ``broker`` points; no I/O.

Mosquitto publishes ``$SYS/broker/...`` every ``sys_interval`` seconds (10 by default)
to clients allowed to read it.  Feed each such message to ``observe``; ``point()``
returns the latest value of every counter seen so far.  Mosquitto's values are
cumulative since the broker started (``messages/received``, ``bytes/sent``...) or
current (``clients/connected``, ``subscriptions/count``).
"""

from __future__ import annotations

from iomt.monitoring.measurements import broker
from iomt.monitoring.point import Point

SYS_FILTER = "$SYS/broker/#"
"""Subscribe to this (the reader needs ``read`` access to it in the broker's ACL)."""

SYS_TOPICS: dict[str, str] = {
    "$SYS/broker/clients/connected": "clients_connected",
    "$SYS/broker/messages/received": "messages_received",
    "$SYS/broker/messages/sent": "messages_sent",
    "$SYS/broker/bytes/received": "bytes_received",
    "$SYS/broker/bytes/sent": "bytes_sent",
    "$SYS/broker/publish/messages/dropped": "messages_dropped",
    "$SYS/broker/subscriptions/count": "subscriptions",
}
"""``$SYS`` topic -> field of the ``broker`` measurement."""


class BrokerStats:
    """The latest ``$SYS`` counters of one broker."""

    def __init__(self) -> None:
        self.values: dict[str, int] = {}

    def observe(self, topic: str, payload: bytes) -> bool:
        """Record one ``$SYS`` message; returns whether it was a counter we keep."""
        name = SYS_TOPICS.get(topic)
        if name is None:
            return False
        try:
            self.values[name] = int(payload.decode("ascii").split()[0])
        except (UnicodeDecodeError, ValueError, IndexError):
            return False
        return True

    def point(self, time_ns: int | None = None) -> Point | None:
        """A ``broker`` point of every counter seen so far, or None before the first."""
        if not self.values:
            return None
        return broker(self.values, time_ns=time_ns)
