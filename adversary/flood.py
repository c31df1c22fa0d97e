"""A denial of service from one HMU's credentials: random payloads on its own update topic.

The flooder publishes at QoS 1 with as many messages in flight as its client allows,
so the count it returns is what the broker acknowledged having received.  Every one of
those must show up in the run's books: refused by the server, denied by the broker's
ACL once the flooder is isolated, or dropped by the broker (``iomt.broker.log_account``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

BATCH = 64
"""Publishes awaited together: enough to keep the client's in-flight window full."""


@dataclass(frozen=True)
class FloodReport:
    sent: int
    """Messages the broker acknowledged."""
    started_at: float
    """Wall-clock time (``time.time()``) of the first publish."""
    seconds: float


async def flood(
    publish: Callable[[str, bytes], Awaitable[None]],
    topic: str,
    messages: int,
    size_bytes: int,
    rng: np.random.Generator,
) -> FloodReport:
    """Publish ``messages`` random payloads of ``size_bytes`` on ``topic``."""
    payloads = [rng.bytes(size_bytes) for _ in range(min(messages, 16))]
    started_at, started = time.time(), time.monotonic()
    sent = 0
    for first in range(0, messages, BATCH):
        batch = range(first, min(messages, first + BATCH))
        results = await asyncio.gather(
            *(publish(topic, payloads[i % len(payloads)]) for i in batch),
            return_exceptions=True,
        )
        sent += sum(1 for r in results if not isinstance(r, BaseException))
    return FloodReport(sent, started_at, time.monotonic() - started)
