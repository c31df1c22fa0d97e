"""Exact (epsilon, delta) of the Gaussian mechanism, once and composed: closed forms.

A release ``x + N(0, (z C)^2)`` of a vector clipped to L2 norm ``C`` is ``mu``-GDP with
``mu = 1 / z`` (Dong, Roth and Su, "Gaussian differential privacy", JRSS B 2022), and
``T`` such releases compose *exactly* to ``sqrt(T) / z``-GDP. A ``mu``-GDP mechanism is
``(epsilon, delta(epsilon))``-DP for every epsilon with (Balle and Wang, ICML 2018)::

    delta(epsilon) = Phi(-epsilon / mu + mu / 2) - e^epsilon Phi(-epsilon / mu - mu / 2)

and no smaller delta. Both directions are solved here by bracketing, in log space so
that epsilons in the hundreds (SAFE-MED's epsilon 50 over 30 rounds) do not overflow.
These are the figures dp_accounting's privacy loss distribution accountant approximates
from above (tests/fedlearn/test_gaussian_dp.py compares them); in closed form they
cost microseconds where the accountant takes seconds to minutes at small ``z``.
"""

from __future__ import annotations

import math

from scipy.optimize import brentq
from scipy.special import log_ndtr


def delta_for(epsilon: float, mu: float) -> float:
    """The smallest delta for which a ``mu``-GDP mechanism is ``(epsilon, delta)``-DP."""
    first = float(log_ndtr(-epsilon / mu + mu / 2))
    second = epsilon + float(log_ndtr(-epsilon / mu - mu / 2))
    return math.exp(first) * -math.expm1(second - first) if first > second else 0.0


def noise_multiplier(epsilon: float, delta: float) -> float:
    """Smallest ``z = sigma / C`` making one Gaussian release ``(epsilon, delta)``-DP."""
    if epsilon <= 0 or not 0 < delta < 1:
        raise ValueError(f"need epsilon > 0 and 0 < delta < 1, got {epsilon}, {delta}")
    # delta_for grows with mu: find the largest mu that stays within delta
    mu = brentq(lambda m: delta_for(epsilon, m) - delta, 1e-9, 1e4, xtol=1e-15, rtol=1e-15)
    return 1.0 / mu


def composed_epsilon(z: float, releases: int, delta: float) -> float:
    """Epsilon at ``delta`` of ``releases`` Gaussian releases with noise multiplier ``z``."""
    if z <= 0 or releases < 1 or not 0 < delta < 1:
        raise ValueError(f"need z > 0, releases >= 1, 0 < delta < 1: {z}, {releases}, {delta}")
    mu = math.sqrt(releases) / z
    if delta_for(0.0, mu) <= delta:
        return 0.0
    high = 1.0
    while delta_for(high, mu) > delta:  # delta_for falls as epsilon grows
        high *= 2
    return brentq(lambda e: delta_for(e, mu) - delta, 0.0, high, xtol=1e-12, rtol=1e-15)
