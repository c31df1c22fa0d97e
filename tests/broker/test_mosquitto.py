"""A real Mosquitto started from the generated config: authentication, ACL, TLS, lifecycle."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import ssl
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
import yaml

from iomt.broker import BrokerConfig, BrokerHandle, MosquittoBroker, client_kwargs, start_broker
from iomt.broker.acl import acl_for_run
from iomt.broker.mosquitto import find_mosquitto
from iomt.errors import BrokerError
from iomt.wire import topics
from tests.broker.mqtt_probe import GRACE_S, Probe, sweep_acl

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(find_mosquitto() is None, reason="Mosquitto is not installed"),
]

RUN = "broker-tests"
HMUS = ["hmu-01", "hmu-02", "hmu-03"]


@pytest.fixture(scope="module")
def open_dir() -> Iterator[Path]:
    """A run directory the ``mosquitto`` account can reach (pytest's own tmp dirs are 0700),
    so the broker really drops its privileges when the tests run as root."""
    path = Path(tempfile.mkdtemp(prefix="iomt-broker-test-"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def mosquitto(open_dir: Path) -> Iterator[MosquittoBroker]:
    broker = MosquittoBroker(BrokerConfig(persistence=False), open_dir / "shared", RUN, HMUS)
    with broker:
        yield broker


@pytest.fixture(scope="module")
def handle(mosquitto: MosquittoBroker) -> BrokerHandle:
    return mosquitto.handle


def _proc_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[2])  # effective uid
    raise AssertionError("no Uid line")


def test_generated_config_and_files(mosquitto: MosquittoBroker, handle: BrokerHandle) -> None:
    conf = mosquitto.conf_file.read_text()
    for line in (
        "allow_anonymous false",
        "per_listener_settings false",
        "set_tcp_nodelay true",
        f"max_packet_size {16 * 1024 * 1024}",
        f"listener {handle.port} 127.0.0.1",
        "persistence false",
    ):
        assert f"\n{line}\n" in conf, line
    assert handle.kind == "mosquitto" and handle.host == "127.0.0.1" and not handle.tls
    assert handle.url == f"mqtt://127.0.0.1:{handle.port}"
    assert set(handle.credentials) == {topics.SERVER_ID, topics.CHANNEL_ID, *HMUS}
    passwd = (mosquitto.directory / "passwd").read_text().splitlines()
    assert sorted(line.split(":")[0] for line in passwd) == sorted(handle.credentials)
    assert all(line.split(":", 1)[1].startswith("$7$101$") for line in passwd)
    clear = mosquitto.directory / "credentials.yaml"
    assert stat.S_IMODE(clear.stat().st_mode) == 0o600
    assert yaml.safe_load(clear.read_text())["hmu-01"] == handle.credentials["hmu-01"].password
    if os.geteuid() == 0:  # Mosquitto dropped root and still reads its files
        assert mosquitto.pid is not None
        assert _proc_uid(mosquitto.pid) != 0
        assert "\nuser root\n" not in conf


async def test_update_reaches_the_server(handle: BrokerHandle) -> None:
    async with Probe(handle, topics.SERVER_ID) as server, Probe(handle, "hmu-01") as hmu:
        await server.subscribe(topics.update_filter(RUN))
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


async def test_hmu_cannot_read_another_hmus_updates(handle: BrokerHandle) -> None:
    async with (
        Probe(handle, topics.SERVER_ID) as server,
        Probe(handle, "hmu-01") as spy,
        Probe(handle, "hmu-02") as victim,
    ):
        await server.subscribe(topics.update_filter(RUN))
        await spy.subscribe(
            topics.update(RUN, "hmu-02"),
            topics.update_filter(RUN),
            "#",
            topics.inbox(RUN, "hmu-01"),
        )
        await victim.publish(topics.update(RUN, "hmu-02"), b"secret")
        await server.wait_for(topics.update(RUN, "hmu-02"), b"secret")
        # sent after the server had the update: had the spy been sent it, it came first
        await server.publish(topics.inbox(RUN, "hmu-01"), b"sentinel")
        before = await spy.wait_for(topics.inbox(RUN, "hmu-01"), b"sentinel")
        assert before == []
        await asyncio.sleep(GRACE_S)
        assert spy.got(topics.update(RUN, "hmu-02")) == []


async def test_hmu_cannot_publish_as_another_hmu(handle: BrokerHandle) -> None:
    async with Probe(handle, topics.SERVER_ID) as server, Probe(handle, "hmu-01") as forger:
        await server.subscribe(topics.update_filter(RUN))
        await forger.publish(topics.update(RUN, "hmu-02"), b"forged")
        await forger.publish(topics.update(RUN, "hmu-01"), b"sentinel")
        before = await server.wait_for(topics.update(RUN, "hmu-01"), b"sentinel")
        assert before == []
        await asyncio.sleep(GRACE_S)
        assert server.got(topics.update(RUN, "hmu-02")) == []


async def test_deliveries_match_the_acl_core(handle: BrokerHandle) -> None:
    """Every agent publishes on every topic of the run and subscribes to all of them:
    what Mosquitto delivers is exactly what ``iomt.broker.acl`` allows (QKD paths included)."""
    expected, delivered = await sweep_acl(handle, acl_for_run(RUN, HMUS))
    assert (topics.CHANNEL_ID, "hmu-01", topics.quantum(RUN, "hmu-01", "tx")) in expected
    assert (topics.SERVER_ID, topics.CHANNEL_ID, topics.quantum(RUN, "hmu-01", "rx")) in expected
    assert delivered == expected


def test_session_fixture_broker(mosquitto_broker: BrokerHandle) -> None:
    from tests.broker_fixtures import SESSION_HMU_IDS

    assert mosquitto_broker.kind == "mosquitto"
    assert set(SESSION_HMU_IDS) <= set(mosquitto_broker.credentials)

    async def exchange() -> None:
        async with (
            Probe(mosquitto_broker, topics.SERVER_ID) as server,
            Probe(mosquitto_broker, SESSION_HMU_IDS[-1]) as hmu,
        ):
            await hmu.subscribe(topics.global_model("test-session"))
            await server.publish(topics.global_model("test-session"), b"model")
            await hmu.wait_for(topics.global_model("test-session"), b"model")

    asyncio.run(exchange())


async def test_tls_listener(open_dir: Path) -> None:
    config = BrokerConfig(tls=True, persistence=False)
    async with start_broker(config, open_dir / "tls", RUN, HMUS) as handle:
        assert handle.tls and handle.url.startswith("mqtts://")
        assert handle.ca_file is not None and handle.plain_port not in (None, handle.port)
        async with Probe(handle, topics.SERVER_ID) as server, Probe(handle, "hmu-01") as hmu:
            await server.subscribe(topics.update_filter(RUN))
            await hmu.publish(topics.update(RUN, "hmu-01"), b"over tls")
            await server.wait_for(topics.update(RUN, "hmu-01"), b"over tls")
        # trust anchored in the system store only: the run's CA is unknown there
        with socket.create_connection((handle.host, handle.port), timeout=3) as raw:
            with pytest.raises(ssl.SSLCertVerificationError):
                ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")
        # an MQTT CONNECT in clear text gets no CONNACK, only a closed connection
        connect = b"\x00\x04MQTT\x04\x02\x00\x3c\x00\x04test"
        with socket.create_connection((handle.host, handle.port), timeout=3) as raw:
            raw.sendall(b"\x10" + bytes([len(connect)]) + connect)
            try:
                answer = raw.recv(4)
            except ConnectionResetError:
                answer = b""
            assert answer == b""
        context = ssl.create_default_context(cafile=str(handle.ca_file))
        with socket.create_connection((handle.host, handle.port), timeout=3) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")


async def test_persistence_survives_a_restart(open_dir: Path) -> None:
    run_dir = open_dir / "persist"
    config = BrokerConfig(persistence=True)
    status = topics.status(RUN, "hmu-03")
    async with start_broker(config, run_dir, RUN, HMUS) as handle:
        async with Probe(handle, "hmu-03") as hmu:
            await hmu.publish(status, b"online", retain=True)
        async with Probe(handle, topics.SERVER_ID) as server:  # stored before we stop
            await server.subscribe(status)
            await server.wait_for(status, b"online")
    db = run_dir / "broker" / "data" / "mosquitto.db"
    assert db.is_file() and db.stat().st_size > 0
    async with start_broker(config, run_dir, RUN, HMUS) as handle:
        async with Probe(handle, topics.SERVER_ID) as server:
            await server.subscribe(topics.status_filter(RUN))
            await server.wait_for(status, b"online")


async def test_no_persistence_writes_no_database(open_dir: Path) -> None:
    run_dir = open_dir / "volatile"
    async with start_broker(BrokerConfig(persistence=False), run_dir, RUN, HMUS):
        pass
    assert not (run_dir / "broker" / "data").exists()


async def test_revocation_stops_delivery_of_updates(open_dir: Path) -> None:
    async with start_broker(BrokerConfig(persistence=False), open_dir / "revoke", RUN, HMUS) as h:
        async with (
            Probe(h, topics.SERVER_ID) as server,
            Probe(h, "hmu-01") as cut,
            Probe(h, "hmu-02") as kept,
        ):
            await server.subscribe(topics.update_filter(RUN), topics.metrics_filter(RUN))
            await cut.publish(topics.update(RUN, "hmu-01"), b"round 1")
            await server.wait_for(topics.update(RUN, "hmu-01"), b"round 1")

            assert await h.revoke("hmu-01") is True

            await cut.publish(topics.update(RUN, "hmu-01"), b"round 2")
            await cut.publish(topics.metrics(RUN, "hmu-01"), b"sentinel")  # still allowed
            await kept.publish(topics.update(RUN, "hmu-02"), b"round 2")
            await server.wait_for(topics.metrics(RUN, "hmu-01"), b"sentinel")
            await server.wait_for(topics.update(RUN, "hmu-02"), b"round 2")
            await asyncio.sleep(GRACE_S)
            assert server.got(topics.update(RUN, "hmu-01")) == [b"round 1"]
        acl = (open_dir / "revoke" / "broker" / "acl").read_text()
        assert f"topic write {topics.update(RUN, 'hmu-01')}\n" not in acl
        assert f"topic write {topics.update(RUN, 'hmu-02')}\n" in acl
        with pytest.raises(ValueError, match="not an HMU"):
            await h.revoke("hmu-09")


async def test_max_packet_size_is_enforced(open_dir: Path) -> None:
    config = BrokerConfig(persistence=False, max_packet_mb=0.01)  # 10,485 bytes
    async with start_broker(config, open_dir / "small", RUN, HMUS) as handle:
        async with Probe(handle, topics.SERVER_ID) as server:
            await server.subscribe(topics.update_filter(RUN))
            async with Probe(handle, "hmu-01") as hmu:
                await hmu.publish(topics.update(RUN, "hmu-01"), b"x" * 5_000)
                await server.wait_for(topics.update(RUN, "hmu-01"), b"x" * 5_000)
                await hmu.client.publish(topics.update(RUN, "hmu-01"), b"y" * 20_000, qos=0)
                await hmu.wait_disconnected()  # Mosquitto drops a client sending too much
            async with Probe(handle, "hmu-02") as other:  # sentinel from a live client
                await other.publish(topics.update(RUN, "hmu-02"), b"sentinel")
                await server.wait_for(topics.update(RUN, "hmu-02"), b"sentinel")
            await asyncio.sleep(GRACE_S)
            assert server.got(topics.update(RUN, "hmu-01")) == [b"x" * 5_000]


def test_failed_start_is_one_line_with_log_tail(tmp_path: Path) -> None:
    fake = tmp_path / "not-mosquitto"
    fake.write_text("#!/bin/sh\necho 'Error: pretend the port is busy' >&2\nexit 3\n")
    fake.chmod(0o755)
    broker = MosquittoBroker(BrokerConfig(), tmp_path / "run", RUN, HMUS, binary=str(fake))
    with pytest.raises(BrokerError) as failed:
        broker.start()
    message = str(failed.value)
    assert "\n" not in message
    assert "exited with code 3" in message and "pretend the port is busy" in message
    assert broker.pid is None


def test_no_process_is_left_behind(open_dir: Path) -> None:
    broker = MosquittoBroker(BrokerConfig(persistence=False), open_dir / "leave", RUN, HMUS)
    broker.start()
    pid = broker.pid
    assert pid is not None
    broker.stop()
    broker.stop()  # idempotent
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)

    async def crash() -> int:
        async with start_broker(
            BrokerConfig(persistence=False), open_dir / "crash", RUN, HMUS
        ) as h:
            assert isinstance(h.revoker, MosquittoBroker) and h.revoker.pid is not None
            inner = h.revoker.pid
            raise RuntimeError(str(inner))
        raise AssertionError("unreachable")

    with pytest.raises(RuntimeError) as crashed:
        asyncio.run(crash())
    with pytest.raises(ProcessLookupError):
        os.kill(int(str(crashed.value)), 0)


def test_unreachable_run_dir_as_root_keeps_root(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hidden = tmp_path / "hidden"
    hidden.mkdir(mode=0o700)
    broker = MosquittoBroker(BrokerConfig(persistence=True), hidden / "run", RUN, HMUS)
    with caplog.at_level(logging.WARNING, logger="iomt.broker.mosquitto"), broker:
        conf = broker.conf_file.read_text()
    if os.geteuid() == 0:
        assert "\nuser root\n" in conf
        assert "keep running as root" in caplog.text
    else:
        assert "\nuser " not in conf
    assert (hidden / "run" / "broker" / "data" / "mosquitto.db").is_file()


def test_client_kwargs(handle: BrokerHandle) -> None:
    kwargs = client_kwargs(handle, "hmu-02")
    assert kwargs["hostname"] == "127.0.0.1" and kwargs["port"] == handle.port
    assert kwargs["username"] == "hmu-02" and kwargs["identifier"] == "hmu-02"
    assert (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1) in kwargs["socket_options"]
    assert "tls_params" not in kwargs
    assert client_kwargs(handle, "hmu-02", identifier="probe")["identifier"] == "probe"
    with pytest.raises(BrokerError, match="no credentials"):
        client_kwargs(handle, "hmu-99")
