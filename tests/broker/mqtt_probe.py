"""Test helpers: an agent connection that records what it receives, and an ACL sweep.

Negative checks use sentinels where the broker keeps order: a client's messages are
delivered in the order it sent them, so once a later sentinel has arrived an earlier
message that was going to arrive would already have.  A short grace period follows
for brokers (amqtt) whose delivery order is not strictly guaranteed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from types import TracebackType

import aiomqtt

from iomt.broker import BrokerHandle, client_kwargs
from iomt.broker.acl import AclRule, can_read, can_write

DELIVERY_TIMEOUT_S = 10.0  # generous: positive checks must never flake
GRACE_S = 0.3  # short: how long we keep listening for what must not arrive


class Probe:
    """``async with Probe(handle, "hmu-01") as p``: connect as that agent and record messages."""

    def __init__(self, handle: BrokerHandle, agent_id: str, **overrides: object) -> None:
        self.kwargs = {**client_kwargs(handle, agent_id), **overrides}
        self.agent_id = agent_id
        self.received: list[tuple[str, bytes]] = []
        self._client: aiomqtt.Client | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Probe:
        client = aiomqtt.Client(**self.kwargs)  # type: ignore[arg-type]
        await client.__aenter__()
        self._client = client
        self._reader = asyncio.create_task(self._read(client))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._reader
        if self._client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await self._client.__aexit__(exc_type, exc, tb)

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            assert isinstance(payload, bytes | bytearray)
            self.received.append((str(message.topic), bytes(payload)))

    @property
    def client(self) -> aiomqtt.Client:
        assert self._client is not None
        return self._client

    async def subscribe(self, *filters: str) -> list[int]:
        """Subscribe at QoS 1; the granted QoS per filter (128 means refused)."""
        codes = []
        for topic_filter in filters:
            granted = await self.client.subscribe(topic_filter, qos=1)
            codes += [int(getattr(code, "value", code)) for code in granted]
        return codes

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        await self.client.publish(topic, payload, qos=1, retain=retain)

    async def wait_for(
        self, topic: str, payload: bytes, timeout: float = DELIVERY_TIMEOUT_S
    ) -> list[tuple[str, bytes]]:
        """Wait until ``(topic, payload)`` arrives; return what arrived before it."""
        async with asyncio.timeout(timeout):
            while (topic, payload) not in self.received:
                await asyncio.sleep(0.005)
        return self.received[: self.received.index((topic, payload))]

    async def wait_disconnected(self, timeout: float = DELIVERY_TIMEOUT_S) -> None:
        """Wait until the broker closes this connection."""
        assert self._reader is not None
        done, _ = await asyncio.wait([self._reader], timeout=timeout)
        assert done, f"{self.agent_id} is still connected after {timeout} s"
        assert isinstance(self._reader.exception(), aiomqtt.MqttError)

    def got(self, topic: str) -> list[bytes]:
        return [payload for t, payload in self.received if t == topic]


async def sweep_acl(
    handle: BrokerHandle, rules: Mapping[str, Sequence[AclRule]]
) -> tuple[set[tuple[str, str, str]], set[tuple[str, str, str]]]:
    """Every agent subscribes to and publishes on every concrete topic of ``rules``.

    Returns ``(expected, delivered)`` as sets of ``(reader, writer, topic)``: expected is
    what the ACL core allows (writer may write the topic, reader may read it).
    """
    universe = sorted(
        {r.topic for granted in rules.values() for r in granted if not {"+", "#"} & set(r.topic)}
    )
    agents = list(rules)
    expected = {
        (reader, writer, topic)
        for writer in agents
        for topic in universe
        if can_write(rules[writer], topic)
        for reader in agents
        if can_read(rules[reader], topic)
    }
    async with contextlib.AsyncExitStack() as stack:
        probes = {a: await stack.enter_async_context(Probe(handle, a)) for a in agents}
        for probe in probes.values():
            await probe.subscribe(*universe)
        for writer, probe in probes.items():
            for topic in universe:
                await probe.publish(topic, writer.encode())

        def delivered() -> set[tuple[str, str, str]]:
            return {
                (reader, payload.decode(), topic)
                for reader, probe in probes.items()
                for topic, payload in probe.received
            }

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DELIVERY_TIMEOUT_S):
                while not expected <= delivered():
                    await asyncio.sleep(0.01)
        await asyncio.sleep(GRACE_S)
        return expected, delivered()
