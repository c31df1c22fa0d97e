"""Attaching to an external broker: URL and credentials-file checks, then a real attach."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from iomt.broker import BrokerConfig, BrokerHandle, parse_broker_url, start_broker
from iomt.broker.external import load_credentials_file
from iomt.broker.ports import free_port
from iomt.broker.url import BrokerUrl
from iomt.errors import BrokerError
from iomt.wire import topics
from tests.broker.mqtt_probe import Probe
from tests.broker_fixtures import SESSION_RUN_ID


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        ("mqtt://broker.example.org", BrokerUrl("broker.example.org", 1883, False)),
        ("mqtts://broker.example.org", BrokerUrl("broker.example.org", 8883, True)),
        ("mqtt://10.0.0.5:1884", BrokerUrl("10.0.0.5", 1884, False)),
        ("MQTTS://pi.local:18883/", BrokerUrl("pi.local", 18883, True)),
        ("mqtt://[::1]:1883", BrokerUrl("::1", 1883, False)),
    ],
)
def test_parse_good_urls(url: str, parsed: BrokerUrl) -> None:
    assert parse_broker_url(url) == parsed


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "empty"),
        ("http://host:1883", "mqtt:// or mqtts://"),
        ("host:1883", "mqtt:// or mqtts://"),
        ("mqtt://user:secret@host:1883", "must not carry credentials"),
        ("mqtt://:1883", "no host"),
        ("mqtt://host:99999", "malformed"),
        ("mqtt://host:port", "malformed"),
        ("mqtt://host:0", "port 0"),
        ("mqtt://host:1883/topic", "only scheme://host:port"),
        ("mqtt://host:1883?x=1", "only scheme://host:port"),
        ("mqtt://ho st:1883", "whitespace"),
    ],
)
def test_bad_urls_are_one_line_broker_errors(url: str, reason: str) -> None:
    with pytest.raises(BrokerError) as failed:
        parse_broker_url(url)
    assert reason in str(failed.value)
    assert "\n" not in str(failed.value)
    assert "secret" not in str(failed.value)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[a, b]\n", "must be a mapping"),
        ("{}\n", "must be a mapping"),
        ("server: [1, 2]\n", "non-empty string password"),
        ("server: ''\n", "non-empty string password"),
        ("server: {\n", "not valid YAML"),
    ],
)
def test_bad_credentials_files(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "creds.yaml"
    path.write_text(text)
    with pytest.raises(BrokerError) as failed:
        load_credentials_file(path)
    assert reason in str(failed.value) and "\n" not in str(failed.value)
    with pytest.raises(BrokerError, match="cannot read"):
        load_credentials_file(tmp_path / "missing.yaml")


async def test_config_errors(tmp_path: Path) -> None:
    creds = tmp_path / "c.yaml"
    creds.write_text("server: pw\n")
    cases = [
        (BrokerConfig(url="mqtt://127.0.0.1:1883"), "credentials_file"),
        (
            BrokerConfig(url="mqtt://127.0.0.1:1883", credentials_file=str(creds), ca_file="x"),
            "only used with mqtts://",
        ),
        (
            BrokerConfig(url="mqtts://127.0.0.1:1883", credentials_file=str(creds), ca_file="x"),
            "does not exist",
        ),
        (
            BrokerConfig(url=f"mqtt://127.0.0.1:{free_port()}", credentials_file=str(creds)),
            "cannot reach",
        ),
    ]
    for config, reason in cases:
        with pytest.raises(BrokerError, match=reason):
            async with start_broker(config, tmp_path, "r1", ["hmu-01"]):
                pass


@pytest.mark.integration
async def test_attach_to_a_running_broker(
    mosquitto_broker: BrokerHandle, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    creds = tmp_path / "field-trial.yaml"
    wanted = (topics.SERVER_ID, "hmu-04")
    clear = {a: mosquitto_broker.credentials[a].password for a in wanted}
    creds.write_text(yaml.safe_dump(clear))
    config = BrokerConfig(url=mosquitto_broker.url, credentials_file=str(creds))
    async with start_broker(config, tmp_path / "unused", SESSION_RUN_ID, ["hmu-04"]) as handle:
        assert handle.kind == "external" and handle.url == mosquitto_broker.url
        assert set(handle.credentials) == set(wanted)
        async with Probe(handle, topics.SERVER_ID) as server, Probe(handle, "hmu-04") as hmu:
            await server.subscribe(topics.update_filter(SESSION_RUN_ID))
            await hmu.publish(topics.update(SESSION_RUN_ID, "hmu-04"), b"from the field")
            await server.wait_for(topics.update(SESSION_RUN_ID, "hmu-04"), b"from the field")
        with caplog.at_level(logging.WARNING, logger="iomt.broker.external"):
            assert await handle.revoke("hmu-04") is False
        assert "cannot revoke hmu-04 at an external broker" in caplog.text
    assert not (tmp_path / "unused").exists()  # nothing is written for an external broker
