"""Trust per HMU with decay and an anomaly history, for trust-weighted aggregation.

SAFE-MED (Khan et al., 2025) weighs each client's update by a behavioural trust score
that decays when the client misbehaves.  Here trust is an exponential moving average of
the screening verdicts: after a round in which HMU ``i`` took part,

    t_i <- decay * t_i + (1 - decay) * s_i,    s_i = 0 if flagged else 1,

starting from ``initial``.  A flagged HMU thus loses trust geometrically and regains it
slowly while it behaves.  The aggregate is FedAvg weighted by ``t_i n_i`` over the
unflagged HMUs whose trust is at least ``floor``.  With the defaults (decay 0.7, floor
0.5) an honest HMU flagged once by mistake keeps taking part (trust 0.7), while one
flagged round after round sinks towards 0 and, in a round where it slips through
screening, is still left out (it needs two clean rounds in a row to pass 0.5 again).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from iomt.fedlearn.defence_config import TrustConfig


def updated_trust(
    trust: Mapping[str, float],
    participants: Iterable[str],
    flagged: Iterable[str],
    cfg: TrustConfig,
) -> dict[str, float]:
    """Trust after one round (see module doc); HMUs not taking part keep theirs."""
    flagged = set(flagged)
    out = dict(trust)
    for hmu in participants:
        verdict = 0.0 if hmu in flagged else 1.0
        out[hmu] = cfg.decay * out.get(hmu, cfg.initial) + (1.0 - cfg.decay) * verdict
    return out


def trust_weights(
    trust: Mapping[str, float], counts: Mapping[str, int], cfg: TrustConfig
) -> dict[str, float]:
    """Aggregation weight ``t_i n_i`` of each HMU in ``counts`` at or above the trust floor."""
    return {
        hmu: trust.get(hmu, cfg.initial) * n
        for hmu, n in counts.items()
        if trust.get(hmu, cfg.initial) >= cfg.floor
    }


@dataclass
class TrustLedger:
    """Trust scores and the anomaly history (rounds flagged) of every HMU seen."""

    cfg: TrustConfig
    trust: dict[str, float] = field(default_factory=dict)
    history: dict[str, list[int]] = field(default_factory=dict)

    def observe(self, round_no: int, participants: Iterable[str], flagged: Iterable[str]) -> None:
        """Fold one round's screening verdicts into trust and history."""
        participants = list(participants)
        flagged = set(flagged)
        self.trust = updated_trust(self.trust, participants, flagged, self.cfg)
        for hmu in participants:
            rounds = self.history.setdefault(hmu, [])
            if hmu in flagged:
                rounds.append(round_no)

    def score(self, hmu: str) -> float:
        """Current trust of ``hmu`` (``initial`` if never seen)."""
        return self.trust.get(hmu, self.cfg.initial)

    def anomalies(self, hmu: str) -> int:
        """How many rounds ``hmu`` was flagged in."""
        return len(self.history.get(hmu, []))
