"""MQTT framing: varint edges, packets cut anywhere by TCP, several per read, and garbage."""

import numpy as np
import pytest

from iomt.adversary.mqtt_codec import (
    CONNECT,
    PINGREQ,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBSCRIBE,
    Garbage,
    MalformedPacket,
    Packet,
    PacketReader,
    Publish,
    decode_varint,
    encode_ack,
    encode_packet,
    encode_publish,
    encode_varint,
    packet_id_of,
    parse_publish,
    protocol_level,
)

# (value, its encoding) at every boundary where the encoding grows by a byte
VARINTS = [
    (0, b"\x00"),
    (127, b"\x7f"),
    (128, b"\x80\x01"),
    (16383, b"\xff\x7f"),
    (16384, b"\x80\x80\x01"),
    (2097151, b"\xff\xff\x7f"),
    (2097152, b"\x80\x80\x80\x01"),
    (268435455, b"\xff\xff\xff\x7f"),
]


@pytest.mark.parametrize(("value", "encoded"), VARINTS)
def test_varint_boundaries(value, encoded):
    assert encode_varint(value) == encoded
    assert decode_varint(encoded) == (value, len(encoded))
    assert decode_varint(b"junk" + encoded + b"\x42", 4) == (value, len(encoded))
    # every strict prefix is "need more bytes", never an error or a wrong value
    for cut in range(len(encoded)):
        assert decode_varint(encoded[:cut]) is None


@pytest.mark.parametrize("value", [-1, 268435456])
def test_varint_out_of_range_is_refused(value):
    with pytest.raises(ValueError):
        encode_varint(value)


def test_five_byte_varint_is_malformed():
    with pytest.raises(MalformedPacket):
        decode_varint(b"\xff\xff\xff\xff\x01")


def connect_packet(level=4, client_id=b"hmu-01"):
    body = b"\x00\x04MQTT" + bytes([level, 0x02]) + b"\x00\x3c" + len(client_id).to_bytes(2, "big")
    return encode_packet(CONNECT, 0, body + client_id)


def publish_with_remaining(remaining: int, qos=1) -> tuple[bytes, Publish]:
    """A PUBLISH whose remaining length is exactly ``remaining``."""
    topic = "iomt/r/hmu/hmu-01/update"
    overhead = 2 + len(topic) + (2 if qos else 0)
    payload = (np.arange(remaining - overhead) % 251).astype(np.uint8).tobytes()
    pub = Publish(topic=topic, payload=payload, qos=qos, packet_id=7 if qos else None)
    return encode_publish(pub), pub


@pytest.mark.parametrize(("remaining", "_"), VARINTS[1:6])
def test_publish_at_length_boundaries_survives_any_cut(remaining, _):
    raw, pub = publish_with_remaining(remaining)
    assert raw[1 : 1 + len(encode_varint(remaining))] == encode_varint(remaining)
    rng = np.random.default_rng(remaining)
    reader = PacketReader()
    stream = raw + encode_packet(PINGREQ, 0, b"")
    out = []
    at = 0
    while at < len(stream):
        step = int(rng.integers(1, 70_000))
        out += reader.feed(stream[at : at + step])
        at += step
    assert [type(p) for p in out] == [Packet, Packet]
    assert out[0].raw == raw and out[1].type == PINGREQ
    assert parse_publish(out[0]) == pub
    assert reader.buffered == 0 and reader.broken is None


def test_every_byte_on_its_own_and_many_packets_per_read():
    stream = (
        connect_packet()
        + encode_publish(Publish("a/b", b"x" * 300, qos=0))
        + encode_publish(Publish("a/c", b"", qos=2, packet_id=65535, retain=True, dup=True))
        + encode_packet(PUBREL, 0b0010, b"\xff\xff")
        + encode_packet(PINGREQ, 0, b"")
    )
    one_by_one = PacketReader(first_type=CONNECT)
    split = [p for i in range(len(stream)) for p in one_by_one.feed(stream[i : i + 1])]
    whole = PacketReader(first_type=CONNECT).feed(stream)
    assert split == whole
    assert [p.type for p in whole] == [CONNECT, PUBLISH, PUBLISH, PUBREL, PINGREQ]
    assert b"".join(p.raw for p in whole) == stream
    second = parse_publish(whole[2])
    assert (second.qos, second.packet_id, second.retain, second.dup) == (2, 65535, True, True)
    assert packet_id_of(whole[3]) == 65535
    assert protocol_level(whole[0]) == 4


