"""The one entry point of a run's broker: start Mosquitto or amqtt, or attach to a URL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from iomt.broker.config import BrokerConfig
from iomt.broker.embedded import AmqttBroker
from iomt.broker.external import attach_external
from iomt.broker.handle import BrokerHandle
from iomt.broker.mosquitto import MosquittoBroker, find_mosquitto
from iomt.errors import BrokerError

log = logging.getLogger(__name__)


async def _keep_alive(mosquitto: MosquittoBroker, every_s: float = 0.1) -> None:
    """Restart the run's own Mosquitto whenever it dies; agents reconnect to it."""
    while True:
        await asyncio.sleep(every_s)
        if mosquitto.died():
            try:
                await mosquitto.restart_async()
            except BrokerError as exc:  # the agents give up after broker.reconnect_s
                log.error("cannot restart the broker: %s", exc)
                return


@asynccontextmanager
async def running(mosquitto: MosquittoBroker) -> AsyncIterator[BrokerHandle]:
    """A Mosquitto of the run, started, restarted whenever it dies, stopped on the way out."""
    watchdog = None
    try:
        handle = await mosquitto.start_async()
        watchdog = asyncio.create_task(_keep_alive(mosquitto), name="broker-watchdog")
        yield handle
    finally:
        if watchdog is not None:
            watchdog.cancel()
            await asyncio.gather(watchdog, return_exceptions=True)
        mosquitto.stop()


@asynccontextmanager
async def start_broker(
    config: BrokerConfig,
    run_dir: Path,
    run_id: str,
    hmu_ids: Sequence[str],
    tiers: Mapping[str, Sequence[str]] | None = None,
    also_on: str | None = None,
) -> AsyncIterator[BrokerHandle]:
    """Yield a handle on the run's broker and stop it (if we started it) on the way out.

    ``config.url`` set: attach to that broker, start nothing.  Otherwise start Mosquitto
    (``kind`` auto or mosquitto) or, with ``kind: amqtt`` or no Mosquitto installed
    under ``auto``, the embedded amqtt broker, whose differences are logged.  ``tiers``
    (Mosquitto only): aggregators and their members, for a fog topology's cloud broker.
    ``also_on`` (Mosquitto only): one more local address its plain port opens on.
    """
    if config.url is not None:
        if also_on is not None:
            raise BrokerError("links.shaping tc needs the run's own broker, not broker.url")
        yield await asyncio.to_thread(attach_external, config)
        return
    kind = config.kind
    if kind == "auto":
        if find_mosquitto() is not None:
            kind = "mosquitto"
        else:
            log.warning(
                "no mosquitto binary found; falling back to the embedded amqtt broker "
                "(no max_packet_size, no persistence, SUBSCRIBE outside read grants refused)"
            )
            kind = "amqtt"
    if kind == "mosquitto":
        broker = MosquittoBroker(config, run_dir, run_id, hmu_ids, tiers=tiers, also_on=also_on)
        async with running(broker) as h:
            yield h
        return
    if also_on is not None:
        raise BrokerError("links.shaping tc needs Mosquitto (apt-get install mosquitto)")
    if tiers is not None:
        raise BrokerError("a fog topology needs Mosquitto, whose bridges link the fog brokers")
    if kind != "amqtt":
        raise BrokerError(f"unknown broker kind {kind!r}")
    embedded = AmqttBroker(config, run_dir, run_id, hmu_ids)
    try:
        yield await embedded.start()
    finally:
        await embedded.stop()
