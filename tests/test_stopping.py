"""Tasks that lose a cancellation still stop: ``cancel_and_wait`` asks again until they
are done, and gives up after its grace time; the metrics pump ends on its event."""

from __future__ import annotations

import asyncio
import time

from iomt.monitoring.publisher import MqttMetricsPublisher
from iomt.stopping import cancel_and_wait


async def test_a_task_that_loses_its_first_cancellation_is_cancelled_again():
    lost = []

    async def agent() -> None:
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if lost:
                    raise
                lost.append(True)  # as 3.11's wait_for does when a PUBACK lands with it

    task = asyncio.create_task(agent())
    await asyncio.sleep(0.02)
    started = time.monotonic()
    left = await cancel_and_wait([task], grace_s=5.0)
    assert not left and task.cancelled() and lost == [True]
    assert time.monotonic() - started < 1.0


async def test_a_task_that_will_not_stop_is_returned_after_the_grace_time():
    released = asyncio.Event()

    async def stubborn() -> None:
        while not released.is_set():
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    started = time.monotonic()
    left = await cancel_and_wait([task], grace_s=0.3)
    assert left == {task} and 0.3 <= time.monotonic() - started < 1.0
    released.set()
    await task


async def test_the_pump_stops_on_its_event_and_publishes_what_is_left():
    publisher = MqttMetricsPublisher("iomt/run/metrics/hmu-01")
    published: list[bytes] = []

    async def publish(topic: str, payload: bytes) -> None:
        await asyncio.sleep(0.01)  # waiting for the acknowledgement
        published.append(payload)

    stop = asyncio.Event()
    publisher.write(["a value=1 1"])
    pump = asyncio.create_task(publisher.pump(publish, stop, interval_s=0.02))
    await asyncio.sleep(0.1)
    publisher.write(["b value=2 2"])
    stop.set()
    await asyncio.wait_for(pump, 2.0)
    assert b"".join(published).count(b"\n") == 2 and publisher.waiting == 0
