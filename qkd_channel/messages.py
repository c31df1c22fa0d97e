"""Classical post-processing messages and their HMAC-authenticated frames.

One pydantic model per message, told apart by ``type``; bytes fields travel as
base64 in JSON.  A frame is ``HMAC-SHA256(k_sender, body) || body`` with ``body``
the JSON of the message (RFC 2104).  ``k_sender`` is derived from the HMU's
enrolment secret and the sender's role, so a frame reflected back to its sender
fails its tag.  The tag is checked before the body is parsed.

Authentication under a long-lived secret with HMAC is computationally secure, not
information-theoretically (QKD proofs assume Wegman-Carter authentication with
pre-shared key); it is what the testbed's threat model (a classical MITM) needs.

Flow (Bob is the server, Alice the HMU)::

    Bob   -> Alice  sift          which slots were conclusive, how many clicked
    Alice -> Bob    sample        positions and bits of the disclosed sample
    Bob   -> Alice  parity_query  first one carries the Cascade plan and sample errors
    Alice -> Bob    parity_reply  ... repeated until Cascade is done
    Bob   -> Alice  verify        verification hash + seed, final length, PA seed
    Alice -> Bob    confirm       key confirmation tag of the HMU
    Bob   -> Alice  confirm       key confirmation tag of the server
    either          abort         reason; ends the session
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, Literal

import numpy as np
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from iomt.errors import AuthenticationError, DecodeError, QkdError
from iomt.strict import Strict

Role = Literal["hmu", "server"]
TAG_BYTES = 32
MIN_SECRET_BYTES = 16
_MAC_LABEL = b"iomt qkd classical channel v1|"


class _Message(Strict):
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    session_id: str = Field(min_length=1, max_length=128)
    seq: int = Field(ge=0, description="per-sender sequence number, from 0")


class Sift(_Message):
    """Bob's sifting announcement: the conclusive slots as a bitmap."""

    type: Literal["sift"] = "sift"
    qubits: int = Field(ge=1)
    detections: int = Field(ge=0, description="slots where any detector clicked")
    conclusive: bytes


class Sample(_Message):
    """Alice's disclosed sample: bitmap over sifted positions, her bits there."""

    type: Literal["sample"] = "sample"
    positions: bytes
    bits: bytes


class CascadeStart(Strict):
    """Parameter-estimation result and the public Cascade plan (first query only)."""

    sample_errors: int = Field(ge=0)
    block_sizes: list[int] = Field(min_length=1, max_length=64)
    seeds: list[int] = Field(min_length=1, max_length=64)


class ParityQuery(_Message):
    """Bob asks for parities of ranges: uint8 pass ids, uint32 starts and ends."""

    type: Literal["parity_query"] = "parity_query"
    start: CascadeStart | None = None
    passes: bytes
    starts: bytes
    ends: bytes


class ParityReply(_Message):
    """Alice's parities, packed 8 a byte."""

    type: Literal["parity_reply"] = "parity_reply"
    count: int = Field(ge=0)
    parities: bytes


class Verify(_Message):
    """Bob's verification hash, the final key length and the privacy-amplification seed."""

    type: Literal["verify"] = "verify"
    hash_seed: bytes
    tag: bytes = Field(min_length=8, max_length=8)
    key_bits: int = Field(ge=0)
    pa_seed: bytes


class Confirm(_Message):
    """Key confirmation tag of the sender."""

    type: Literal["confirm"] = "confirm"
    tag: bytes = Field(min_length=TAG_BYTES, max_length=TAG_BYTES)


class Abort(_Message):
    """The sender gives up the session; no key results."""

    type: Literal["abort"] = "abort"
    reason: str = Field(max_length=1000)


QkdMessage = Annotated[
    Sift | Sample | ParityQuery | ParityReply | Verify | Confirm | Abort,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[QkdMessage] = TypeAdapter(QkdMessage)


def mac_key(secret: bytes, sender: Role) -> bytes:
    """The HMAC key for frames sent by ``sender``, derived from the enrolment secret."""
    if len(secret) < MIN_SECRET_BYTES:
        raise QkdError(f"enrolment secret must have at least {MIN_SECRET_BYTES} bytes")
    return hmac.new(secret, _MAC_LABEL + sender.encode(), hashlib.sha256).digest()


def seal(message: _Message, key: bytes) -> bytes:
    """Serialise ``message`` and prefix its HMAC tag under ``key``."""
    body = message.model_dump_json().encode()
    return hmac.new(key, body, hashlib.sha256).digest() + body


def open_frame(frame: bytes, key: bytes) -> QkdMessage:
    """Check the tag of ``frame`` under ``key`` and parse the message inside."""
    if len(frame) <= TAG_BYTES:
        raise DecodeError(f"QKD frame of {len(frame)} bytes is too short")
    tag, body = frame[:TAG_BYTES], frame[TAG_BYTES:]
    if not hmac.compare_digest(tag, hmac.new(key, body, hashlib.sha256).digest()):
        raise AuthenticationError("QKD frame fails its HMAC tag (tampered or wrong secret)")
    try:
        return _ADAPTER.validate_json(body)
    except ValidationError as exc:
        raise DecodeError(f"authenticated QKD frame holds no valid message: {exc}") from exc


def pack_bits(bits: np.ndarray) -> bytes:
    """0/1 values packed 8 a byte."""
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()


def unpack_bits(data: bytes, count: int) -> np.ndarray:
    """``count`` bits packed by :func:`pack_bits`; DecodeError if the size is wrong."""
    if len(data) != (count + 7) // 8:
        raise DecodeError(f"{len(data)} bytes cannot hold exactly {count} bits")
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8))[:count]


def pack_u32(values: np.ndarray) -> bytes:
    return np.asarray(values, dtype="<u4").tobytes()


def unpack_u32(data: bytes) -> np.ndarray:
    if len(data) % 4:
        raise DecodeError("uint32 array has a length that is not a multiple of 4")
    return np.frombuffer(data, dtype="<u4").astype(np.int64)
