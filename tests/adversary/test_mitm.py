"""Eve in front of hmu-01 on a real Mosquitto: plaintext updates altered, sealed ones caught."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiomqtt
import numpy as np
import pytest

from iomt.adversary.config import MitmConfig
from iomt.adversary.mitm import MitmProxy, route_through, start_eves
from iomt.adversary.mqtt_codec import CONNECT, encode_packet
from iomt.adversary.policy import EvePolicy, PassThrough, Policy
from iomt.broker import BrokerConfig, BrokerHandle, client_kwargs, start_broker
from iomt.errors import AuthenticationError
from iomt.wire import topics
from iomt.wire.envelope import new_envelope
from iomt.wire.frame import decode_frame, encode_frame, peek_envelope
from iomt.wire.link_cipher import LinkCipher
from iomt.wire.messages import ModelUpdate, Status
from iomt.wire.stamp import stamp

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

RUN = "mitm-it"
HMUS = ["hmu-01", "hmu-02"]
UPDATE = topics.update(RUN, "hmu-01")
STATUS = topics.status(RUN, "hmu-01")
KEY = os.urandom(64)
BROKER = BrokerConfig(kind="mosquitto", persistence=False)


def update_frame(tensors: dict[str, np.ndarray], link: LinkCipher | None = None) -> bytes:
    env = new_envelope(
        RUN,
        1,
        "hmu-01",
        topics.SERVER_ID,
        "update",
        cipher=link.cipher if link else "none",
        key_id=link.key_id if link else "",
        **stamp(),
    )
    msg = ModelUpdate(num_samples=500, loss=0.3, train_seconds=0.1, tensors=[])
    return encode_frame(env, msg, tensors, seal=link.seal if link else None)


def status_frame() -> bytes:
    env = new_envelope(RUN, 0, "hmu-01", "*", "status", **stamp())
    return encode_frame(env, Status(role="hmu", state="online"))


@asynccontextmanager
async def eve_in_front_of_hmu01(
    tmp_path: Path, policy: Policy
) -> AsyncIterator[tuple[BrokerHandle, MitmProxy, aiomqtt.Client, aiomqtt.Client]]:
    """Broker, proxy, a server-side reader on hmu-01's topics and hmu-01 connected via Eve."""
    async with start_broker(BROKER, tmp_path, RUN, HMUS) as handle:
        async with MitmProxy(handle.host, handle.port, policy=policy) as eve:
            reader_kw = client_kwargs(handle, topics.SERVER_ID, identifier="reader")
            hmu_kw = route_through(client_kwargs(handle, "hmu-01"), eve)
            async with aiomqtt.Client(**reader_kw) as reader, aiomqtt.Client(**hmu_kw) as hmu:
                await reader.subscribe(UPDATE, qos=1)
                await reader.subscribe(STATUS, qos=1)
                yield handle, eve, reader, hmu


async def next_message(client: aiomqtt.Client, wait_s: float) -> tuple[str, bytes] | None:
    try:
        async with asyncio.timeout(wait_s):
            async for message in client.messages:
                return str(message.topic), bytes(message.payload)
    except TimeoutError:
        return None
    return None


async def test_plaintext_update_is_read_and_altered_on_the_way(tmp_path: Path):
    rng = np.random.default_rng(5)
    # ~1 MB: the frame spans many TCP reads on its way through the proxy
    tensors = {
        "0.weight": rng.normal(size=(512, 512)).astype(np.float32),
        "0.bias": rng.normal(size=512).astype(np.float32),
    }
    data = update_frame(tensors)
    eve = EvePolicy(action="scale", scale=-10.0)
    async with eve_in_front_of_hmu01(tmp_path, eve) as (_, proxy, reader, hmu):
        await hmu.publish(UPDATE, data, qos=1)
        got = await next_message(reader, 10)
        sent_status = status_frame()
        await hmu.publish(STATUS, sent_status, qos=1)
        status = await next_message(reader, 10)
    assert got is not None and got[0] == UPDATE
    assert got[1] != data
    received = decode_frame(got[1])
    assert received.envelope == peek_envelope(data)
    assert received.message.num_samples == 500
    np.testing.assert_array_equal(received.tensors["0.weight"], -10 * tensors["0.weight"])
    np.testing.assert_array_equal(received.tensors["0.bias"], -10 * tensors["0.bias"])
    assert status == (STATUS, sent_status)  # not an update: relayed untouched
    (seen,) = eve.observations
    assert seen.num_samples == 500
    assert seen.norm == pytest.approx(
        float(np.sqrt(sum((t.astype(np.float64) ** 2).sum() for t in tensors.values()))), rel=1e-9
    )
    assert (eve.counters.read, eve.counters.altered) == (1, 1)
    assert proxy.stats.replaced == 1 and proxy.stats.publishes == 2
    assert proxy.stats.garbage_bytes == 0 and proxy.stats.connections == 1


