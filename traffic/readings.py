"""Patient readings as a sensor gateway publishes them: JSON in MQTT PUBLISH packets.

Pure core (no I/O).  The synthesiser writes each record's eight biometrics
(``READING_COLUMNS``) as one JSON object, padded with trailing spaces (still valid
JSON) so the TCP segment has exactly the size the record calls for, and wraps it in
MQTT 3.1.1 control packets (OASIS MQTT 3.1.1, sections 2.2 and 3.3): the first segment
of a flow carries CONNECT + PUBLISH (a client may send packets before CONNACK, section
3.1.4), the last one DISCONNECT as well.  The extractor walks the control packets of a
segment and decodes the first PUBLISH whose message is such an object.

Numbers are written with Python's shortest round-trip ``repr``, so the float64 values
read back are bit-for-bit those of the CSV.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache

import numpy as np

READING_KEYS: tuple[str, ...] = (
    "Temp", "SpO2", "Pulse_Rate", "SYS", "DIA", "Heart_rate", "Resp_Rate", "ST",
)  # fmt: skip
"""JSON keys of the readings; the same names and order as the dataset's columns."""

TOPIC = b"ehms/patient/vitals"
"""Topic the gateway publishes readings on (one for every flow: no label leak)."""

FILLER_TOPIC = b"ehms/hb"
"""Topic of padding-only PUBLISH packets (heartbeats and broker notices)."""

CONNECT_TYPE, CONNACK_TYPE, PUBLISH_TYPE, DISCONNECT_TYPE = 1, 2, 3, 14
_GET = operator.itemgetter(*READING_KEYS)


@lru_cache(maxsize=65536)
def format_number(value: float) -> str:
    """The shortest text that reads back as exactly ``value`` (integers without ``.0``)."""
    if not math.isfinite(value):
        raise ValueError(f"reading {value!r} is not finite")
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def readings_json(values: Sequence[float]) -> bytes:
    """The readings as a compact JSON object with ``READING_KEYS`` in order."""
    if len(values) != len(READING_KEYS):
        raise ValueError(f"expected {len(READING_KEYS)} readings, got {len(values)}")
    body = ",".join(
        f'"{k}":{format_number(float(v))}' for k, v in zip(READING_KEYS, values, strict=False)
    )
    return ("{" + body + "}").encode("ascii")


def readings_messages(columns: Sequence[np.ndarray]) -> list[bytes]:
    """``readings_json`` of every row of the eight reading ``columns`` (fast for many)."""
    if len(columns) != len(READING_KEYS):
        raise ValueError(f"expected {len(READING_KEYS)} reading columns, got {len(columns)}")
    texts = []
    for key, column in zip(READING_KEYS, columns, strict=True):
        uniq, inverse = np.unique(np.asarray(column, dtype=np.float64), return_inverse=True)
        words = [f'"{key}":{format_number(float(v))}' for v in uniq.tolist()]
        texts.append([words[j] for j in inverse.tolist()])
    return [("{" + ",".join(row) + "}").encode("ascii") for row in zip(*texts, strict=True)]


def remaining_length(n: int) -> bytes:
    """MQTT variable-length integer (section 2.2.3) for a remaining length ``n``."""
    if not 0 <= n <= 268_435_455:
        raise ValueError(f"MQTT remaining length {n} out of range")
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish_header(topic: bytes, message_len: int) -> bytes:
    """Fixed header plus topic of a QoS 0 PUBLISH whose message is ``message_len`` long."""
    rest = 2 + len(topic) + message_len
    return (
        bytes([PUBLISH_TYPE << 4]) + remaining_length(rest) + len(topic).to_bytes(2, "big") + topic
    )


def publish_overhead(topic: bytes, total: int) -> int:
    """Bytes of a QoS 0 PUBLISH that are not message, for a packet ``total`` bytes long."""
    for width in (1, 2, 3, 4):
        rest = total - 1 - width
        if rest >= 2 + len(topic) and len(remaining_length(rest)) == width:
            return 1 + width + 2 + len(topic)
    raise ValueError(f"no PUBLISH on topic {topic!r} is exactly {total} bytes long")


