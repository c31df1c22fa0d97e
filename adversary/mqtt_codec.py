"""MQTT 3.1.1 (and 5) control-packet framing: a bytes-in, packets-out reader and PUBLISH codec.

Pure: no sockets.  Layout (MQTT 3.1.1, OASIS 2014, section 2)::

    fixed header  = byte 1: packet type (4 bits) | flags (4 bits)
                    remaining length: 1-4 bytes, 7 bits each, least significant first,
                    bit 8 set while more bytes follow (max 268,435,455)
    PUBLISH body  = topic (u16 length + UTF-8) | packet id (u16, QoS 1 and 2 only)
                    | [MQTT 5 only: properties, varint length + bytes] | payload

A TCP stream has no resynchronisation markers: once :class:`PacketReader` meets bytes
that cannot be a control packet (a 5-byte length, a reserved type, flags the
specification fixes otherwise), it stops parsing that stream and hands everything
after as :class:`Garbage`, to be forwarded untouched.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from iomt.errors import DecodeError

CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
PUBREC = 5
PUBREL = 6
PUBCOMP = 7
SUBSCRIBE = 8
SUBACK = 9
UNSUBSCRIBE = 10
UNSUBACK = 11
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14
AUTH = 15  # MQTT 5 only

MAX_REMAINING_LENGTH = 268_435_455  # 0xFF 0xFF 0xFF 0x7F
_U16 = struct.Struct("!H")
# flags the specification fixes for every packet type but PUBLISH (3.1.1, table 2.2)
_FIXED_FLAGS = {PUBREL: 0b0010, SUBSCRIBE: 0b0010, UNSUBSCRIBE: 0b0010}


class MalformedPacket(DecodeError):
    """Bytes that are not a valid MQTT control packet."""


def encode_varint(value: int) -> bytes:
    """The minimal 1-4 byte encoding of a remaining length (or MQTT 5 property length)."""
    if not 0 <= value <= MAX_REMAINING_LENGTH:
        raise ValueError(f"remaining length {value} is outside 0..{MAX_REMAINING_LENGTH}")
    out = bytearray()
    while True:
        byte, value = value % 128, value // 128
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data: bytes | bytearray | memoryview, offset: int = 0) -> tuple[int, int] | None:
    """``(value, bytes used)`` of the varint at ``offset``; None if more bytes are needed.

    Raises :class:`MalformedPacket` when a fourth byte still has its continuation bit.
    """
    value = 0
    for i in range(4):
        if offset + i >= len(data):
            return None
        byte = data[offset + i]
        value += (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, i + 1
    raise MalformedPacket("variable length integer is longer than 4 bytes")


@dataclass(frozen=True)
class Packet:
    """One whole control packet: its type, its flags and its exact bytes on the wire."""

    type: int
    flags: int
    raw: bytes
    header_len: int

    @property
    def body(self) -> bytes:
        """The variable header and payload (everything after the remaining length)."""
        return self.raw[self.header_len :]


@dataclass(frozen=True)
class Garbage:
    """Bytes of a stream that stopped parsing; forward them as they are."""

    data: bytes


def check_fixed_header(first_byte: int) -> tuple[int, int]:
    """``(type, flags)`` of a first header byte; MalformedPacket for reserved values."""
    ptype, flags = first_byte >> 4, first_byte & 0x0F
    if ptype == 0:
        raise MalformedPacket("packet type 0 is reserved")
    if ptype == PUBLISH:
        if (flags >> 1) & 0b11 == 0b11:
            raise MalformedPacket("PUBLISH with QoS 3")
    elif ptype != AUTH and flags != _FIXED_FLAGS.get(ptype, 0):
        raise MalformedPacket(f"packet type {ptype} with reserved flags {flags:04b}")
    return ptype, flags


class PacketReader:
    """Cuts one direction of an MQTT stream into packets, whatever the TCP read sizes.

    ``first_type`` (CONNECT for client -> broker, CONNACK for the other way) makes a
    stream that does not open as MQTT (TLS records, say) garbage from its first byte.
    """

    def __init__(self, *, first_type: int | None = None) -> None:
        self._buffer = bytearray()
        self._first_type = first_type
        self.packets = 0
        self.broken: str | None = None  # why the stream stopped parsing
        self.garbage_bytes = 0

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete packet held back until the rest arrives."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Packet | Garbage]:
        """The packets (or garbage) completed by ``data``; incomplete bytes are kept."""
        if self.broken is not None:
            return self._garbage(bytes(data))
        self._buffer += data
        out: list[Packet | Garbage] = []
        while self._buffer:
            try:
                packet = self._next()
            except MalformedPacket as exc:
                self.broken = str(exc)
                rest = bytes(self._buffer)
                self._buffer.clear()
                return out + self._garbage(rest)
            if packet is None:
                break
            out.append(packet)
        return out

    def _garbage(self, data: bytes) -> list[Packet | Garbage]:
        if not data:
            return []
        self.garbage_bytes += len(data)
        return [Garbage(data)]

    def _next(self) -> Packet | None:
        buffer = self._buffer
        ptype, flags = check_fixed_header(buffer[0])
        if self.packets == 0 and self._first_type is not None and ptype != self._first_type:
            raise MalformedPacket(f"stream opens with packet type {ptype}, not {self._first_type}")
        length = decode_varint(buffer, 1)
        if length is None:
            return None
        remaining, used = length
        end = 1 + used + remaining
        if len(buffer) < end:
            return None
        raw = bytes(buffer[:end])
        del buffer[:end]
        self.packets += 1
        return Packet(type=ptype, flags=flags, raw=raw, header_len=1 + used)


def encode_packet(ptype: int, flags: int, body: bytes) -> bytes:
    """Fixed header with the minimal remaining length, then ``body``."""
    return bytes([(ptype << 4) | (flags & 0x0F)]) + encode_varint(len(body)) + body


@dataclass(frozen=True)
class Publish:
    """A parsed PUBLISH; ``properties`` holds MQTT 5 properties verbatim (b"" for 3.1.1)."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None
    properties: bytes = b""

    def with_payload(self, payload: bytes) -> Publish:
        return replace(self, payload=payload)


