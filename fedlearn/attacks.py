"""Byzantine HMUs: who attacks in which round, and what they do to their data or update.

Attacks (on the update ``u = local - global`` unless said otherwise):

* ``label-flip``: at training time a fraction of the local labels are flipped (0 <-> 1)
  (Tolpegin et al., 2020); the update itself is left alone.
* ``sign-flip``: ``-scale * u`` (Damaskinos et al., 2018; Fang et al., 2020).
* ``scaling``: ``scale * u``, the boosted update of model replacement (Bagdasaryan et
  al., 2020).
* ``gaussian``: ``u + N(0, scale^2)`` per parameter (Blanchard et al., 2017).

Who attacks: every HMU gets a fixed pseudo-random priority from the run seed and its
id; an entry's attackers in round ``r`` are the first ``round(share(r) * n)`` HMUs of its
block of that order, so the choice is reproducible, does not depend on call order, and
an HMU that attacks keeps attacking while the share ramps up.  Entries hold disjoint
blocks, sized by each entry's largest share.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from iomt.fedlearn.defence_config import AttackConfig, AttackEntry, AttackKind, AttackSchedule
from iomt.fedlearn.model import Weights
from iomt.fedlearn.updates import apply_delta, delta

UPDATE_ATTACKS: frozenset[str] = frozenset({"sign-flip", "scaling", "gaussian"})


def attack_share(schedule: AttackSchedule, round_no: int) -> float:
    """Share of the HMUs attacking in ``round_no`` (rounds count from 1)."""
    if round_no < schedule.start_round:
        return 0.0
    end = schedule.final_share
    if schedule.ramp_rounds == 0:
        return end
    progress = min(1.0, (round_no - schedule.start_round) / schedule.ramp_rounds)
    return schedule.share_start + (end - schedule.share_start) * progress


def attacker_count(share: float, n_hmus: int) -> int:
    """``round(share * n)``, halves rounded up, so 30 % of 20 HMUs is exactly 6."""
    return min(n_hmus, math.floor(share * n_hmus + 0.5 + 1e-9))


def attack_order(hmus: Iterable[str], seed: int) -> list[str]:
    """The HMUs in the fixed pseudo-random order attackers are taken from."""

    def priority(hmu: str) -> int:
        return int(np.random.SeedSequence([seed, *hmu.encode()]).generate_state(1)[0])

    return sorted(set(hmus), key=lambda h: (priority(h), h))


def attackers_for_round(
    hmus: Iterable[str], schedule: AttackSchedule, round_no: int, seed: int
) -> set[str]:
    """HMUs (of the whole roster ``hmus``) that attack in ``round_no`` under ``schedule``.

    Deterministic in ``seed``; the set only grows while the share grows.
    """
    order = attack_order(hmus, seed)
    return set(order[: attacker_count(attack_share(schedule, round_no), len(order))])


def _peak_share(schedule: AttackSchedule) -> float:
    return max(schedule.share_start, schedule.final_share)


def assign_attacks(
    cfg: AttackConfig, hmus: Iterable[str], round_no: int, seed: int
) -> dict[str, AttackEntry]:
    """Attacking HMU -> its attack entry for ``round_no``; entries never share an HMU.

    Raises ``ValueError`` when the entries' largest shares need more HMUs than exist.
    """
    order = attack_order(hmus, seed)
    blocks = [attacker_count(_peak_share(e.schedule), len(order)) for e in cfg.entries]
    if sum(blocks) > len(order):
        raise ValueError(
            f"attack entries need {sum(blocks)} HMUs at their peak shares, have {len(order)}"
        )
    assigned: dict[str, AttackEntry] = {}
    start = 0
    for entry, block in zip(cfg.entries, blocks, strict=True):
        count = min(block, attacker_count(attack_share(entry.schedule, round_no), len(order)))
        for hmu in order[start : start + count]:
            assigned[hmu] = entry
        start += block
    return assigned


def apply_update_attack(
    global_w: Weights, local_w: Weights, kind: AttackKind, scale: float, rng: np.random.Generator
) -> Weights:
    """The weights an attacker sends instead of ``local_w`` (see module doc).

    ``label-flip`` acts on the data (``flip_labels``), so here it returns ``local_w``
    unchanged (as float32).
    """
    update = delta(global_w, local_w)
    if kind == "sign-flip":
        update = {k: -scale * v for k, v in update.items()}
    elif kind == "scaling":
        update = {k: scale * v for k, v in update.items()}
    elif kind == "gaussian":
        update = {k: v + rng.normal(0.0, scale, size=v.shape) for k, v in update.items()}
    elif kind != "label-flip":
        raise ValueError(f"unknown attack kind {kind!r}")
    return apply_delta(global_w, update)


def flip_labels(
    y: Sequence[int] | np.ndarray, rng: np.random.Generator, fraction: float
) -> np.ndarray:
    """A copy of binary labels ``y`` with ``round(fraction * n)`` random rows flipped."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
    y = np.asarray(y)
    out = y.copy()
    count = attacker_count(fraction, len(y))
    rows = rng.choice(len(y), size=count, replace=False)
    out[rows] = 1 - (y[rows] == 1).astype(y.dtype)
    return out
