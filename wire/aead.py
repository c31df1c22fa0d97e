"""Authenticated encryption of payloads under QKD keys: AES-256-GCM, or a one-time pad.

Keys.  :func:`derive_keys` turns a QKD key into one AES-256 key per direction with
HKDF-SHA256 (RFC 5869): ``salt`` = the QKD session id, ``info`` =
``b"iomt hmu->server"`` or ``b"iomt server->hmu"``.  Separate keys per direction
mean the two counters below can never produce the same (key, nonce) pair.

AES-GCM (NIST SP 800-38D).  :class:`Sealer` builds the 96-bit nonce
deterministically (SP 800-38D, 8.2.1): four zero bytes and a 64-bit big-endian
message counter, unique per key; it raises :class:`QkdError` once the counter
would wrap (ask for a fresh QKD key long before: ``rekey_rounds``).  A sealed
payload is ``counter (8 bytes) || ciphertext || tag (16 bytes)``; the associated
data (the frame envelope) is given by the caller and never sent by this module.

Replays.  :class:`Opener` keeps an anti-replay window over the counters, as IPsec
does (RFC 4303, 3.4.3): a counter above the highest seen is accepted; one within
``window`` below it is accepted once; older or repeated counters raise
:class:`ReplayError`, a :class:`ProtocolViolation` (a peer error: counted and
dropped, never fatal).  The window only moves after the tag verifies, so forged
frames cannot push genuine ones out.  A wrong key or any changed byte of the
payload or of the associated data raises :class:`AuthenticationError`.

One-time pad.  :class:`OtpPool` holds QKD key material and spends it once, front to
back; :class:`OtpSealer` takes ``32 + len(plaintext)`` bytes per message: a
Poly1305 key (Bernstein, FSE 2005) and the pad.  Poly1305 under a key used once is
a Wegman-Carter one-time MAC (a polynomial evaluation hash plus a one-time
offset): a forgery succeeds with probability at most ``8 ceil(L/16) / 2^106`` for
an L-byte message, information-theoretically.  The pool refuses with
:class:`QkdError` when it cannot cover a message.  Sealed: ``offset (8 bytes) ||
ciphertext || tag (16 bytes)``; the offset is where the message's material starts
in the pool, so the receiver finds it after lost messages, and an offset below its
own position is a replay.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import numpy as np
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.poly1305 import Poly1305

from iomt.errors import (
    AuthenticationError,
    DecodeError,
    QkdError,
    ReplayError,
)

LABEL_HMU_TO_SERVER = b"iomt hmu->server"
LABEL_SERVER_TO_HMU = b"iomt server->hmu"
KEY_BYTES = 32
TAG_BYTES = 16
COUNTER_BYTES = 8
MIN_QKD_KEY_BYTES = 16
DEFAULT_WINDOW = 64
_COUNTER = struct.Struct("!Q")
_NONCE_PREFIX = b"\x00\x00\x00\x00"
_OTP_MAC_KEY_BYTES = 32


class DirectionKeys(NamedTuple):
    """One AES-256 key per direction."""

    hmu_to_server: bytes
    server_to_hmu: bytes


def derive_keys(qkd_key: bytes, session_id: str | bytes) -> DirectionKeys:
    """Two AES-256 keys, one per direction, from one QKD key (HKDF-SHA256)."""
    if len(qkd_key) < MIN_QKD_KEY_BYTES:
        raise QkdError(f"QKD key of {len(qkd_key)} bytes is too short for AES-256 keys")
    salt = session_id.encode() if isinstance(session_id, str) else bytes(session_id)

    def expand(label: bytes) -> bytes:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=label)
        return hkdf.derive(qkd_key)

    return DirectionKeys(expand(LABEL_HMU_TO_SERVER), expand(LABEL_SERVER_TO_HMU))


def derive_key(secret: bytes, salt: bytes, label: bytes, length: int) -> bytes:
    """``length`` bytes for ``label`` from ``secret`` (HKDF-SHA256)."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=label).derive(secret)


def _nonce(counter: int) -> bytes:
    return _NONCE_PREFIX + _COUNTER.pack(counter)


class Sealer:
    """AES-256-GCM encryption under one key with a never-repeating counter nonce."""

    def __init__(self, key: bytes, *, limit: int = 2**64) -> None:
        if len(key) != KEY_BYTES:
            raise QkdError(f"AES-256 key must be {KEY_BYTES} bytes, got {len(key)}")
        if not 0 < limit <= 2**64:
            raise QkdError(f"nonce limit {limit} must be within (0, 2^64]")
        self._aead = AESGCM(key)
        self._next = 0
        self._limit = limit

    @property
    def sealed(self) -> int:
        """How many payloads this sealer has sealed."""
        return self._next

    def seal(self, plaintext: bytes, associated_data: bytes) -> bytes:
        """``counter || ciphertext || tag`` of ``plaintext`` bound to ``associated_data``."""
        if self._next >= self._limit:
            raise QkdError(
                f"nonce counter exhausted after {self._limit} messages: a fresh QKD key is needed"
            )
        counter = self._next
        self._next += 1
        body = self._aead.encrypt(_nonce(counter), plaintext, associated_data)
        return _COUNTER.pack(counter) + body


