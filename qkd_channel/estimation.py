"""Parameter estimation: a disclosed random sample, the QBER and its upper bound, rate bands.

QBER bound: the one-sided Clopper-Pearson bound (Clopper & Pearson, Biometrika 26,
404, 1934), the exact binomial bound: the largest error probability ``p`` with
``P(X <= k; m, p) >= 1 - confidence``.  It treats sampled positions as independent
trials (collective attacks); a proof against coherent attacks would add the
sampling-without-replacement correction of Tomamichel et al., Nat. Commun. 3, 634
(2012).

Rate band: the number of conclusive (or detected) slots out of ``n`` is
Binomial(n, p) on an honest link with the configured parameters; we accept counts
within ``n p +- z sqrt(n p (1 - p))`` where ``z`` is the two-sided normal quantile
for ``confidence``.  USD and photon-number attacks cause loss, not errors, and are
caught here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from iomt.errors import QkdError


@dataclass(frozen=True)
class QberEstimate:
    """Errors found in the disclosed sample and the bound on the QBER."""

    sample_size: int
    errors: int
    confidence: float

    @property
    def qber(self) -> float:
        return self.errors / self.sample_size if self.sample_size else 1.0

    @property
    def upper(self) -> float:
        return clopper_pearson_upper(self.errors, self.sample_size, self.confidence)


def choose_sample(n_sifted: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A bool mask of ``round(fraction * n_sifted)`` sifted positions to disclose."""
    if not 0.0 < fraction < 1.0:
        raise QkdError(f"sample fraction {fraction} must be within (0, 1)")
    size = min(n_sifted, max(1, round(fraction * n_sifted))) if n_sifted else 0
    mask = np.zeros(n_sifted, dtype=bool)
    mask[rng.choice(n_sifted, size=size, replace=False)] = True
    return mask


def _binomial_cdf(k: int, m: int, p: float) -> float:
    """``P(X <= k)`` for X ~ Binomial(m, p), summed in log space (exact to rounding)."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= m else 0.0
    i = np.arange(1, k + 1, dtype=float)
    steps = np.log(m - i + 1) - np.log(i) + math.log(p) - math.log1p(-p)
    log_pmf = np.concatenate([[m * math.log1p(-p)], m * math.log1p(-p) + np.cumsum(steps)])
    top = log_pmf.max()
    return float(min(1.0, math.exp(top) * np.exp(log_pmf - top).sum()))


def clopper_pearson_upper(errors: int, trials: int, confidence: float) -> float:
    """One-sided Clopper-Pearson upper bound on an error probability.

    The ``p`` solving ``P(X <= errors; trials, p) = 1 - confidence``, by bisection
    (60 halvings: far below any tolerance that matters).
    """
    if not 0.0 < confidence < 1.0:
        raise QkdError(f"confidence {confidence} must be within (0, 1)")
    if trials <= 0:
        return 1.0
    if errors >= trials:
        return 1.0
    alpha = 1.0 - confidence
    lo, hi = errors / trials, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2.0
        if _binomial_cdf(errors, trials, mid) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


def binomial_band(n: int, p: float, confidence: float) -> tuple[float, float]:
    """Two-sided acceptance band for a Binomial(n, p) count (normal approximation)."""
    if not 0.0 < confidence < 1.0:
        raise QkdError(f"confidence {confidence} must be within (0, 1)")
    z = NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)
    spread = z * math.sqrt(n * p * (1.0 - p))
    return n * p - spread, n * p + spread


def rate_violation(name: str, count: int, n: int, expected: float, confidence: float) -> str | None:
    """A reason string if ``count`` of ``n`` lies outside the band, else None."""
    lo, hi = binomial_band(n, expected, confidence)
    if lo <= count <= hi:
        return None
    rate = count / n if n else 0.0
    return (
        f"{name} rate {rate:.5f} outside the band [{lo / n:.5f}, {hi / n:.5f}] "
        f"expected for this channel ({expected:.5f})"
    )
