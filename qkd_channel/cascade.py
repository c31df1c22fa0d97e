"""Cascade error reconciliation, vectorised: Bob asks, Alice answers parities, Bob corrects.

Cascade (Brassard & Salvail, EUROCRYPT 1993; parameters discussed by
Martinez-Mateo, Pacher, Peev, Ciurana & Martin, QIC 15, 453, 2015).  Pass ``i``
cuts the key, in the order of a public permutation (identity for the first pass),
into blocks of ``k_i = k_1 * 2^i`` bits with ``k_1 = ceil(0.73 / Q)``.  Bob compares
Alice's block parities with his own; a block whose parities differ holds an odd
number of errors and a binary search over sub-block parities finds one of them.
Flipping a bit changes the parity of the block holding it in every earlier pass,
so odd blocks *cascade* back until none is left.

Vectorised form: all odd blocks of one pass are disjoint, so their binary searches
run side by side; one query message carries one level of every search, and Bob's
parities of any range come from a prefix-XOR array.  After a batch of flips the
block parities of every pass are updated with one ``bincount`` per pass; then the
pass with the smallest index that still has odd blocks is searched next.

Leakage: every parity Alice discloses is one bit, counted in ``leaked_bits`` (Bob
only compares locally; his parities are never sent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from iomt.errors import ProtocolViolation, QkdError

DEFAULT_PASSES = 8
MIN_QBER_FOR_BLOCKS = 0.005  # block size of a sample with no errors


@dataclass(frozen=True)
class CascadePlan:
    """Public plan: block size of each pass and the seed of each pass's permutation."""

    n: int
    block_sizes: tuple[int, ...]
    seeds: tuple[int, ...]

    def permutation(self, index: int) -> np.ndarray:
        """Order of pass ``index``: ``perm[i]`` is the key position at place ``i``."""
        if index == 0:
            return np.arange(self.n)
        return np.random.Generator(np.random.PCG64(self.seeds[index])).permutation(self.n)