async def test_sealed_update_arrives_tampered_and_fails_its_tag(tmp_path: Path):
    hmu_link = LinkCipher(KEY, "s1", "hmu")
    original = {"w": np.arange(1000, dtype=np.float32)}
    data = update_frame(original, hmu_link)
    eve = EvePolicy(on_sealed="tamper")
    async with eve_in_front_of_hmu01(tmp_path, eve) as (_, proxy, reader, hmu):
        await hmu.publish(UPDATE, data, qos=1)
        got = await next_message(reader, 10)
    assert got is not None and got[0] == UPDATE
    assert len(got[1]) == len(data) and got[1] != data
    with pytest.raises(AuthenticationError):
        decode_frame(got[1], open_=LinkCipher(KEY, "s1", "server").open)
    # the frame the HMU sent would have opened: the failure is Eve's doing
    opened = decode_frame(data, open_=LinkCipher(KEY, "s1", "server").open)
    np.testing.assert_array_equal(opened.tensors["w"], original["w"])
    assert (eve.counters.read, eve.counters.tampered_sealed) == (0, 1)
    assert proxy.stats.replaced == 1


@pytest.mark.parametrize("qos", [1, 2])
async def test_dropped_update_is_acknowledged_by_eve_and_the_hmu_stays_connected(
    tmp_path: Path, qos: int
):
    data = update_frame({"w": np.ones(100, np.float32)}, LinkCipher(KEY, "s1", "hmu"))
    eve = EvePolicy(on_sealed="drop")
    async with eve_in_front_of_hmu01(tmp_path, eve) as (_, proxy, reader, hmu):
        # returns only once the PUBACK (QoS 2: PUBREC, then PUBCOMP) comes back: Eve's
        async with asyncio.timeout(3):
            await hmu.publish(UPDATE, data, qos=qos)
        assert await next_message(reader, 1.0) is None
        await hmu.publish(STATUS, status_frame(), qos=qos)
        got = await next_message(reader, 10)
    assert got is not None and got[0] == STATUS
    assert eve.counters.dropped == 1
    assert proxy.stats.dropped == 1 and proxy.stats.acks_injected == qos
    assert proxy.stats.connections == 1 and proxy.stats.unanswered_drops == 0


async def test_garbage_is_relayed_and_counted_and_the_proxy_goes_on(tmp_path: Path):
    async with start_broker(BROKER, tmp_path, RUN, HMUS) as handle:
        async with MitmProxy(handle.host, handle.port, policy=PassThrough()) as proxy:
            junk = b"\x16\x03\x01\x00\x05hello, not mqtt"
            r, w = await asyncio.open_connection(proxy.host, proxy.port)
            w.write(junk)
            await w.drain()
            async with asyncio.timeout(5):
                assert await r.read() == b""  # the broker hangs up on it, the proxy passes that on
            w.close()
            await w.wait_closed()
            assert proxy.stats.garbage_bytes == len(junk)
            # a well-behaved client through the same proxy is unaffected
            reader_kw = client_kwargs(handle, topics.SERVER_ID, identifier="reader")
            hmu_kw = route_through(client_kwargs(handle, "hmu-01"), proxy)
            async with aiomqtt.Client(**reader_kw) as reader, aiomqtt.Client(**hmu_kw) as hmu:
                await reader.subscribe(STATUS, qos=1)
                await hmu.publish(STATUS, status_frame(), qos=1)
                got = await next_message(reader, 10)
    assert got is not None and got[0] == STATUS
    assert proxy.stats.connections == 2


async def test_start_eves_builds_one_proxy_per_listed_hmu(tmp_path: Path):
    config = MitmConfig(enabled=True, hmus=["hmu-01", "hmu-02"], action="zero")
    async with start_broker(BROKER, tmp_path, RUN, HMUS) as handle:
        rng = np.random.default_rng(1)
        async with start_eves(config, handle.host, handle.port, rng) as eves:
            assert sorted(eves) == HMUS
            assert len({p.port for p in eves.values()}) == 2
            policy = eves["hmu-01"].policy
            assert isinstance(policy, EvePolicy) and policy.action == "zero"
            assert policy is not eves["hmu-02"].policy
        async with start_eves(MitmConfig(), handle.host, handle.port, rng) as none:
            assert none == {}


def connect_bytes(client_id: str, username: str, password: str) -> bytes:
    def field(text: str) -> bytes:
        return len(text.encode()).to_bytes(2, "big") + text.encode()

    # MQTT 3.1.1 CONNECT: user name + password + clean session, keep-alive 60 s
    body = field("MQTT") + bytes([4, 0xC2]) + (60).to_bytes(2, "big")
    return encode_packet(CONNECT, 0, body + field(client_id) + field(username) + field(password))


async def test_stopping_the_proxy_cuts_live_relays_cleanly(tmp_path: Path):
    async with start_broker(BROKER, tmp_path, RUN, HMUS) as handle:
        proxy = await MitmProxy(handle.host, handle.port).start()
        creds = handle.credentials["hmu-01"]
        r, w = await asyncio.open_connection(proxy.host, proxy.port)
        w.write(connect_bytes("raw-hmu", creds.username, creds.password))
        await w.drain()
        async with asyncio.timeout(5):
            connack = await r.readexactly(4)
        assert connack == b"\x20\x02\x00\x00"  # accepted, through the relay
        await proxy.stop()
        async with asyncio.timeout(5):
            assert await r.read() == b""
        w.close()
        await w.wait_closed()
    assert proxy.stats.connections == 1 and proxy.stats.packets_down == 1
    assert proxy.stats.garbage_bytes == 0
