"""A fog aggregator's round protocol as a pure state machine: no I/O, time passed in.

A fog node is the aggregator of its own tier and a member of the cloud's. It opens a
round of its tier only when the cloud invites it, for the cloud's round and model
version; it invites a share of its online HMUs (``share``: the cloud's
``clients_per_round`` spread over the fogs in proportion to their HMUs), and closes
the round when every invited HMU that is still online has answered, or at its own
deadline, which is the cloud's less a margin so that the partial reaches the cloud in
time. The ``Aggregate`` it then asks for becomes one partial update upward
(``partial_update``).

    IDLE --the cloud invites, HMUs online--> TRAINING (Invite)
    IDLE --the cloud invites, none online--> IDLE (Aggregate of nothing: no partial)
    TRAINING --all answered, or deadline--> IDLE (Aggregate)
    TRAINING --the cloud invites again (its round moved on)--> TRAINING (the old round dropped)
    IDLE --its defence kept none of the updates (``retry``)--> TRAINING (other HMUs invited,
         within what is left of the fog's deadline) or IDLE (nobody left to ask)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from iomt.errors import ProtocolViolation
from iomt.fedlearn.model import Weights
from iomt.fedlearn.strategy import AggregationResult, Aggregator
from iomt.server_agent.events import Aggregate, Invite
from iomt.wire.messages import ModelUpdate

MARGIN = 0.2
"""Share of the cloud's deadline a fog keeps for aggregating and sending its partial."""


@dataclass
class _FogRound:
    number: int
    version: int
    selected: tuple[str, ...]
    closes_at: float
    updates: dict[str, Any] = field(default_factory=dict)
    asked: frozenset[str] = frozenset()
    """Everyone invited for this cloud round so far (a retry asks others)."""


class FogTier:
    """Who of the fog's HMUs trains for the cloud's round, and when the partial is due."""

    def __init__(self, members: list[str], share: int, rng: np.random.Generator) -> None:
        if not members or share < 1:
            raise ValueError("a fog needs members and a share of at least 1")
        self.members = tuple(members)
        self.share = share
        self.online: dict[str, bool] = dict.fromkeys(members, False)
        self.current: _FogRound | None = None
        self._last: _FogRound | None = None  # the latest round opened, closed or not
        self._rng = rng

    def status(self, member: str, online: bool, now: float) -> list[Invite | Aggregate]:
        if member not in self.online:
            raise ProtocolViolation(f"status from {member!r}, not a member of this fog")
        self.online[member] = online
        return [] if online else self._close_if_settled()

    def invited(
        self, round_: int, version: int, deadline_s: float, now: float
    ) -> list[Invite | Aggregate]:
        """The cloud's invitation for ``round_`` (model ``version``, answer within
        ``deadline_s``); a round still open is dropped: the cloud has moved on."""
        self.current = self._last = None
        eligible = [m for m in self.members if self.online[m]]
        if not eligible:
            return [Aggregate(round_, (), {}, timed_out=False, version=version)]
        picked = self._rng.choice(len(eligible), size=min(self.share, len(eligible)), replace=False)
        selected = tuple(sorted(eligible[i] for i in picked))
        fog_deadline = deadline_s * (1 - MARGIN)
        self.current = _FogRound(
            round_, version, selected, now + fog_deadline, asked=frozenset(selected)
        )
        self._last = self.current
        return [Invite(round_, selected, fog_deadline, version)]

    def retry(self, now: float) -> list[Invite | Aggregate]:
        """The defence kept none of the round's updates: invite HMUs not asked yet for the
        same cloud round, within what is left of its deadline ([] if nobody is left)."""
        last = self._last
        if last is None or self.current is not None or now >= last.closes_at:
            return []
        fresh = [m for m in self.members if self.online[m] and m not in last.asked]
        if not fresh:
            return []
        picked = self._rng.choice(len(fresh), size=min(self.share, len(fresh)), replace=False)
        selected = tuple(sorted(fresh[i] for i in picked))
        self.current = _FogRound(last.number, last.version, selected, last.closes_at,
                                 asked=last.asked | set(selected))  # fmt: skip
        self._last = self.current
        return [Invite(last.number, selected, last.closes_at - now, last.version)]

    def update(
        self, member: str, round_: int, version: int, payload: Any, now: float
    ) -> list[Invite | Aggregate]:
        rnd = self.current
        if rnd is None or round_ != rnd.number or version != rnd.version:
            raise ProtocolViolation(f"update from {member} for round {round_}, none open")
        if member not in rnd.selected:
            raise ProtocolViolation(f"update from {member}, which was not invited")
        if member in rnd.updates:
            raise ProtocolViolation(f"second update from {member} in round {round_}")
        rnd.updates[member] = payload
        return self._close_if_settled()

    def tick(self, now: float) -> list[Invite | Aggregate]:
        if self.current is not None and now >= self.current.closes_at:
            return self._close(timed_out=True)
        return []

    def next_wakeup(self) -> float | None:
        return self.current.closes_at if self.current is not None else None

    def _close_if_settled(self) -> list[Invite | Aggregate]:
        rnd = self.current
        if rnd is None:
            return []
        waiting = [m for m in rnd.selected if m not in rnd.updates and self.online[m]]
        return [] if waiting else self._close(timed_out=False)

    def _close(self, *, timed_out: bool) -> list[Invite | Aggregate]:
        rnd = self.current
        assert rnd is not None
        self.current = None
        return [Aggregate(rnd.number, rnd.selected, dict(rnd.updates), timed_out, rnd.version)]


@dataclass(frozen=True)
class Partial:
    """A fog's aggregate of its HMUs' updates, and the weight it carries upward."""

    weights: Weights
    samples: int
    """Training samples behind the HMUs whose updates were kept (0: nothing to send)."""
    loss: float
    result: AggregationResult


def partial_update(aggregator: Aggregator, previous: Weights, agg: Aggregate) -> Partial:
    """The fog's defence (screening, trust) over its HMUs' ``(weights, ModelUpdate)``."""
    updates = {h: (w, m.num_samples) for h, (w, m) in sorted(agg.updates.items())}
    if not updates:
        return Partial(previous, 0, 0.0, AggregationResult(previous))
    result = aggregator.aggregate(previous, updates, agg.round)
    kept = {h: m for h, (_, m) in agg.updates.items() if h not in result.flagged}
    assert all(isinstance(m, ModelUpdate) for m in kept.values())
    samples = sum(m.num_samples for m in kept.values())
    loss = sum(m.loss * m.num_samples for m in kept.values()) / samples if samples else 0.0
    return Partial(result.weights, samples, loss, result)
