"""How well a defence held up against poisoning: detection rates and poison resilience.

**Detection** counts (HMU, round) pairs over a run.  In each round every participating
HMU is a positive if it attacked and a negative otherwise; it is a true positive if it
attacked and was flagged, a false positive if it was flagged without attacking:
``TPR = TP / (TP + FN)``, ``FPR = FP / (FP + TN)``.

**Poison resilience** is not defined precisely by SAFE-MED (Khan et al., 2025).  The
testbed uses the share of the clean accuracy that survives the attack,

    PR = accuracy under attack / accuracy of the same setup without attackers,

so 1.0 means the attack cost nothing, and values above 1 (noise) are reported as they
are.  It is computed on the held-out test split, with the same seeds for both runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class DetectionRates:
    """Confusion counts of poisoning detection over (HMU, round) pairs, and the rates."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def tpr(self) -> float:
        """True-positive rate (recall on attackers); 0.0 when no HMU attacked."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def fpr(self) -> float:
        """False-positive rate (honest HMUs flagged); 0.0 when every HMU attacked."""
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0

    def as_dict(self) -> dict[str, float | int]:
        """Plain values for results.json."""
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn,
                "tpr": self.tpr, "fpr": self.fpr}  # fmt: skip


def detection_rates(
    participants: Sequence[Iterable[str]],
    attackers: Sequence[Iterable[str]],
    flagged: Sequence[Iterable[str]],
) -> DetectionRates:
    """TPR and FPR over a run; the three sequences hold one set per round.

    Attackers or flagged HMUs that did not take part in a round are ignored for it.
    """
    if not len(participants) == len(attackers) == len(flagged):
        raise ValueError("participants, attackers and flagged need one entry per round")
    tp = fp = fn = tn = 0
    for took_part, bad, caught in zip(participants, attackers, flagged, strict=True):
        bad_set, caught_set = set(bad), set(caught)
        for hmu in set(took_part):
            if hmu in bad_set:
                tp, fn = (tp + 1, fn) if hmu in caught_set else (tp, fn + 1)
            else:
                fp, tn = (fp + 1, tn) if hmu in caught_set else (fp, tn + 1)
    return DetectionRates(tp, fp, fn, tn)


def poison_resilience(attacked_accuracy: float, clean_accuracy: float) -> float:
    """``attacked / clean`` accuracy (see module doc); ``ValueError`` if clean is not positive."""
    if clean_accuracy <= 0:
        raise ValueError(f"clean accuracy must be positive, got {clean_accuracy}")
    return attacked_accuracy / clean_accuracy
