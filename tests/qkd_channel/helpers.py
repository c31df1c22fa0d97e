"""Shared helpers of the QKD tests: ideal link, seeded runs, binomial tolerances."""

from __future__ import annotations

import math

import numpy as np

from iomt.qkd_channel.channel import Detections, measure, prepare, transmit
from iomt.qkd_channel.link import LinkParams

SIGMAS = 5.0  # every statistical check allows 5 binomial standard errors

IDEAL = LinkParams(fibre_km=0.0, detector_efficiency=1.0, dark_count_prob=0.0, depolarising=0.0)


def run_numpy(n, link, eve, seed) -> tuple[np.ndarray, Detections]:
    alice, channel, bob = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    bits = prepare(n, alice)
    return bits, measure(transmit(bits, link, eve, channel), link, bob)


def observed(bits: np.ndarray, det: Detections) -> tuple[float, float, float, int]:
    """(conclusive rate, QBER, click rate, conclusive count)."""
    conclusive = int(det.conclusive.sum())
    errors = int((det.sifted_bits() != bits[det.conclusive]).sum())
    qber = errors / conclusive if conclusive else 0.0
    return conclusive / bits.size, qber, float(det.clicked.mean()), conclusive


def se(p: float, n: int) -> float:
    """Binomial standard error of a proportion ``p`` estimated from ``n`` trials."""
    return math.sqrt(max(p * (1.0 - p), 0.0) / n)
