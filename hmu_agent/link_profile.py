"""An HMU's link and compute profile for a round: bandwidth, latency and clock speed.

``links`` in a scenario gives ranges; each HMU draws its profile for each round
uniformly from them, seeded by the scenario's seed, the HMU and the round.  The HMU's
transport enforces it, an emulation stated as such:

* **bandwidth and latency**, ``shaping: pacer``: a message of n bytes is held back
  ``latency + 8 n / bandwidth`` before it goes out (an update) or before it is used (an
  invitation): a token bucket without burst, one message at a time, in the HMU's own
  transport.  ``shaping: tc``: the kernel holds the bandwidth (``tbf`` on both ends of
  the HMU process's veth pair, ``iomt.hmu_agent.kernel_link``) and the transport only
  the latency.  Either way the server measures each
  update's transfer time where it arrives (``results.json``'s round ``transfer_s``:
  arrival minus the time the HMU stamped it).
* **compute**: local training is stretched by ``reference_ghz / ghz`` (a slower clock
  takes proportionally longer; a faster one than the reference is not sped up).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iomt.hmu_agent.churn import hmu_number


@dataclass(frozen=True)
class RoundProfile:
    """What one HMU's link and processor are like in one round."""

    kbps: float | None
    latency_ms: float
    ghz: float | None
    reference_ghz: float
    kernel: bool = False
    """The kernel holds the bandwidth (``shaping: tc``): the transport only the latency."""

    def transfer_s(self, nbytes: int) -> float:
        """How long the transport holds ``nbytes`` back: latency, and the bandwidth's
        share unless there is no limit or the kernel holds it."""
        if self.kbps is None or self.kernel:
            return self.latency_ms / 1000
        return self.latency_ms / 1000 + nbytes * 8 / (self.kbps * 1000)

    def extra_compute_s(self, train_s: float) -> float:
        """How much longer training takes on this processor than it took here."""
        if self.ghz is None or self.ghz >= self.reference_ghz:
            return 0.0
        return train_s * (self.reference_ghz / self.ghz - 1)

    def as_dict(self) -> dict[str, float | str | None]:
        shaping = "tc" if self.kernel else "pacer"
        return {"kbps": self.kbps, "latency_ms": self.latency_ms, "ghz": self.ghz,
                "shaping": shaping}  # fmt: skip


@dataclass(frozen=True)
class LinkPlan:
    """The ranges a scenario gives; ``None`` leaves that side unlimited."""

    bandwidth_kbps: tuple[float, float] | None
    latency_ms: tuple[float, float]
    compute_ghz: tuple[float, float] | None
    reference_ghz: float
    seed: int
    kernel: bool = False

    def profile(self, hmu_id: str, round_: int) -> RoundProfile:
        rng = np.random.default_rng([self.seed, 0x11E4, hmu_number(hmu_id), round_])

        def draw(span: tuple[float, float] | None) -> float | None:
            return None if span is None else round(float(rng.uniform(*span)), 3)

        kbps = draw(self.bandwidth_kbps)
        latency = draw(self.latency_ms) or 0.0
        ghz = draw(self.compute_ghz)
        return RoundProfile(kbps, latency, ghz, self.reference_ghz, self.kernel)
