"""What every eavesdropper model provides: its resent-state mixture and its signature."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from iomt.errors import QkdError


@dataclass(frozen=True)
class Resend:
    """One branch of Eve's action on a qubit: with ``probability`` she sends ``bloch``.

    ``bloch`` is None when she sends nothing at all (the qubit is blocked: Bob sees
    loss, not an error).
    """

    probability: float
    bloch: tuple[float, float, float] | None


@dataclass(frozen=True)
class Signature:
    """Per-qubit conclusive rate and QBER a model causes on an ideal channel.

    Ideal channel: no loss, perfect detectors, no dark counts, no depolarising noise;
    without Eve B92 then shows ``conclusive_rate = 1/4`` and ``qber = 0``.
    """

    conclusive_rate: float
    qber: float


@dataclass(frozen=True)
class Eavesdropper(ABC):
    """Eve at Alice's output: she attacks each qubit independently with ``fraction``.

    An attacked qubit is replaced by Eve's resend, which then travels the same
    fibre (loss, depolarising noise) as an honest one.  Eve's mixture over her own
    outcomes is what reaches Bob, so a model is fully described by
    :meth:`resends`, which the numpy core uses exactly.
    """

    fraction: float = 1.0
    name: ClassVar[str] = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise QkdError(f"eavesdropper fraction {self.fraction} must be within [0, 1]")

    @abstractmethod
    def resends(self, bit: int) -> tuple[Resend, ...]:
        """Eve's resend branches when Alice sent ``bit`` (probabilities sum to 1)."""

    @abstractmethod
    def signature(self) -> Signature:
        """The ideal-channel conclusive rate and QBER at ``self.fraction`` (docstring)."""

    def attacked_state(self, bit: int) -> tuple[float, np.ndarray]:
        """``(pass probability, Bloch vector given a pass)`` of an attacked qubit."""
        sent = [(r.probability, r.bloch) for r in self.resends(bit) if r.bloch is not None]
        passing = sum(p for p, _ in sent)
        if passing <= 0.0:
            return 0.0, np.zeros(3)
        bloch = sum(p * np.asarray(b, dtype=float) for p, b in sent) / passing
        return passing, np.asarray(bloch, dtype=float)
