"""``Bus.drop``: a connection lost as a device loses it, over a real Mosquitto.

The broker publishes the last will, the agent stays away as long as it was told, then
comes back with its retained status and its subscriptions."""

from __future__ import annotations

import asyncio
import time

import pytest

from iomt.broker import client_kwargs
from iomt.errors import BrokerError
from iomt.wire import topics
from iomt.wire.bus import Bus
from tests.broker.mqtt_probe import Probe
from tests.broker_fixtures import SESSION_RUN_ID

pytestmark = pytest.mark.integration

AGENT = "hmu-07"


async def test_a_dropped_agent_fires_its_will_stays_away_and_comes_back(mosquitto_broker):
    status = topics.status(SESSION_RUN_ID, AGENT)
    inbox = topics.inbox(SESSION_RUN_ID, AGENT)
    will = (status, b"offline")
    kwargs = client_kwargs(mosquitto_broker, AGENT)
    async with Probe(mosquitto_broker, topics.SERVER_ID) as server:
        await server.subscribe(status)
        async with Bus(kwargs, will=will, reconnect_s=10) as bus:
            await bus.subscribe(inbox)
            await bus.publish(status, b"online", retain=True)
            await server.wait_for(status, b"online")
            dropped_at = time.monotonic()
            await bus.drop(1.0)
            assert await bus.receive(timeout=5) is None  # the loss, then the reconnection
            back_at = time.monotonic()
            async with asyncio.timeout(5):  # the will, then the status published again
                while server.got(status)[-2:] != [b"offline", b"online"]:
                    await asyncio.sleep(0.01)
            await server.publish(inbox, b"invitation")
            delivery = await bus.receive(timeout=5)
            assert delivery is not None and delivery.payload == b"invitation"  # subscribed again
        assert back_at - dropped_at >= 1.0 and bus.reconnects == 1


async def test_a_drop_longer_than_the_reconnect_window_is_refused(mosquitto_broker):
    kwargs = client_kwargs(mosquitto_broker, AGENT, identifier="hmu-07-short")
    async with Bus(kwargs, reconnect_s=2) as bus:
        with pytest.raises(BrokerError, match="reconnect_s"):
            await bus.drop(5.0)
