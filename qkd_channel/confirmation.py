"""Key confirmation: each side proves it holds the final key without revealing it.

Each party sends ``HMAC-SHA256(final key, label || role || session id)`` (RFC 2104);
the peer recomputes it.  Distinct roles keep one side's tag from being replayed as
the other's.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

Role = Literal["hmu", "server"]
_LABEL = b"iomt qkd key confirmation v1|"


def confirmation_tag(key: bytes, role: Role, session_id: str) -> bytes:
    """The 32-byte confirmation tag ``role`` sends for ``key`` in ``session_id``."""
    message = _LABEL + role.encode() + b"|" + session_id.encode()
    return hmac.new(key, message, hashlib.sha256).digest()


def confirm(key: bytes, role: Role, session_id: str, tag: bytes) -> bool:
    """True if ``tag`` is the confirmation ``role`` would send for ``key``."""
    return hmac.compare_digest(confirmation_tag(key, role, session_id), tag)
