"""The MQTT edge of every agent: one authenticated aiomqtt connection with a last will.

This is the only module that talks to aiomqtt; it turns its exceptions into
``BrokerError`` once, here, so agents deal with the testbed's own errors only.

**Losing the broker.**  With ``reconnect_s > 0`` the bus survives a broker that goes
away and comes back: it connects with a persistent session (``clean_session`` off, a
stable client id), so the broker keeps its subscriptions and the QoS 1 messages queued
for it; when the connection drops it reconnects with backoff, subscribes again (a
broker restarted without its session store has forgotten them), publishes its retained
messages again (its status), and retries the publish that failed.  ``reconnects``
counts the reconnections, so an agent can tell that messages may have been lost in
between (the round protocol re-invites whoever has not answered).  Past
``reconnect_s`` without a broker it raises ``BrokerError``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiomqtt

from iomt.errors import BrokerError

log = logging.getLogger(__name__)

_BACKOFF_S = (0.05, 0.1, 0.2, 0.4, 0.8)


@dataclass(frozen=True)
class Delivery:
    """One message as it arrived: its topic and raw payload."""

    topic: str
    payload: bytes


class Bus:
    """``async with Bus(kwargs, will=...) as bus`` then ``publish``/``subscribe``/``receive``."""

    def __init__(
        self,
        client_kwargs: dict[str, Any],
        *,
        will: tuple[str, bytes] | None = None,
        connect_timeout_s: float = 10.0,
        reconnect_s: float = 0.0,
    ) -> None:
        self._kwargs = dict(client_kwargs)
        if will is not None:
            self._kwargs["will"] = aiomqtt.Will(will[0], will[1], qos=1, retain=True)
        self._kwargs.setdefault("timeout", connect_timeout_s)
        if reconnect_s > 0:
            self._kwargs["clean_session"] = False  # the broker keeps what is queued for us
        self._reconnect_s = reconnect_s
        self._client: aiomqtt.Client | None = None
        self._messages: AsyncIterator[aiomqtt.Message] | None = None
        self._subscriptions: dict[str, int] = {}
        self._retained: dict[str, bytes] = {}
        self._lock = asyncio.Lock()
        self.agent_id = str(self._kwargs.get("identifier", "agent"))
        self.bytes_out = 0
        self.bytes_in = 0
        self.reconnects = 0
        self._away_until = 0.0

    async def _connect(self) -> None:
        client = aiomqtt.Client(**self._kwargs)
        client.pending_calls_threshold = 1000  # bursts of invitations are normal here
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as exc:
            where = f"{self._kwargs.get('hostname')}:{self._kwargs.get('port')}"
            raise BrokerError(
                f"{self.agent_id} cannot connect to the broker at {where}: {exc}"
            ) from exc
        self._client = client
        self._messages = client.messages.__aiter__()

    async def __aenter__(self) -> Bus:
        await self._connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close(exc_type, exc, tb)

    async def _close(self, *exc_info: Any) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.__aexit__(*(exc_info or (None, None, None)))
            except aiomqtt.MqttError as err:
                log.debug("%s: disconnect error ignored: %s", self.agent_id, err)
            # aiomqtt keeps an unexpected disconnection in a future that only its message
            # iterator reads; read it here too, or asyncio reports it as never retrieved
            lost = getattr(client, "_disconnected", None)
            if lost is not None and lost.done() and not lost.cancelled():
                lost.exception()

    async def _reconnect(self, generation: int, cause: Exception) -> None:
        """Connect again (once for everyone who saw the same loss), or raise ``BrokerError``."""
        if self._reconnect_s <= 0:
            raise BrokerError(f"{self.agent_id} lost the broker: {cause}") from cause
        async with self._lock:
            if self.reconnects != generation:
                return  # another task has reconnected meanwhile
            log.info("%s: lost the broker (%s); reconnecting", self.agent_id, cause)
            await self._close()
            await asyncio.sleep(max(0.0, self._away_until - time.monotonic()))  # churn
            deadline = time.monotonic() + self._reconnect_s
            attempt = 0
            while True:
                try:
                    await self._connect()
                    break
                except BrokerError:
                    if time.monotonic() >= deadline:
                        raise BrokerError(
                            f"{self.agent_id} lost the broker and it did not come back "
                            f"within {self._reconnect_s:g} s (broker.reconnect_s): {cause}"
                        ) from None
                    await asyncio.sleep(_BACKOFF_S[min(attempt, len(_BACKOFF_S) - 1)])
                    attempt += 1
            client = self.client
            for topic, qos in self._subscriptions.items():
                await client.subscribe(topic, qos=qos)
            for topic, payload in self._retained.items():
                await client.publish(topic, payload, qos=1, retain=True)
            self.reconnects += 1
            log.info("%s: reconnected to the broker", self.agent_id)

    async def drop(self, offline_s: float) -> None:
        """Lose the connection as a device does that loses power or network: no
        DISCONNECT, so the broker publishes the last will; stay away ``offline_s``, then
        reconnect as after any loss (needs ``reconnect_s`` > ``offline_s``)."""
        if self._reconnect_s <= offline_s:
            raise BrokerError(f"{self.agent_id}: reconnect_s must exceed {offline_s:g} s")
        self._away_until = time.monotonic() + offline_s
        sock = self.client._client.socket()  # paho's socket: aiomqtt has no abrupt close
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)

    @property
    def client(self) -> aiomqtt.Client:
        if self._client is None:
            raise BrokerError(f"{self.agent_id} is not connected")
        return self._client

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        if retain:
            self._retained[topic] = payload
        while True:
            generation = self.reconnects
            try:
                await self.client.publish(topic, payload, qos=qos, retain=retain)
                break
            except (aiomqtt.MqttError, BrokerError) as exc:
                await self._reconnect(generation, exc)
        self.bytes_out += len(payload)

    async def subscribe(self, *topics: str, qos: int = 1) -> None:
        try:
            for topic in topics:
                await self.client.subscribe(topic, qos=qos)
                self._subscriptions[topic] = qos
        except aiomqtt.MqttError as exc:
            raise BrokerError(f"{self.agent_id} cannot subscribe: {exc}") from exc

    async def receive(self, timeout: float | None = None) -> Delivery | None:
        """The next message, or None when ``timeout`` seconds pass first or right after a
        reconnection (so the caller can see ``reconnects`` and act on what may be lost)."""
        if self._messages is None:
            raise BrokerError(f"{self.agent_id} is not connected")
        generation = self.reconnects
        try:
            message = await asyncio.wait_for(anext(self._messages), timeout)
        except TimeoutError:
            return None
        except aiomqtt.MqttError as exc:
            await self._reconnect(generation, exc)
            return None
        payload = message.payload
        data = payload if isinstance(payload, bytes | bytearray) else str(payload or "").encode()
        self.bytes_in += len(data)
        return Delivery(topic=str(message.topic), payload=bytes(data))