def _read_u16(body: bytes, at: int, what: str) -> int:
    if at + 2 > len(body):
        raise MalformedPacket(f"packet ends inside its {what}")
    return _U16.unpack_from(body, at)[0]


def parse_publish(packet: Packet, *, mqtt5: bool = False) -> Publish:
    """The topic, packet id and payload of a PUBLISH; MalformedPacket if they do not fit."""
    if packet.type != PUBLISH:
        raise MalformedPacket(f"packet type {packet.type} is not PUBLISH")
    body = packet.body
    qos = (packet.flags >> 1) & 0b11
    topic_len = _read_u16(body, 0, "topic length")
    at = 2 + topic_len
    if at > len(body):
        raise MalformedPacket("PUBLISH topic runs past the packet")
    try:
        topic = body[2:at].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedPacket("PUBLISH topic is not UTF-8") from exc
    packet_id = None
    if qos:
        packet_id = _read_u16(body, at, "packet id")
        at += 2
    properties = b""
    if mqtt5:
        prop = decode_varint(body, at)
        if prop is None or at + prop[1] + prop[0] > len(body):
            raise MalformedPacket("PUBLISH properties run past the packet")
        properties = body[at : at + prop[1] + prop[0]]
        at += len(properties)
    return Publish(
        topic=topic,
        payload=body[at:],
        qos=qos,
        retain=bool(packet.flags & 0b0001),
        dup=bool(packet.flags & 0b1000),
        packet_id=packet_id,
        properties=properties,
    )


def encode_publish(publish: Publish, *, mqtt5: bool = False) -> bytes:
    """The bytes of ``publish``, its remaining length recomputed."""
    if publish.qos not in (0, 1, 2):
        raise ValueError(f"QoS {publish.qos} is not 0, 1 or 2")
    if (publish.packet_id is None) != (publish.qos == 0):
        raise ValueError("a packet id is needed exactly for QoS 1 and 2")
    topic = publish.topic.encode("utf-8")
    body = _U16.pack(len(topic)) + topic
    if publish.packet_id is not None:
        body += _U16.pack(publish.packet_id)
    if mqtt5:
        body += publish.properties or b"\x00"
    flags = (publish.dup << 3) | (publish.qos << 1) | int(publish.retain)
    return encode_packet(PUBLISH, flags, body + publish.payload)


def encode_ack(ptype: int, packet_id: int) -> bytes:
    """PUBACK, PUBREC or PUBCOMP (success) for ``packet_id``."""
    if ptype not in (PUBACK, PUBREC, PUBCOMP):
        raise ValueError(f"packet type {ptype} is not PUBACK, PUBREC or PUBCOMP")
    return encode_packet(ptype, 0, _U16.pack(packet_id))


def packet_id_of(packet: Packet) -> int:
    """The packet id that opens a PUBACK/PUBREC/PUBREL/PUBCOMP body."""
    return _read_u16(packet.body, 0, "packet id")


def protocol_level(packet: Packet) -> int:
    """The protocol level a CONNECT announces: 3 (3.1), 4 (3.1.1) or 5."""
    if packet.type != CONNECT:
        raise MalformedPacket(f"packet type {packet.type} is not CONNECT")
    body = packet.body
    name_len = _read_u16(body, 0, "protocol name")
    if 2 + name_len >= len(body):
        raise MalformedPacket("CONNECT ends inside its protocol name")
    return body[2 + name_len]