def make_plan(
    n: int, qber: float, rng: np.random.Generator, passes: int = DEFAULT_PASSES
) -> CascadePlan:
    """Block sizes from the estimated ``qber`` and fresh permutation seeds."""
    if n <= 0:
        raise QkdError("nothing to reconcile: the key is empty")
    k = max(4, math.ceil(0.73 / max(qber, MIN_QBER_FOR_BLOCKS)))
    cap = max(1, -(-n // 2))  # every pass keeps at least two blocks
    sizes = [min(k << i, cap) for i in range(passes)]
    seeds = tuple(int(v) for v in rng.integers(0, 2**63 - 1, size=len(sizes)))
    return CascadePlan(n=n, block_sizes=tuple(sizes), seeds=seeds)


@dataclass(frozen=True)
class ParityQuery:
    """Ranges ``[starts, ends)`` in the order of pass ``passes[i]``."""

    passes: np.ndarray  # uint8
    starts: np.ndarray  # uint32
    ends: np.ndarray  # uint32

    def __len__(self) -> int:
        return int(self.passes.size)


def _prefix(bits_in_order: np.ndarray) -> np.ndarray:
    """``prefix[i]`` = XOR of the first ``i`` bits (length n + 1)."""
    out = np.zeros(bits_in_order.size + 1, dtype=np.uint8)
    np.bitwise_xor.accumulate(bits_in_order, out=out[1:])
    return out


class ParityOracle:
    """Alice's side: parities of her (never changing) key over requested ranges."""

    def __init__(self, key: np.ndarray, plan: CascadePlan) -> None:
        self._key = np.asarray(key, dtype=np.uint8)
        if self._key.size != plan.n:
            raise QkdError(f"key has {self._key.size} bits, plan is for {plan.n}")
        self._plan = plan
        self._prefixes: dict[int, np.ndarray] = {}

    def answer(self, query: ParityQuery) -> np.ndarray:
        """Parities (uint8) of the queried ranges; raises ProtocolViolation if malformed."""
        passes = np.asarray(query.passes, dtype=np.int64)
        starts = np.asarray(query.starts, dtype=np.int64)
        ends = np.asarray(query.ends, dtype=np.int64)
        if not (passes.size == starts.size == ends.size):
            raise ProtocolViolation("parity query arrays differ in length")
        if passes.size and (
            passes.min() < 0
            or passes.max() >= len(self._plan.block_sizes)
            or starts.min() < 0
            or ends.max() > self._plan.n
            or np.any(starts >= ends)
        ):
            raise ProtocolViolation("parity query names a range outside the key")
        out = np.empty(passes.size, dtype=np.uint8)
        for p in np.unique(passes).tolist():
            prefix = self._prefixes.get(p)
            if prefix is None:
                prefix = _prefix(self._key[self._plan.permutation(p)])
                self._prefixes[p] = prefix
            sel = passes == p
            out[sel] = prefix[ends[sel]] ^ prefix[starts[sel]]
        return out


class CascadeCorrector:
    """Bob's side: drives the passes, corrects his key, counts the leaked parities."""

    def __init__(self, key: np.ndarray, plan: CascadePlan) -> None:
        self.key = np.array(key, dtype=np.uint8)
        if self.key.size != plan.n:
            raise QkdError(f"key has {self.key.size} bits, plan is for {plan.n}")
        self.plan = plan
        self.leaked_bits = 0
        self.corrected = 0
        self._perms: list[np.ndarray] = []
        self._inverse: list[np.ndarray] = []
        self._odd: list[np.ndarray] = []  # per started pass: block parity differs
        self._pending: ParityQuery | None = None
        # state of the binary-search batch in progress
        self._search_pass = -1
        self._lo = np.empty(0, dtype=np.int64)
        self._hi = np.empty(0, dtype=np.int64)
        self._bob_prefix = np.empty(0, dtype=np.uint8)

    @property
    def done(self) -> bool:
        return self._pending is None and self._next_query() is None

    def next_query(self) -> ParityQuery | None:
        """The next parities Bob needs, or None when reconciliation is finished."""
        if self._pending is None:
            self._pending = self._next_query()
        return self._pending

    def apply(self, parities: np.ndarray) -> None:
        """Use Alice's answer to the pending query."""
        query = self._pending
        if query is None:
            raise ProtocolViolation("parity reply without a pending query")
        parities = np.asarray(parities, dtype=np.uint8)
        if parities.size != len(query):
            raise ProtocolViolation(
                f"parity reply has {parities.size} parities, the query asked {len(query)}"
            )
        if parities.size and parities.max() > 1:
            raise ProtocolViolation("parity reply holds values other than 0 and 1")
        self._pending = None
        self.leaked_bits += int(parities.size)
        if self._search_pass < 0:
            self._start_pass(parities)
        else:
            self._search_step(parities)

    # -- internals ---------------------------------------------------------------

    def _blocks(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        k = self.plan.block_sizes[index]
        starts = np.arange(0, self.plan.n, k, dtype=np.int64)
        return starts, np.minimum(starts + k, self.plan.n)

    def _next_query(self) -> ParityQuery | None:
        while True:
            if self._search_pass >= 0:
                active = self._hi - self._lo > 1
                if active.any():
                    lo, hi = self._lo[active], self._hi[active]
                    mid = (lo + hi) // 2
                    return self._query(self._search_pass, lo, mid)
                self._finish_search()
                continue
            for index, odd in enumerate(self._odd):
                if odd.any():
                    self._begin_search(index)
                    break
            else:
                started = len(self._odd)
                if started < len(self.plan.block_sizes):
                    starts, ends = self._blocks(started)
                    return self._query(started, starts, ends)
                return None

    def _query(self, index: int, starts: np.ndarray, ends: np.ndarray) -> ParityQuery:
        return ParityQuery(
            passes=np.full(starts.size, index, dtype=np.uint8),
            starts=starts.astype(np.uint32),
            ends=ends.astype(np.uint32),
        )

    def _start_pass(self, alice: np.ndarray) -> None:
        index = len(self._odd)
        perm = self.plan.permutation(index)
        inverse = np.empty_like(perm)
        inverse[perm] = np.arange(perm.size)
        self._perms.append(perm)
        self._inverse.append(inverse)
        starts, _ = self._blocks(index)
        prefix = _prefix(self.key[perm])
        ends = np.minimum(starts + self.plan.block_sizes[index], self.plan.n)
        bob = prefix[ends] ^ prefix[starts]
        self._odd.append((bob ^ alice).astype(bool))

    def _begin_search(self, index: int) -> None:
        starts, ends = self._blocks(index)
        odd = self._odd[index]
        self._search_pass = index
        self._lo, self._hi = starts[odd], ends[odd]
        self._bob_prefix = _prefix(self.key[self._perms[index]])

    def _search_step(self, alice_left: np.ndarray) -> None:
        active = self._hi - self._lo > 1
        lo, hi = self._lo[active], self._hi[active]
        mid = (lo + hi) // 2
        bob_left = self._bob_prefix[mid] ^ self._bob_prefix[lo]
        left_odd = (bob_left ^ alice_left).astype(bool)
        self._hi[active] = np.where(left_odd, mid, hi)
        self._lo[active] = np.where(left_odd, lo, mid)

    def _finish_search(self) -> None:
        positions = self._perms[self._search_pass][self._lo]
        self.key[positions] ^= 1
        self.corrected += int(positions.size)
        for index, odd in enumerate(self._odd):
            blocks = self._inverse[index][positions] // self.plan.block_sizes[index]
            flips = np.bincount(blocks, minlength=odd.size) & 1
            odd ^= flips.astype(bool)
        self._search_pass = -1


def reconcile(
    alice: np.ndarray,
    bob: np.ndarray,
    qber: float,
    rng: np.random.Generator,
    passes: int = DEFAULT_PASSES,
) -> tuple[np.ndarray, int]:
    """Run Cascade between two in-memory keys: ``(Bob's corrected key, leaked bits)``."""
    plan = make_plan(np.asarray(alice).size, qber, rng, passes)
    oracle = ParityOracle(alice, plan)
    corrector = CascadeCorrector(bob, plan)
    while (query := corrector.next_query()) is not None:
        corrector.apply(oracle.answer(query))
    return corrector.key, corrector.leaked_bits
