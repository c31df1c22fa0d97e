"""Frames: the bytes of one MQTT payload, an envelope in clear and a (sealable) payload.

Layout::

    b"IOMT" | u16 envelope length | envelope JSON | payload
    payload (before sealing) = u32 message length | message JSON | tensor body

The envelope stays readable so a receiver can route, pick a key and reject replays
before it decrypts; when a payload is sealed the envelope bytes are its associated
data, so neither can be changed without the tag failing.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pydantic import ValidationError

from iomt.errors import DecodeError
from iomt.wire.codec import Tensor, decode_tensors, encode_tensors
from iomt.wire.envelope import Envelope
from iomt.wire.messages import MESSAGE_ADAPTER, Message

MAGIC = b"IOMT"
_HEAD = struct.Struct("!4sH")
_MSG_LEN = struct.Struct("!I")
MAX_ENVELOPE = 4096

Seal = Callable[[bytes, bytes], bytes]
"""``seal(payload, associated_data) -> sealed payload``."""
Open = Callable[[Envelope, bytes, bytes], bytes]
"""``open(envelope, sealed payload, associated_data) -> payload``; raises on a bad tag."""


@dataclass(frozen=True)
class Frame:
    """A decoded frame: its envelope, its message and the tensors the message indexes."""

    envelope: Envelope
    message: Message
    tensors: dict[str, Tensor] = field(default_factory=dict)
    size: int = 0


def encode_frame(
    envelope: Envelope,
    message: Message,
    tensors: Mapping[str, Tensor] | None = None,
    *,
    seal: Seal | None = None,
) -> bytes:
    """The bytes of one frame; ``tensors`` fill the message's tensor index."""
    if envelope.type != message.type:
        raise ValueError(f"envelope type {envelope.type!r} != message type {message.type!r}")
    body = b""
    if tensors is not None:
        specs, body = encode_tensors(tensors)
        message = message.model_copy(update={"tensors": specs})
    message_json = message.model_dump_json().encode()
    payload = _MSG_LEN.pack(len(message_json)) + message_json + body
    envelope_json = envelope.model_dump_json().encode()
    if len(envelope_json) > MAX_ENVELOPE:
        raise ValueError("envelope too large")
    if envelope.cipher != "none":
        if seal is None:
            raise ValueError(f"envelope says {envelope.cipher} but no seal was given")
        payload = seal(payload, envelope_json)
    return _HEAD.pack(MAGIC, len(envelope_json)) + envelope_json + payload


def _split(data: bytes) -> tuple[Envelope, bytes, bytes]:
    if len(data) < _HEAD.size:
        raise DecodeError(f"frame of {len(data)} bytes is too short")
    magic, env_len = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise DecodeError("frame does not start with the IOMT magic")
    if env_len > MAX_ENVELOPE or _HEAD.size + env_len > len(data):
        raise DecodeError("frame envelope length is out of range")
    envelope_json = bytes(data[_HEAD.size : _HEAD.size + env_len])
    try:
        envelope = Envelope.model_validate_json(envelope_json)
    except ValidationError as exc:
        raise DecodeError(f"invalid envelope: {_first_error(exc)}") from exc
    return envelope, envelope_json, bytes(data[_HEAD.size + env_len :])


def peek_envelope(data: bytes) -> Envelope:
    """The envelope of a frame, without touching (or decrypting) its payload."""
    return _split(data)[0]


def decode_frame(data: bytes, *, open_: Open | None = None) -> Frame:
    """Parse and strictly validate a frame; raises a ``PeerError`` subclass on bad input."""
    envelope, envelope_json, payload = _split(data)
    if envelope.cipher != "none":
        if open_ is None:
            raise DecodeError(f"frame is sealed with {envelope.cipher} but no key is set up")
        payload = open_(envelope, payload, envelope_json)
    if len(payload) < _MSG_LEN.size:
        raise DecodeError("frame payload is too short")
    (msg_len,) = _MSG_LEN.unpack_from(payload)
    if _MSG_LEN.size + msg_len > len(payload):
        raise DecodeError("frame message length is out of range")
    message_json = payload[_MSG_LEN.size : _MSG_LEN.size + msg_len]
    try:
        message = MESSAGE_ADAPTER.validate_json(message_json)
    except ValidationError as exc:
        raise DecodeError(f"invalid {envelope.type!r} message: {_first_error(exc)}") from exc
    if message.type != envelope.type:
        raise DecodeError(f"envelope says {envelope.type!r} but message is {message.type!r}")
    body = memoryview(payload)[_MSG_LEN.size + msg_len :]
    specs = getattr(message, "tensors", [])
    tensors = decode_tensors(specs, body) if specs or len(body) else {}
    return Frame(envelope=envelope, message=message, tensors=tensors, size=len(data))


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(root)"
    return f"{where}: {err['msg']}"
