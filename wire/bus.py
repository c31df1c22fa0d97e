"""The MQTT edge of every agent: one authenticated aiomqtt connection with a last will.

This is the only module that talks to aiomqtt; it turns its exceptions into
``BrokerError`` once, here, so agents deal with the testbed's own errors only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiomqtt

from iomt.errors import BrokerError

log = logging.getLogger(__name__)


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
    ) -> None:
        self._kwargs = dict(client_kwargs)
        if will is not None:
            self._kwargs["will"] = aiomqtt.Will(will[0], will[1], qos=1, retain=True)
        self._kwargs.setdefault("timeout", connect_timeout_s)
        self._client: aiomqtt.Client | None = None
        self._messages: AsyncIterator[aiomqtt.Message] | None = None
        self.agent_id = str(self._kwargs.get("identifier", "agent"))
        self.bytes_out = 0
        self.bytes_in = 0

    async def __aenter__(self) -> Bus:
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
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.__aexit__(exc_type, exc, tb)
            except aiomqtt.MqttError as err:
                log.debug("%s: disconnect error ignored: %s", self.agent_id, err)

    @property
    def client(self) -> aiomqtt.Client:
        if self._client is None:
            raise BrokerError(f"{self.agent_id} is not connected")
        return self._client

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        try:
            await self.client.publish(topic, payload, qos=qos, retain=retain)
        except aiomqtt.MqttError as exc:
            raise BrokerError(f"{self.agent_id} cannot publish to {topic}: {exc}") from exc
        self.bytes_out += len(payload)

    async def subscribe(self, *topics: str, qos: int = 1) -> None:
        try:
            for topic in topics:
                await self.client.subscribe(topic, qos=qos)
        except aiomqtt.MqttError as exc:
            raise BrokerError(f"{self.agent_id} cannot subscribe: {exc}") from exc

    async def receive(self, timeout: float | None = None) -> Delivery | None:
        """The next message, or None when ``timeout`` seconds pass first."""
        if self._messages is None:
            raise BrokerError(f"{self.agent_id} is not connected")
        try:
            message = await asyncio.wait_for(anext(self._messages), timeout)
        except TimeoutError:
            return None
        except aiomqtt.MqttError as exc:
            raise BrokerError(f"{self.agent_id} lost the broker: {exc}") from exc
        payload = message.payload
        data = payload if isinstance(payload, bytes | bytearray) else str(payload or "").encode()
        self.bytes_in += len(data)
        return Delivery(topic=str(message.topic), payload=bytes(data))
