"""Privacy amplification: the secure key length and the Toeplitz hash that shrinks the key.

Secure length (bits), in the finite-key form of Tomamichel, Lim, Gisin & Renner,
Nat. Commun. 3, 634 (2012), Eq. (2), with the leftover hash lemma behind it::

    l = floor( n (1 - h(e_ph)) - leak - 2 log2(1 / eps_sec) - 1 )

``n``: reconciled key bits (sifted minus the disclosed sample); ``h``: binary
entropy; ``leak``: every bit disclosed after sifting (Cascade parities plus the
verification hash, whose 64 bits stand for Tomamichel's ``log2(1/eps_cor)``);
``eps_sec = 1e-10``; ``e_ph``: an upper bound on the *phase*-error rate.

Be clear about what is proven.  For BB84 the phase-error rate is estimated from the
bit errors in the other basis, so ``e_ph ~ Q`` and the formula is a proof
(against coherent attacks, with Serfling's correction).  B92 has no such symmetry.
Its unconditional security is proven for single photons by Tamaki, Koashi & Imoto
(PRL 90, 167904, 2003) and over lossy, noisy channels by Tamaki & Lütkenhaus (PRA
69, 032316, 2004); those proofs bound the phase error through the overlap of the two
states and give key rates only up to depolarising rates of about 3.5-4.2 %
(Matsumoto, arXiv:1301.5083, 2013, raises it to 6.5 %; finite-key rates under
collective attacks: Sasaki, Matsumoto & Uyematsu, ISIT 2015).  None reduces to a
closed form we could evaluate here.  We therefore use ``e_ph = min(1/2, 2 Q_U)``
with ``Q_U`` the Clopper-Pearson bound on the QBER: a conservative stand-in that
makes B92 keys shrink twice as fast with noise as BB84 keys, and we only run it
below the abort threshold (3 % by default), inside the region where the proofs
above give a positive key rate.  It is an engineering penalty, not a B92 proof.
"""

from __future__ import annotations

import math

import numpy as np

from iomt.qkd_channel.toeplitz import toeplitz_hash

EPS_SEC = 1e-10
PHASE_ERROR_FACTOR = 2.0


def binary_entropy(p: float) -> float:
    """``h(p) = -p log2 p - (1 - p) log2 (1 - p)``, with h(0) = h(1) = 0."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -p * math.log2(p) - (1.0 - p) * math.log2(1.0 - p)


def phase_error_bound(qber_upper: float) -> float:
    """The phase-error rate bound used for B92 (see the module docstring)."""
    return min(0.5, PHASE_ERROR_FACTOR * qber_upper)


def secure_length(n: int, qber_upper: float, leaked_bits: int, eps_sec: float = EPS_SEC) -> int:
    """Length of the final key in bits (0 if no secret key can be extracted)."""
    e_ph = phase_error_bound(qber_upper)
    raw = n * (1.0 - binary_entropy(e_ph)) - leaked_bits - 2.0 * math.log2(1.0 / eps_sec) - 1.0
    return max(0, math.floor(raw))


def amplify(key: np.ndarray, seed: np.ndarray, length: int) -> np.ndarray:
    """Hash the reconciled ``key`` to ``length`` bits with the Toeplitz matrix of ``seed``."""
    return toeplitz_hash(key, seed, length)


def pa_seed_bits(n: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """Fresh uniform seed bits for an ``length x n`` Toeplitz matrix (public)."""
    return rng.integers(0, 2, size=max(0, n + length - 1), dtype=np.uint8)
