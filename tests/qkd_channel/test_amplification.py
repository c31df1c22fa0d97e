"""Toeplitz hashing is exact, privacy amplification has the right length and no bias."""

import math

import numpy as np
import pytest

from iomt.qkd_channel.amplification import (
    EPS_SEC,
    amplify,
    binary_entropy,
    pa_seed_bits,
    secure_length,
)
from iomt.qkd_channel.toeplitz import toeplitz_hash, toeplitz_naive
from iomt.qkd_channel.verification import VERIFY_BITS, verification_seed, verification_tag


@pytest.mark.parametrize("n", [1, 7, 8, 9, 63, 64, 65, 200, 513])
@pytest.mark.parametrize("m", [1, 5, 8, 64, 130])
def test_toeplitz_equals_explicit_matrix(n, m):
    rng = np.random.default_rng(n * 1000 + m)
    x = rng.integers(0, 2, n, dtype=np.uint8)
    seed = rng.integers(0, 2, n + m - 1, dtype=np.uint8)
    assert np.array_equal(toeplitz_hash(x, seed, m), toeplitz_naive(x, seed, m))


def test_toeplitz_is_linear():
    rng = np.random.default_rng(1)
    n, m = 1000, 300
    a, b = (rng.integers(0, 2, n, dtype=np.uint8) for _ in range(2))
    seed = rng.integers(0, 2, n + m - 1, dtype=np.uint8)
    assert np.array_equal(
        toeplitz_hash(a ^ b, seed, m), toeplitz_hash(a, seed, m) ^ toeplitz_hash(b, seed, m)
    )


def test_privacy_amplification_length_and_monobit():
    rng = np.random.default_rng(2)
    n, qber_upper, leaked = 100_000, 0.02, 15_000
    length = secure_length(n, qber_upper, leaked)
    expected = math.floor(
        n * (1 - binary_entropy(2 * qber_upper)) - leaked - 2 * math.log2(1 / EPS_SEC) - 1
    )
    assert length == expected > 0
    # a heavily biased input key (90 % ones) still hashes to unbiased output
    key = (rng.random(n) < 0.9).astype(np.uint8)
    out = amplify(key, pa_seed_bits(n, length, rng), length)
    assert out.size == length
    # monobit frequency test (NIST SP 800-22, 2.1) at 5 sigma
    assert abs(int(out.sum()) - length / 2) <= 5 * math.sqrt(length) / 2


def test_secure_length_shrinks_with_noise_and_vanishes():
    lengths = [secure_length(50_000, q, 5_000) for q in (0.0, 0.01, 0.02, 0.03)]
    assert lengths == sorted(lengths, reverse=True)
    assert secure_length(50_000, 0.25, 5_000) == 0
    assert secure_length(100, 0.0, 0) == 100 - math.ceil(2 * math.log2(1 / EPS_SEC) + 1)


def test_verification_tag_detects_a_single_flip():
    rng = np.random.default_rng(3)
    key = rng.integers(0, 2, 10_000, dtype=np.uint8)
    seed = verification_seed(key.size, rng)
    tag = verification_tag(key, seed)
    assert len(tag) == VERIFY_BITS // 8
    flipped = key.copy()
    flipped[1234] ^= 1
    assert verification_tag(flipped, seed) != tag
