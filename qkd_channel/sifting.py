"""Sifting: keep the slots where Bob's outcome was conclusive, announced as a bitmap.

In B92 Bob announces *which* slots were conclusive, never his basis or result
(Bennett, PRL 68, 3121, 1992): Alice keeps her bit there, Bob the bit his
conclusive outcome implies.
"""

from __future__ import annotations

import numpy as np

from iomt.errors import ProtocolViolation


def pack_mask(mask: np.ndarray) -> bytes:
    """A bool mask as bytes (8 slots a byte, big-endian bit order)."""
    return np.packbits(np.asarray(mask, dtype=bool)).tobytes()


def unpack_mask(data: bytes, n: int) -> np.ndarray:
    """The bool mask of ``n`` slots packed by :func:`pack_mask`; checks the size."""
    if len(data) != (n + 7) // 8:
        raise ProtocolViolation(f"bitmap of {len(data)} bytes cannot cover {n} slots")
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    if bits[n:].any():
        raise ProtocolViolation("bitmap has bits set past its last slot")
    return bits[:n].astype(bool)


def sift(bits: np.ndarray, conclusive: np.ndarray) -> np.ndarray:
    """The sifted key: ``bits`` at the conclusive slots."""
    bits = np.asarray(bits, dtype=np.uint8)
    if bits.size != conclusive.size:
        raise ProtocolViolation(
            f"sifting announcement covers {conclusive.size} slots, {bits.size} were sent"
        )
    return bits[conclusive]
