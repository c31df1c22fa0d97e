"""Verification: both sides hash their reconciled keys with a public universal hash.

A random 64 x n Toeplitz matrix is a universal_2 hash (Carter & Wegman 1979), so
keys that still differ after Cascade collide with probability at most 2^-64
(``eps_cor``).  The 64 hash bits are public and counted as leaked.
"""

from __future__ import annotations

import hmac

import numpy as np

from iomt.qkd_channel.toeplitz import toeplitz_hash

VERIFY_BITS = 64


def verification_seed(n: int, rng: np.random.Generator) -> np.ndarray:
    """Seed bits of a fresh 64 x n Toeplitz matrix."""
    return rng.integers(0, 2, size=n + VERIFY_BITS - 1, dtype=np.uint8)


def verification_tag(key: np.ndarray, seed: np.ndarray) -> bytes:
    """The 8-byte hash of ``key`` under ``seed``."""
    return np.packbits(toeplitz_hash(key, seed, VERIFY_BITS)).tobytes()


def tags_match(a: bytes, b: bytes) -> bool:
    """Constant-time comparison of two tags."""
    return hmac.compare_digest(a, b)
