"""What Mosquitto did with each message, counted from its own log; no I/O.

The run's Mosquitto logs at ``debug`` level (``iomt.broker.mosquitto_conf``), so every
PUBLISH it takes in and every one it passes on is a line naming the client and the
topic (never the payload)::

    Received PUBLISH from hmu-03 (d0, q1, r0, m7, 'iomt/r/.../hmu-03/update', ... (4096 bytes))
    Sending PUBLISH to server (d0, q1, r0, m2, 'iomt/r/.../hmu-03/update', ... (4096 bytes))
    Denied PUBLISH from hmu-03 (d0, q1, r0, m8, 'iomt/r/.../hmu-03/update', ... (4096 bytes))
    Outgoing messages are being dropped for client server.

A message on a topic only one agent may write (an HMU's update topic) is that agent's,
so per topic the broker's side of the books is exact: what it let in (``Received``),
what the ACL turned away (``Denied``, logged instead of ``Received``), what it sent to
each subscriber, and so what it dropped on the way (``dropped``: let in, not sent).
Mosquitto logs a dropping *episode* once per client, not each drop.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

_PUBLISH = re.compile(
    r"(Received|Denied|Sending) PUBLISH (?:from|to) (\S+) \(d\d, q\d, r\d, m\d+, '([^']*)'"
)
_DROPPING = re.compile(r"Outgoing messages are being dropped for client (\S+)\.")


@dataclass
class BrokerAccount:
    """Counts by (client, topic) for PUBLISH received, denied and sent; dropping episodes."""

    received: Counter[tuple[str, str]] = field(default_factory=Counter)
    denied: Counter[tuple[str, str]] = field(default_factory=Counter)
    sent: Counter[tuple[str, str]] = field(default_factory=Counter)
    dropping: Counter[str] = field(default_factory=Counter)
    """Client -> how many times Mosquitto started dropping messages queued for it."""

    def feed(self, lines: Iterable[str]) -> BrokerAccount:
        books = {"Received": self.received, "Denied": self.denied, "Sending": self.sent}
        for line in lines:
            match = _PUBLISH.search(line)
            if match is not None:
                verb, client, topic = match.groups()
                books[verb][(client, topic)] += 1
                continue
            drop = _DROPPING.search(line)
            if drop is not None:
                self.dropping[drop.group(1)] += 1
        return self

    def topic(self, publisher: str, topic: str, subscriber: str) -> dict[str, int]:
        """The books of ``publisher``'s messages on ``topic`` towards ``subscriber``."""
        received = self.received[(publisher, topic)]
        denied = self.denied[(publisher, topic)]
        sent = self.sent[(subscriber, topic)]
        return {
            "received": received,
            "denied": denied,
            "sent": sent,
            "dropped": max(0, received - sent),
        }
