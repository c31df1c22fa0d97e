"""Bit-packed tensors for what crosses the simulated quantum channel (pure, no I/O)."""

from __future__ import annotations

import numpy as np

from iomt.errors import DecodeError
from iomt.qkd_channel.channel import Detections


def _unpack(tensors: dict[str, np.ndarray], name: str, n: int) -> np.ndarray:
    packed = tensors.get(name)
    if packed is None or packed.dtype != np.uint8 or packed.shape != ((n + 7) // 8,):
        raise DecodeError(f"{name!r} must be {(n + 7) // 8} packed bytes for {n} qubits")
    return np.unpackbits(packed)[:n]


def pack_states(bits: np.ndarray) -> dict[str, np.ndarray]:
    """Alice's prepared states (0 -> |0>, 1 -> |+>) as one packed tensor."""
    return {"states": np.packbits(np.asarray(bits, dtype=np.uint8))}


def unpack_states(tensors: dict[str, np.ndarray], n: int) -> np.ndarray:
    return _unpack(tensors, "states", n)


def pack_detections(det: Detections) -> dict[str, np.ndarray]:
    return {
        "basis": np.packbits(det.basis.astype(np.uint8)),
        "clicked": np.packbits(det.clicked),
        "conclusive": np.packbits(det.conclusive),
    }


def unpack_detections(tensors: dict[str, np.ndarray], n: int) -> Detections:
    basis = _unpack(tensors, "basis", n)
    clicked = _unpack(tensors, "clicked", n).astype(bool)
    conclusive = _unpack(tensors, "conclusive", n).astype(bool)
    if np.any(conclusive & ~clicked):
        raise DecodeError("a conclusive slot without a click")
    return Detections(basis=basis, clicked=clicked, conclusive=conclusive)