def publish_exact(topic: bytes, message: bytes, total: int, fill: bytes = b" ") -> bytes:
    """A QoS 0 PUBLISH of exactly ``total`` bytes: ``message`` padded with ``fill``."""
    room = total - publish_overhead(topic, total)
    if room < len(message):
        raise ValueError(f"{len(message)}-byte message does not fit a {total}-byte PUBLISH")
    return publish_header(topic, room) + message + fill * (room - len(message))


def min_publish_size(topic: bytes) -> int:
    """Smallest PUBLISH on ``topic`` (empty message)."""
    return 1 + 1 + 2 + len(topic)


def publish_messages(payload: bytes) -> Iterator[bytes]:
    """Messages of the complete PUBLISH packets in one TCP segment, in order.

    A control packet that runs past the end of ``payload`` (split across segments)
    ends the walk: segments are not reassembled.
    """
    pos, end = 0, len(payload)
    while pos + 2 <= end:
        first = payload[pos]
        length, shift, i = 0, 0, pos + 1
        while True:
            if i >= end or shift > 21:
                return
            byte = payload[i]
            length |= (byte & 0x7F) << shift
            shift += 7
            i += 1
            if not byte & 0x80:
                break
        stop = i + length
        if stop > end:
            return
        if first >> 4 == PUBLISH_TYPE and length >= 2:
            topic_len = int.from_bytes(payload[i : i + 2], "big")
            body = i + 2 + topic_len + (2 if (first >> 1) & 3 else 0)
            if body <= stop:
                yield payload[body:stop]
        pos = stop


def readings_message(payloads: Iterable[bytes]) -> bytes | None:
    """The first PUBLISH message among ``payloads`` that looks like a JSON object."""
    for payload in payloads:
        pos, end = 0, len(payload)
        while pos + 2 <= end:
            first = payload[pos]
            i = pos + 1
            byte = payload[i]
            length = byte & 0x7F
            shift = 7
            i += 1
            while byte & 0x80:
                if i >= end or shift > 21:
                    break
                byte = payload[i]
                length |= (byte & 0x7F) << shift
                shift += 7
                i += 1
            stop = i + length
            if byte & 0x80 or stop > end:
                break
            if first >> 4 == PUBLISH_TYPE and length >= 2:
                body = i + 2 + ((payload[i] << 8) | payload[i + 1]) + (2 if (first >> 1) & 3 else 0)
                if body < stop and payload[body] == 0x7B:  # "{"
                    return payload[body:stop]
            pos = stop
    return None


def parse_readings(payload: bytes) -> tuple[float, ...] | None:
    """The readings of the first PUBLISH in one segment that carries them, else ``None``."""
    for message in publish_messages(payload):
        values = _decode(message)
        if values is not None:
            return values
    return None


def decode_many(messages: Sequence[bytes | None]) -> tuple[list[tuple[float, ...]], list[bool]]:
    """Readings of many messages (``None``: no message) and whether each decoded.

    One ``json.loads`` over all of them when they are all valid JSON objects with
    numeric readings, one per message otherwise; a message that does not decode reads
    as all zeros.  Values go through ``float`` (a JSON ``true`` reads as 1).
    """
    zeros = (0.0,) * len(READING_KEYS)
    present = [m for m in messages if m]
    try:
        objs = json.loads(b"[" + b",".join(present) + b"]")
        got = iter(np.asarray([_GET(o) for o in objs], dtype=np.float64).tolist())
        values = [tuple(next(got)) if m else zeros for m in messages]
        return values, [bool(m) for m in messages]
    except (ValueError, TypeError, KeyError):
        pass
    values, found = [], []
    for m in messages:
        got = _values(_loads(m))
        values.append(got if got is not None else zeros)
        found.append(got is not None)
    return values, found


def _loads(message: bytes | None) -> object:
    if not message:
        return None
    try:
        return json.loads(message)
    except ValueError:
        return None


def _values(obj: object) -> tuple[float, ...] | None:
    if not isinstance(obj, dict):
        return None
    try:
        raw = _GET(obj)
    except KeyError:
        return None
    try:
        return tuple(float(v) for v in raw)
    except (TypeError, ValueError):
        return None


def _decode(message: bytes) -> tuple[float, ...] | None:
    if not message.startswith(b"{"):
        return None
    return _values(_loads(message))
