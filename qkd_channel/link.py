"""Parameters of one HMU-server quantum link and the rates an honest link should show."""

from __future__ import annotations

from dataclasses import dataclass

from iomt.errors import QkdError
from iomt.qkd_channel.states import (
    CONCLUSIVE_BIT,
    CONCLUSIVE_BLOCH,
    SIGNAL_BLOCH,
    born,
    click_probability,
    conclusive_probability,
)


@dataclass(frozen=True)
class LinkParams:
    """Fibre, noise and detector of one link.

    ``depolarising`` is the parameter ``p`` of ``rho -> (1 - p) rho + p I/2`` (Bloch
    vectors shrink by ``1 - p``); it is the same parameter as qiskit-aer's
    ``depolarizing_error(p, 1)``.
    """

    fibre_km: float = 10.0
    db_per_km: float = 0.2
    detector_efficiency: float = 0.9
    dark_count_prob: float = 1e-6
    depolarising: float = 0.01

    def __post_init__(self) -> None:
        checks = {
            "fibre_km": self.fibre_km >= 0,
            "db_per_km": self.db_per_km >= 0,
            "detector_efficiency": 0 < self.detector_efficiency <= 1,
            "dark_count_prob": 0 <= self.dark_count_prob < 1,
            "depolarising": 0 <= self.depolarising <= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise QkdError(f"link parameter(s) out of range: {', '.join(bad)} in {self}")

    @property
    def transmittance(self) -> float:
        """Fibre transmittance ``10^(-alpha L / 10)``."""
        return 10.0 ** (-self.db_per_km * self.fibre_km / 10.0)

    @property
    def eta(self) -> float:
        """Probability that a photon Alice sends fires one of Bob's detectors."""
        return self.transmittance * self.detector_efficiency


@dataclass(frozen=True)
class ExpectedRates:
    """Per-qubit probabilities of an honest link (no eavesdropper)."""

    conclusive: float
    click: float
    qber: float


def honest_rates(link: LinkParams) -> ExpectedRates:
    """Conclusive, detection and error rates of ``link`` without Eve.

    Averaging the click model of :mod:`iomt.qkd_channel.states` over Alice's bit and Bob's
    basis (all four equally likely).  In closed form, with ``A = eta (1 - d)`` and
    ``B = (1 - eta) d (1 - d) + (eta d + (1 - eta) d^2) / 2``::

        conclusive = A (1 + p) / 4 + B
        qber       = (A p / 4 + B / 2) / conclusive
    """
    bloch = (1.0 - link.depolarising) * SIGNAL_BLOCH  # (bit, 3)
    conclusive = 0.0
    errors = 0.0
    for basis in (0, 1):
        q = born(bloch, CONCLUSIVE_BLOCH[basis])  # per bit
        p = conclusive_probability(link.eta, q, link.dark_count_prob)
        conclusive += 0.25 * float(p.sum())
        wrong = 1 - CONCLUSIVE_BIT[basis]  # Alice's bit that makes this outcome an error
        errors += 0.25 * float(p[wrong])
    click = float(click_probability(link.eta, link.dark_count_prob))
    return ExpectedRates(
        conclusive=conclusive, click=click, qber=errors / conclusive if conclusive else 0.0
    )
