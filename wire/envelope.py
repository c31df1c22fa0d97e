"""The envelope every wire message travels in: who, to whom, when, for which run and round."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from iomt.strict import Strict

SCHEMA_VERSION = 1
BROADCAST = "*"

Cipher = Literal["none", "aes-256-gcm", "otp"]


class Envelope(Strict):
    """Routing metadata, sent in clear and bound to the payload as AEAD associated data."""

    schema_version: Literal[1] = SCHEMA_VERSION
    run_id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    round: int = Field(ge=0)
    message_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    sender: str = Field(min_length=1, max_length=64)
    recipient: str = Field(min_length=1, max_length=64)
    created_at: float = Field(ge=0)
    type: str = Field(min_length=1, max_length=32)
    cipher: Cipher = "none"
    key_id: str = Field("", max_length=64, description="QKD session of the sealing key")


def new_envelope(
    run_id: str,
    round_: int,
    sender: str,
    recipient: str,
    type_: str,
    *,
    message_id: str,
    created_at: float,
    cipher: Cipher = "none",
    key_id: str = "",
) -> Envelope:
    """An envelope; the caller's edge supplies the id and clock (``iomt.wire.stamp``)."""
    return Envelope(
        run_id=run_id,
        round=round_,
        message_id=message_id,
        sender=sender,
        recipient=recipient,
        created_at=created_at,
        type=type_,
        cipher=cipher,
        key_id=key_id,
    )
