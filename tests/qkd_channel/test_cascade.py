"""Cascade corrects every error at QBERs up to the threshold and counts what it leaks."""

import numpy as np
import pytest

from iomt.errors import ProtocolViolation
from iomt.qkd_channel.amplification import binary_entropy
from iomt.qkd_channel.cascade import (
    CascadeCorrector,
    ParityOracle,
    ParityQuery,
    make_plan,
    reconcile,
)


def noisy_pair(n, qber, rng):
    alice = rng.integers(0, 2, n, dtype=np.uint8)
    flips = np.zeros(n, dtype=np.uint8)
    flips[rng.choice(n, size=round(qber * n), replace=False)] = 1  # exactly qber * n errors
    return alice, alice ^ flips


@pytest.mark.parametrize("qber", [0.002, 0.01, 0.02, 0.03])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_corrects_every_error_and_reports_leakage(qber, seed):
    rng = np.random.default_rng(seed)
    n = 20_000
    alice, bob = noisy_pair(n, qber, rng)
    corrected, leaked = reconcile(alice, bob, qber, rng)
    assert np.array_equal(corrected, alice)
    # Shannon limit below, a loose practical ceiling above (Cascade runs ~1.1-1.3)
    assert n * binary_entropy(qber) < leaked < 1.6 * n * binary_entropy(qber) + 200


def test_leaked_bits_equal_parities_disclosed_and_corrections_counted():
    rng = np.random.default_rng(4)
    alice, bob = noisy_pair(5_000, 0.02, rng)
    plan = make_plan(alice.size, 0.02, rng)
    oracle, corrector = ParityOracle(alice, plan), CascadeCorrector(bob, plan)
    disclosed = 0
    while (query := corrector.next_query()) is not None:
        answer = oracle.answer(query)
        disclosed += answer.size
        corrector.apply(answer)
    assert corrector.leaked_bits == disclosed
    assert corrector.corrected == 100 and np.array_equal(corrector.key, alice)


def test_identical_keys_leak_only_top_level_parities():
    rng = np.random.default_rng(5)
    key = rng.integers(0, 2, 4_000, dtype=np.uint8)
    plan = make_plan(key.size, 0.01, rng)
    corrected, leaked = reconcile(key, key.copy(), 0.01, rng)
    assert np.array_equal(corrected, key)
    assert leaked == sum(-(-key.size // k) for k in plan.block_sizes)


def test_malformed_replies_and_queries_are_refused_without_state_change():
    rng = np.random.default_rng(6)
    alice, bob = noisy_pair(1_000, 0.03, rng)
    plan = make_plan(alice.size, 0.03, rng)
    corrector = CascadeCorrector(bob, plan)
    query = corrector.next_query()
    with pytest.raises(ProtocolViolation, match="parities"):
        corrector.apply(np.zeros(len(query) + 1, dtype=np.uint8))
    with pytest.raises(ProtocolViolation):
        corrector.apply(np.full(len(query), 2, dtype=np.uint8))
    assert corrector.next_query() is query and corrector.leaked_bits == 0
    oracle = ParityOracle(alice, plan)
    bad = ParityQuery(
        passes=np.zeros(1, np.uint8),
        starts=np.array([5], np.uint32),
        ends=np.array([2000], np.uint32),
    )
    with pytest.raises(ProtocolViolation, match="outside"):
        oracle.answer(bad)
