"""Client churn: which invitations an HMU answers by dropping off the network, and for how long.

With ``federation.churn: p`` each HMU, on each invitation, loses its connection with
probability p (its MQTT session ends without a DISCONNECT, so the broker publishes its
last will), stays away for a time drawn uniformly from ``federation.churn_offline_s``,
and reconnects (``wire.bus.Bus.drop``).  It sends nothing for that round; the server
sees it go offline, closes the round without it and selects it again once it is back.
The draws depend only on the scenario's seed, the HMU and the round, so a run's churn
is the same wherever its HMUs run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def hmu_number(hmu_id: str) -> int:
    """The digits of an HMU id as a number (``hmu-07`` -> 7), for seeding."""
    return int("".join(c for c in hmu_id if c.isdigit()) or "0")


@dataclass(frozen=True)
class ChurnPlan:
    share: float
    offline_s: tuple[float, float]
    seed: int

    def away(self, hmu_id: str, round_: int) -> float | None:
        """Seconds ``hmu_id`` stays offline on its invitation to ``round_``, or None."""
        rng = np.random.default_rng([self.seed, 0xC4A2, hmu_number(hmu_id), round_])
        if rng.random() >= self.share:
            return None
        return float(rng.uniform(*self.offline_s))
