"""Both directions of one HMU-server link sealed under one QKD key (AES-256-GCM or OTP).

The HMU seals with the hmu->server key and opens with server->hmu; the server the
other way round, so a frame reflected back to its sender never opens. The envelope
names the cipher and the QKD session (``key_id``); it is the associated data, so it
cannot be changed without the tag failing.
"""

from __future__ import annotations

from typing import Literal

from iomt.errors import AuthenticationError
from iomt.wire.aead import (
    Opener,
    OtpOpener,
    OtpSealer,
    Sealer,
    derive_key,
    derive_keys,
    otp_pools,
)
from iomt.wire.envelope import Cipher, Envelope

Role = Literal["hmu", "server"]
CipherName = Literal["aes-gcm", "otp"]


class LinkCipher:
    """Seal outgoing and open incoming payloads of one link for one party."""

    def __init__(self, qkd_key: bytes, session_id: str, role: Role, cipher: CipherName = "aes-gcm"):
        self.key_id = session_id
        # the neural cipher's key material: a separate HKDF output, never the AEAD keys.  It
        # depends on the QKD key alone (not on the random session id that salts the AEAD
        # keys), so a seeded run, whose simulated keys repeat, trains the same models
        self._cipher_root = derive_key(qkd_key, b"", b"iomt neural cipher", 32)
        self.cipher: Cipher = "aes-256-gcm" if cipher == "aes-gcm" else "otp"
        if cipher == "aes-gcm":
            up, down = derive_keys(qkd_key, session_id)
            send, receive = (up, down) if role == "hmu" else (down, up)
            self._sealer: Sealer | OtpSealer = Sealer(send)
            self._opener: Opener | OtpOpener = Opener(receive)
        else:
            up_pool, down_pool = otp_pools(qkd_key)
            send_pool, receive_pool = (
                (up_pool, down_pool) if role == "hmu" else (down_pool, up_pool)
            )
            self._sealer = OtpSealer(send_pool)
            self._opener = OtpOpener(receive_pool)

    def neural_key(self, round_: int, bits: int) -> bytes:
        """Key material for the neural cipher of round ``round_``: both ends derive the same
        (HKDF-SHA256 from the link's QKD key, per round)."""
        label = f"round {round_}".encode()
        return derive_key(self._cipher_root, b"", label, (bits + 7) // 8)

    def seal(self, payload: bytes, associated_data: bytes) -> bytes:
        """Raises ``QkdError`` when a one-time pad cannot cover ``payload``."""
        return self._sealer.seal(payload, associated_data)

    def open(self, envelope: Envelope, sealed: bytes, associated_data: bytes) -> bytes:
        """Raises ``AuthenticationError`` (tampered, wrong key) or ``ReplayError``."""
        if envelope.key_id != self.key_id or envelope.cipher != self.cipher:
            raise AuthenticationError(
                f"frame sealed with {envelope.cipher} key {envelope.key_id!r}, "
                f"link has {self.cipher} key {self.key_id!r}"
            )
        return self._opener.open(sealed, associated_data)
