"""The embedded amqtt fallback: same credentials and ACL semantics as Mosquitto."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest

from iomt.broker import BrokerConfig, BrokerHandle, mosquitto, start_broker
from iomt.broker.acl import acl_for_run
from iomt.errors import BrokerError
from iomt.wire import topics
from tests.broker.mqtt_probe import GRACE_S, Probe, sweep_acl

pytestmark = pytest.mark.integration

RUN = "amqtt-tests"
HMUS = ["hmu-01", "hmu-02", "hmu-03"]
REFUSED = 0x80


@pytest.fixture
async def handle(tmp_path: Path) -> AsyncIterator[BrokerHandle]:
    async with start_broker(BrokerConfig(kind="amqtt"), tmp_path, RUN, HMUS) as started:
        yield started


async def test_it_is_amqtt(handle: BrokerHandle) -> None:
    assert handle.kind == "amqtt" and handle.url == f"mqtt://127.0.0.1:{handle.port}"
    async with Probe(handle, topics.SERVER_ID) as server, Probe(handle, "hmu-01") as hmu:
        assert await server.subscribe(topics.update_filter(RUN)) == [1]
        await hmu.publish(topics.update(RUN, "hmu-01"), b"weights")
        await server.wait_for(topics.update(RUN, "hmu-01"), b"weights")


@pytest.mark.parametrize(
    ("username", "password"),
    [(None, None), ("hmu-01", "wrong"), ("intruder", "whatever"), ("hmu-01", "")],
    ids=["anonymous", "wrong-password", "unknown-user", "empty-password"],
)
async def test_bad_credentials_are_refused(
    handle: BrokerHandle, username: str | None, password: str | None
) -> None:
    with pytest.raises(aiomqtt.MqttCodeError) as refused:
        async with aiomqtt.Client(
            handle.host, handle.port, username=username, password=password, timeout=5
        ):
            pass
    assert str(refused.value.rc) in ("Not authorized", "Bad user name or password")


async def test_hmu_cannot_read_or_forge_another_hmus_updates(handle: BrokerHandle) -> None:
    async with (
        Probe(handle, topics.SERVER_ID) as server,
        Probe(handle, "hmu-01") as spy,
        Probe(handle, "hmu-02") as victim,
    ):
        await server.subscribe(topics.update_filter(RUN))
        granted = await spy.subscribe(
            topics.update(RUN, "hmu-02"),
            topics.update_filter(RUN),
            "#",
            topics.inbox(RUN, "hmu-01"),
        )
        assert granted == [REFUSED, REFUSED, REFUSED, 1]  # unlike Mosquitto, which grants
        await victim.publish(topics.update(RUN, "hmu-02"), b"secret")
        await spy.publish(topics.update(RUN, "hmu-03"), b"forged")
        await spy.publish(topics.update(RUN, "hmu-01"), b"sentinel")
        await server.wait_for(topics.update(RUN, "hmu-02"), b"secret")
        await server.wait_for(topics.update(RUN, "hmu-01"), b"sentinel")
        await server.publish(topics.inbox(RUN, "hmu-01"), b"sentinel")
        await spy.wait_for(topics.inbox(RUN, "hmu-01"), b"sentinel")
        await asyncio.sleep(GRACE_S)
        assert spy.got(topics.update(RUN, "hmu-02")) == []
        assert server.got(topics.update(RUN, "hmu-03")) == []


async def test_deliveries_match_the_acl_core(handle: BrokerHandle) -> None:
    expected, delivered = await sweep_acl(handle, acl_for_run(RUN, HMUS))
    assert delivered == expected


async def test_retained_messages_respect_read_grants(handle: BrokerHandle) -> None:
    """amqtt 0.12.1 alone replays retained messages to any connecting client."""
    async with Probe(handle, topics.SERVER_ID) as server:
        await server.publish(topics.status(RUN, topics.SERVER_ID), b"online", retain=True)
        await server.subscribe(topics.status_filter(RUN))
        await server.wait_for(topics.status(RUN, topics.SERVER_ID), b"online")
        async with Probe(handle, "hmu-01") as hmu:
            await hmu.subscribe(topics.inbox(RUN, "hmu-01"))
            await server.publish(topics.inbox(RUN, "hmu-01"), b"sentinel")
            await hmu.wait_for(topics.inbox(RUN, "hmu-01"), b"sentinel")
            await asyncio.sleep(GRACE_S)
            assert hmu.received == [(topics.inbox(RUN, "hmu-01"), b"sentinel")]
        async with Probe(handle, topics.SERVER_ID, identifier="server-2") as late:
            await late.subscribe(topics.status_filter(RUN))  # allowed: gets the retained one
            await late.wait_for(topics.status(RUN, topics.SERVER_ID), b"online")


async def test_revocation(handle: BrokerHandle) -> None:
    async with Probe(handle, topics.SERVER_ID) as server, Probe(handle, "hmu-02") as cut:
        await server.subscribe(topics.update_filter(RUN), topics.metrics_filter(RUN))
        await cut.publish(topics.update(RUN, "hmu-02"), b"round 1")
        await server.wait_for(topics.update(RUN, "hmu-02"), b"round 1")
        assert await handle.revoke("hmu-02") is True
        await cut.publish(topics.update(RUN, "hmu-02"), b"round 2")
        await cut.publish(topics.metrics(RUN, "hmu-02"), b"sentinel")
        await server.wait_for(topics.metrics(RUN, "hmu-02"), b"sentinel")
        await asyncio.sleep(GRACE_S)
        assert server.got(topics.update(RUN, "hmu-02")) == [b"round 1"]


async def test_tls(tmp_path: Path) -> None:
    config = BrokerConfig(kind="amqtt", tls=True)
    async with start_broker(config, tmp_path, RUN, HMUS) as handle:
        assert handle.tls and handle.ca_file is not None
        async with Probe(handle, topics.SERVER_ID) as server, Probe(handle, "hmu-01") as hmu:
            await server.subscribe(topics.update_filter(RUN))
            await hmu.publish(topics.update(RUN, "hmu-01"), b"over tls")
            await server.wait_for(topics.update(RUN, "hmu-01"), b"over tls")
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection(
                handle.host, handle.port, ssl=ssl.create_default_context(), server_hostname="x"
            )


async def test_auto_falls_back_to_amqtt_without_mosquitto(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(mosquitto, "SEARCH_DIRS", (str(empty),))
    with caplog.at_level(logging.WARNING, logger="iomt.broker.launcher"):
        async with start_broker(BrokerConfig(), tmp_path / "run", RUN, HMUS) as handle:
            assert handle.kind == "amqtt"
    assert "falling back to the embedded amqtt broker" in caplog.text
    with pytest.raises(BrokerError, match="no mosquitto binary found"):
        async with start_broker(BrokerConfig(kind="mosquitto"), tmp_path / "m", RUN, HMUS):
            pass