class _ReplayWindow:
    """Sliding window of accepted counters (RFC 4303 style)."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise QkdError(f"replay window {size} must be at least 1")
        self.size = size
        self.top = -1
        self._mask = 0  # bit i set: counter top - i was accepted

    def check(self, counter: int) -> None:
        if counter > self.top:
            return
        age = self.top - counter
        if age >= self.size:
            raise ReplayError(
                f"counter {counter} is older than the replay window (newest {self.top})"
            )
        if self._mask >> age & 1:
            raise ReplayError(f"counter {counter} was already accepted: replay")

    def accept(self, counter: int) -> None:
        if counter > self.top:
            shift = counter - self.top
            self._mask = ((self._mask << shift) | 1) & ((1 << self.size) - 1)
            self.top = counter
        else:
            self._mask |= 1 << (self.top - counter)


class Opener:
    """AES-256-GCM decryption that rejects tampering, wrong keys and replays."""

    def __init__(self, key: bytes, *, window: int = DEFAULT_WINDOW) -> None:
        if len(key) != KEY_BYTES:
            raise QkdError(f"AES-256 key must be {KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key)
        self._window = _ReplayWindow(window)

    def open(self, sealed: bytes, associated_data: bytes) -> bytes:
        """The plaintext of ``sealed``; AuthenticationError, ReplayError or DecodeError."""
        if len(sealed) < COUNTER_BYTES + TAG_BYTES:
            raise DecodeError(f"sealed payload of {len(sealed)} bytes is too short")
        (counter,) = _COUNTER.unpack_from(sealed)
        self._window.check(counter)
        try:
            plaintext = self._aead.decrypt(_nonce(counter), sealed[COUNTER_BYTES:], associated_data)
        except InvalidTag as exc:
            raise AuthenticationError(
                "AEAD tag does not verify: tampered payload or envelope, or wrong key"
            ) from exc
        self._window.accept(counter)
        return plaintext


class OtpPool:
    """QKD key material spent once, front to back."""

    def __init__(self, material: bytes) -> None:
        self._material = bytes(material)
        self._position = 0

    @property
    def position(self) -> int:
        """Bytes spent (or skipped) so far."""
        return self._position

    @property
    def remaining(self) -> int:
        return len(self._material) - self._position

    def take(self, count: int) -> bytes:
        """Spend the next ``count`` bytes; QkdError (nothing spent) if too few are left."""
        if count < 0:
            raise QkdError(f"cannot take {count} bytes from a one-time pad")
        if count > self.remaining:
            raise QkdError(
                f"one-time pad exhausted: {count} bytes needed, {self.remaining} left; "
                "run a fresh QKD session"
            )
        start = self._position
        self._position += count
        return self._material[start : self._position]

    def material_at(self, offset: int, count: int) -> bytes | None:
        """Unspent bytes ``[offset, offset + count)`` without spending them, or None."""
        if offset < self._position or offset + count > len(self._material):
            return None
        return self._material[offset : offset + count]

    def burn_to(self, offset: int) -> None:
        """Mark everything before ``offset`` as spent."""
        self._position = max(self._position, min(offset, len(self._material)))


def otp_pools(qkd_key: bytes) -> tuple[OtpPool, OtpPool]:
    """``(hmu->server pool, server->hmu pool)``: the two halves of a QKD key."""
    half = len(qkd_key) // 2
    return OtpPool(qkd_key[:half]), OtpPool(qkd_key[half : 2 * half])


def _xor(data: bytes, pad: bytes) -> bytes:
    a = np.frombuffer(data, dtype=np.uint8)
    b = np.frombuffer(pad, dtype=np.uint8)
    return np.bitwise_xor(a, b).tobytes()


def _mac_input(associated_data: bytes, ciphertext: bytes) -> bytes:
    # the lengths at the end make the split between the two parts unambiguous
    return associated_data + ciphertext + struct.pack("<QQ", len(associated_data), len(ciphertext))


class OtpSealer:
    """One-time-pad encryption with a Poly1305 one-time MAC, both from the pool."""

    def __init__(self, pool: OtpPool) -> None:
        self._pool = pool

    def seal(self, plaintext: bytes, associated_data: bytes) -> bytes:
        """``offset || ciphertext || tag``; QkdError when the pool cannot cover it."""
        offset = self._pool.position
        material = self._pool.take(_OTP_MAC_KEY_BYTES + len(plaintext))
        mac_key, pad = material[:_OTP_MAC_KEY_BYTES], material[_OTP_MAC_KEY_BYTES:]
        ciphertext = _xor(plaintext, pad)
        tag = Poly1305.generate_tag(mac_key, _mac_input(associated_data, ciphertext))
        return _COUNTER.pack(offset) + ciphertext + tag


class OtpOpener:
    """Checks the one-time MAC, then removes the pad; rejects replays and tampering."""

    def __init__(self, pool: OtpPool) -> None:
        self._pool = pool

    def open(self, sealed: bytes, associated_data: bytes) -> bytes:
        """The plaintext of ``sealed``; AuthenticationError, ReplayError or DecodeError."""
        if len(sealed) < COUNTER_BYTES + TAG_BYTES:
            raise DecodeError(f"sealed payload of {len(sealed)} bytes is too short")
        (offset,) = _COUNTER.unpack_from(sealed)
        ciphertext, tag = sealed[COUNTER_BYTES:-TAG_BYTES], sealed[-TAG_BYTES:]
        if offset < self._pool.position:
            raise ReplayError(
                f"pad offset {offset} is already spent (pool at {self._pool.position}): replay"
            )
        material = self._pool.material_at(offset, _OTP_MAC_KEY_BYTES + len(ciphertext))
        if material is None:
            raise AuthenticationError("payload claims pad material this pool does not hold")
        mac_key, pad = material[:_OTP_MAC_KEY_BYTES], material[_OTP_MAC_KEY_BYTES:]
        try:
            Poly1305.verify_tag(mac_key, _mac_input(associated_data, ciphertext), tag)
        except InvalidSignature as exc:
            raise AuthenticationError(
                "one-time MAC does not verify: tampered payload or envelope, or wrong pad"
            ) from exc
        self._pool.burn_to(offset + len(material))
        return _xor(ciphertext, pad)
