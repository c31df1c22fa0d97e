"""The numpy B92 link: Alice prepares, the channel (and Eve) transmits, Bob measures.

Exact and vectorised.  A qubit leaving the channel is one of four *state classes*
``bit + 2 * attacked``; each class is an exact (possibly mixed, possibly partly
blocked) state: a pass probability and a Bloch vector.  Bob's detector model
(:mod:`iomt.qkd_channel.states`) turns class and basis into exact probabilities of a
conclusive outcome and of any click, so each qubit costs one 64-bit uniform draw
compared against two thresholds (resolution 2^-64).  Nothing is approximated: the
joint distribution of Bob's record equals the quantum prediction because qubits
are independent and each one's outcome law is computed exactly.

Randomness belongs to its owner: Alice's bits to Alice's generator, the attack
pattern to the channel's, Bob's bases and outcomes to Bob's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from iomt.errors import QkdError
from iomt.qkd_channel.eve.base import Eavesdropper
from iomt.qkd_channel.link import ExpectedRates, LinkParams
from iomt.qkd_channel.states import (
    CONCLUSIVE_BIT,
    CONCLUSIVE_BLOCH,
    SIGNAL_BLOCH,
    born,
    click_probability,
    conclusive_probability,
)

Backend = Literal["numpy", "qiskit"]
_TWO64 = float(2**64)
_MAX64 = 2**64 - 1


def random_bits(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniform bits as uint8 0/1 (64 per raw draw)."""
    words = rng.bit_generator.random_raw((n + 63) // 64)
    return np.unpackbits(np.asarray(words, dtype=np.uint64).view(np.uint8))[:n]


def bernoulli(n: int, p: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` independent draws of Bernoulli(p) as a bool array."""
    if p <= 0.0:
        return np.zeros(n, dtype=bool)
    if p >= 1.0:
        return np.ones(n, dtype=bool)
    return rng.bit_generator.random_raw(n) < threshold(p)


def threshold(p: float | np.ndarray) -> np.ndarray:
    """Thresholds ``t`` with ``P(u < t) = p`` for u uniform on [0, 2^64) (to 2^-64)."""
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    # p * 2^64 is exact in binary floating point, int() floors it exactly
    flat = [min(int(v * _TWO64), _MAX64) for v in p.ravel().tolist()]
    return np.array(flat, dtype=np.uint64).reshape(p.shape)


def prepare(n: int, rng: np.random.Generator) -> np.ndarray:
    """Alice's random key bits: bit 0 is sent as |0>, bit 1 as |+>."""
    if n < 0:
        raise QkdError(f"cannot prepare {n} qubits")
    return random_bits(n, rng)


@dataclass(frozen=True)
class StateTable:
    """Exact states of the four classes ``bit + 2 * attacked`` leaving the channel.

    ``transmittance[k]`` is the probability that a photon of class ``k`` reaches
    Bob's detector housing (Eve's pass probability times the fibre's); ``bloch[k]``
    the Bloch vector of that photon (depolarised).
    """

    transmittance: np.ndarray  # (4,)
    bloch: np.ndarray  # (4, 3)


@dataclass(frozen=True)
class Arrivals:
    """Qubits leaving the channel: a class index per qubit and the exact class states."""

    classes: np.ndarray  # uint8, bit + 2 * attacked
    table: StateTable

    @property
    def qubits(self) -> int:
        return int(self.classes.size)


@dataclass(frozen=True)
class Detections:
    """Bob's record: his basis per slot, whether anything clicked, whether conclusive."""

    basis: np.ndarray  # uint8, 0 = Z, 1 = X
    clicked: np.ndarray  # bool
    conclusive: np.ndarray  # bool

    @property
    def qubits(self) -> int:
        return int(self.basis.size)

    def sifted_bits(self) -> np.ndarray:
        """Bob's key bits at the conclusive slots (Z -> 1, X -> 0)."""
        return CONCLUSIVE_BIT[self.basis[self.conclusive]]


def state_table(link: LinkParams, eve: Eavesdropper | None) -> StateTable:
    """The exact class states for ``link`` with ``eve`` (None: no attack)."""
    shrink = 1.0 - link.depolarising
    transmittance = np.empty(4)
    bloch = np.empty((4, 3))
    for bit in (0, 1):
        transmittance[bit] = link.transmittance
        bloch[bit] = shrink * SIGNAL_BLOCH[bit]
        if eve is None:
            passing, resent = 1.0, SIGNAL_BLOCH[bit]
        else:
            passing, resent = eve.attacked_state(bit)
        transmittance[bit + 2] = passing * link.transmittance
        bloch[bit + 2] = shrink * resent
    return StateTable(transmittance=transmittance, bloch=bloch)


def outcome_table(table: StateTable, link: LinkParams) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``P(conclusive)`` and ``P(click)`` for the 8 indices ``class + 4 * basis``."""
    p_conc = np.empty(8)
    p_click = np.empty(8)
    eta = table.transmittance * link.detector_efficiency
    for basis in (0, 1):
        q = born(table.bloch, CONCLUSIVE_BLOCH[basis])
        p_conc[4 * basis : 4 * basis + 4] = conclusive_probability(eta, q, link.dark_count_prob)
        p_click[4 * basis : 4 * basis + 4] = click_probability(eta, link.dark_count_prob)
    return p_conc, p_click


def transmit(
    bits: np.ndarray, link: LinkParams, eve: Eavesdropper | None, rng: np.random.Generator
) -> Arrivals:
    """Send Alice's qubits through the fibre, with Eve attacking where she chooses."""
    bits = np.asarray(bits, dtype=np.uint8)
    attacked = bernoulli(bits.size, eve.fraction if eve is not None else 0.0, rng)
    classes = bits | (attacked.view(np.uint8) << 1)
    return Arrivals(classes=classes, table=state_table(link, eve))


def measure(arrivals: Arrivals, link: LinkParams, rng: np.random.Generator) -> Detections:
    """Bob measures each arriving qubit in a random basis with his real detectors."""
    n = arrivals.qubits
    basis = random_bits(n, rng)
    p_conc, p_click = outcome_table(arrivals.table, link)
    index = arrivals.classes | (basis << 2)
    u = rng.bit_generator.random_raw(n)
    conclusive = u < threshold(p_conc)[index]
    clicked = u < threshold(p_click)[index]
    return Detections(basis=basis, clicked=clicked, conclusive=conclusive)


def expected_rates(link: LinkParams, eve: Eavesdropper | None) -> ExpectedRates:
    """Exact per-qubit conclusive, click and error rates of ``link`` with ``eve``.

    The average of :func:`outcome_table` over Alice's bit, Eve's choice to attack
    and Bob's basis: the law the sampler in :func:`measure` draws from.
    """
    p_conc, p_click = outcome_table(state_table(link, eve), link)
    f = eve.fraction if eve is not None else 0.0
    conclusive = click = errors = 0.0
    for index in range(8):
        bit, attacked, basis = index & 1, index >> 1 & 1, index >> 2
        weight = 0.25 * (f if attacked else 1.0 - f)
        conclusive += weight * p_conc[index]
        click += weight * p_click[index]
        if CONCLUSIVE_BIT[basis] != bit:
            errors += weight * p_conc[index]
    return ExpectedRates(
        conclusive=conclusive, click=click, qber=errors / conclusive if conclusive else 0.0
    )
