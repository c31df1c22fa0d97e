"""Readings in MQTT: exact round trip, sizes, and scapy.contrib.mqtt agreeing on the bytes."""

from __future__ import annotations

import numpy as np
import pytest
from scapy.contrib.mqtt import MQTT

from iomt.traffic.frame import FrameFactory
from iomt.traffic.readings import (
    READING_KEYS,
    TOPIC,
    decode_many,
    parse_readings,
    publish_exact,
    publish_messages,
    readings_json,
    readings_messages,
)

VALUES = (28.9, 98.0, 73.0, 144.0, 83.0, 73.0, 19.0, -0.3)


def test_readings_json_round_trips_bit_for_bit():
    awkward = (0.1 + 0.2, 1e-7, 36.6, 0.0, -0.0, 123456789.0, 2.5e300, -0.30000000000000004)
    for values in (VALUES, awkward):
        message = readings_json(values)
        payload = publish_exact(TOPIC, message, 256)
        assert parse_readings(payload) == tuple(values)


def test_bulk_formatting_matches_the_single_one():
    rng = np.random.default_rng(1)
    columns = [np.round(rng.normal(50, 30, 200), rng.integers(0, 3)) for _ in READING_KEYS]
    rows = np.stack(columns, axis=1)
    assert readings_messages(columns) == [readings_json(r) for r in rows.tolist()]


@pytest.mark.parametrize("total", [11, 127, 128, 131, 256, 257, 1000, 20000])
def test_publish_exact_has_the_requested_size_and_scapy_reads_it(total):
    message = b'{"a":1}'[: max(0, total - 40)]
    packet = publish_exact(b"t/x", message, total)
    assert len(packet) == total
    parsed = MQTT(packet)
    assert parsed.type == 3 and parsed.topic == b"t/x"
    assert parsed.value.rstrip(b" ") == message


def test_publish_exact_refuses_a_message_that_does_not_fit():
    with pytest.raises(ValueError):
        publish_exact(TOPIC, b"x" * 300, 256)


def test_segment_with_connect_publish_disconnect_is_dissected_by_scapy():
    factory = FrameFactory()
    message = readings_json(VALUES)
    body = publish_exact(TOPIC, message, 256 - len(factory.connect) - len(factory.disconnect))
    segment = factory.connect + body + factory.disconnect
    packet = MQTT(segment)
    assert [packet.getlayer(MQTT, nb=i).type for i in (1, 2, 3)] == [1, 3, 14]
    publish = packet.getlayer("MQTT publish")
    assert publish.topic == TOPIC and publish.value.rstrip(b" ") == message
    assert list(publish_messages(segment)) == [publish.value]
    assert parse_readings(segment) == VALUES


def test_truncated_or_foreign_payloads_give_no_readings():
    payload = publish_exact(TOPIC, readings_json(VALUES), 256)
    assert parse_readings(payload[:-30]) is None  # PUBLISH cut short
    assert parse_readings(b"\x00\x01\x02") is None
    assert parse_readings(publish_exact(TOPIC, b'{"Temp": 1}', 64)) is None  # keys missing
    assert parse_readings(publish_exact(TOPIC, b'{"Temp": "hot"}', 64)) is None


def test_decode_many_handles_gaps_and_bad_messages():
    good = readings_json(VALUES)
    values, found = decode_many([good, None, b"{not json", good])
    assert found == [True, False, False, True]
    assert values[0] == VALUES and values[3] == VALUES
    assert values[1] == values[2] == (0.0,) * 8