def test_incomplete_tail_is_held_back_until_it_completes():
    first = encode_publish(Publish("t", b"one", qos=0))
    second = encode_publish(Publish("t", b"two" * 100, qos=1, packet_id=3))
    reader = PacketReader()
    got = reader.feed(first + second[:5])
    assert [p.raw for p in got] == [first]
    assert reader.buffered == 5
    got = reader.feed(second[5:])
    assert [parse_publish(p).payload for p in got] == [b"two" * 100]


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x30\xff\xff\xff\xff\x01rest",  # 5-byte remaining length
        b"\x00\x00",  # reserved packet type 0
        bytes([SUBSCRIBE << 4, 0]),  # SUBSCRIBE must carry flags 0010
        bytes([PUBLISH << 4 | 0b0110, 0]),  # QoS 3
        bytes([PINGREQ << 4 | 1, 0]),  # reserved flags set
    ],
)
def test_malformed_stream_turns_into_garbage_for_good(garbage):
    good = encode_packet(PINGREQ, 0, b"")
    reader = PacketReader()
    out = reader.feed(good + garbage)
    assert out == [Packet(PINGREQ, 0, good, 2), Garbage(garbage)]
    assert reader.broken
    # nothing after is parsed again, even a perfectly good packet
    assert reader.feed(good) == [Garbage(good)]
    assert reader.garbage_bytes == len(garbage) + len(good)


def test_a_stream_that_does_not_open_with_connect_is_garbage():
    tls_client_hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
    reader = PacketReader(first_type=CONNECT)
    assert reader.feed(tls_client_hello) == [Garbage(tls_client_hello)]
    # a bare PINGREQ is a valid packet, but not a valid opening
    assert PacketReader(first_type=CONNECT).feed(b"\xc0\x00") == [Garbage(b"\xc0\x00")]


@pytest.mark.parametrize(
    "body",
    [
        b"",  # no topic length
        b"\x00",  # half a topic length
        b"\x00\x09abc",  # topic runs past the packet
        b"\x00\x02\xff\xfe",  # topic not UTF-8
        b"\x00\x01t\x00",  # QoS 1 without a whole packet id
    ],
)
def test_malformed_publish_bodies_raise(body):
    packet = PacketReader().feed(encode_packet(PUBLISH, 0b0010, body))[0]
    with pytest.raises(MalformedPacket):
        parse_publish(packet)


def test_rewritten_publish_gets_a_correct_remaining_length():
    original = Publish("iomt/r/hmu/hmu-01/update", b"a" * 90, qos=1, packet_id=42)
    raw = encode_publish(original)
    assert raw[1] == len(raw) - 2 and len(raw) - 2 < 128
    bigger = original.with_payload(b"b" * 20_000)
    raw2 = encode_publish(bigger)
    parsed = PacketReader().feed(raw2)
    assert len(parsed) == 1 and parse_publish(parsed[0]) == bigger
    assert decode_varint(raw2, 1) == (len(raw2) - 4, 3)


def test_mqtt5_properties_are_kept_verbatim():
    props = b"\x03\x01\x01\x23"  # length 3: payload format indicator, topic alias (partial)
    pub = Publish("t/x", b"payload", qos=1, packet_id=9, properties=props)
    raw = encode_publish(pub, mqtt5=True)
    packet = PacketReader().feed(raw)[0]
    assert parse_publish(packet, mqtt5=True) == pub
    assert parse_publish(packet, mqtt5=False).payload == props + b"payload"
    assert protocol_level(PacketReader().feed(connect_packet(level=5))[0]) == 5


def test_acks_and_their_packet_ids():
    for ptype in (PUBACK, PUBREC, PUBCOMP):
        raw = encode_ack(ptype, 513)
        assert raw == bytes([ptype << 4, 2, 2, 1])
        assert packet_id_of(PacketReader().feed(raw)[0]) == 513
    with pytest.raises(ValueError):
        encode_ack(PUBREL, 1)


def test_encode_publish_refuses_inconsistent_packet_ids():
    with pytest.raises(ValueError):
        encode_publish(Publish("t", b"", qos=1))
    with pytest.raises(ValueError):
        encode_publish(Publish("t", b"", qos=0, packet_id=1))
