"""Stopping asyncio tasks that do not always stop when cancelled once.

On Python 3.11, ``asyncio.wait_for`` returns the awaited result instead of raising
when its task is cancelled in the same turn of the loop as that result arrives (fixed
in 3.12).  aiomqtt waits for every QoS 1 acknowledgement that way, so an agent task
cancelled just as a PUBACK lands loses the cancellation and carries on; whoever then
awaits it waits forever.  Long-lived loops of our own therefore stop on an event they
check (``MqttMetricsPublisher.pump``), and tasks that can only be cancelled are
cancelled again until they are done (``cancel_and_wait``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

RETRY_S = 0.1
"""How long to wait for a cancelled task before cancelling it again."""


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any]], grace_s: float = 5.0
) -> set[asyncio.Task[Any]]:
    """Cancel ``tasks`` until each is done or ``grace_s`` has passed; returns the ones
    still running then (normally none).  Cancelling the caller cancels the wait."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_s
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - loop.time()
        if left <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(RETRY_S, left))
    return pending
