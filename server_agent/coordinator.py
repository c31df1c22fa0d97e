"""The FL server's round protocol as a pure state machine: events in, actions out, no I/O.

The runner feeds it presence changes, arriving updates, aggregation results and clock
ticks; it answers with actions (invite these HMUs, aggregate these updates, finish).
Time is always passed in, and the only randomness (client selection) comes from the
``numpy.random.Generator`` given at construction, so a run is reproducible from its seed.

    WAITING --all HMUs online, or online timeout with at least one--> KEYING or TRAINING
    KEYING --every online HMU has a key or is excluded, or deadline--> TRAINING
    TRAINING --every selected HMU answered or went offline, or deadline--> AGGREGATING
    AGGREGATING --round_done, rounds left, rekey due--> KEYING
    AGGREGATING --round_done, rounds left--> TRAINING
    AGGREGATING --round_done, last round--> FINISHED
    any --abort--> FINISHED

With ``keys_required`` an HMU is eligible only while it holds an accepted key; keys
are dropped and renewed every ``rekey_rounds`` rounds (0: never).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from iomt.errors import ProtocolViolation


class Phase(Enum):
    WAITING = "waiting"
    KEYING = "keying"
    TRAINING = "training"
    AGGREGATING = "aggregating"
    FINISHED = "finished"


@dataclass(frozen=True)
class Invite:
    """Send the current global model to ``hmus`` for ``round``."""

    round: int
    hmus: tuple[str, ...]
    deadline_s: float


@dataclass(frozen=True)
class Rekey:
    """Run a fresh key session with each of ``hmus`` before the next round."""

    hmus: tuple[str, ...]
    deadline_s: float


@dataclass(frozen=True)
class Aggregate:
    """Close ``round``: aggregate ``updates`` (HMU id -> update payload)."""

    round: int
    selected: tuple[str, ...]
    updates: dict[str, Any]
    timed_out: bool


@dataclass(frozen=True)
class Finish:
    """The run is over, normally (``completed``) or not."""

    completed: bool
    reason: str


Action = Invite | Rekey | Aggregate | Finish


@dataclass
class _Round:
    number: int
    selected: tuple[str, ...]
    opened_at: float
    updates: dict[str, Any] = field(default_factory=dict)


class RoundCoordinator:
    """Decides who trains when, and when a round is over."""

    def __init__(
        self,
        hmus: list[str],
        *,
        clients_per_round: int,
        rounds: int,
        round_deadline_s: float,
        online_timeout_s: float,
        rng: np.random.Generator,
        now: float,
        keys_required: bool = False,
        rekey_rounds: int = 0,
        key_deadline_s: float = 30.0,
    ) -> None:
        if clients_per_round < 1 or rounds < 1:
            raise ValueError("clients_per_round and rounds must be at least 1")
        self.hmus = tuple(hmus)
        self.clients_per_round = clients_per_round
        self.rounds = rounds
        self.round_deadline_s = round_deadline_s
        self.online_timeout_s = online_timeout_s
        self._rng = rng
        self._started_at = now
        self.keys_required = keys_required
        self.rekey_rounds = rekey_rounds
        self.key_deadline_s = key_deadline_s
        self.keyed: set[str] = set()
        self._keying_since = 0.0
        self._keying: set[str] = set()
        self.phase = Phase.WAITING
        self.online: dict[str, bool] = {h: False for h in self.hmus}
        self.excluded: set[str] = set()
        self.current: _Round | None = None
        self.completed_rounds = 0

    # -- events -----------------------------------------------------------------

    def hmu_status(self, hmu: str, online: bool, now: float) -> list[Action]:
        """An HMU came online or went offline (retained status or last will)."""
        if hmu not in self.online:
            raise ProtocolViolation(f"status from unknown HMU {hmu!r}")
        self.online[hmu] = online
        if self.phase is Phase.WAITING and all(self.online.values()):
            return self._next_round(now)
        if self.phase is Phase.KEYING and not online:
            self._keying.discard(hmu)
            return self._open_if_keyed(now)
        if self.phase is Phase.TRAINING and not online:
            return self._close_if_settled(now)
        return []

    def key_accepted(self, hmu: str, now: float) -> list[Action]:
        """``hmu`` and the server now share a confirmed key."""
        if hmu not in self.online:
            raise ProtocolViolation(f"key for unknown HMU {hmu!r}")
        if hmu in self.excluded:
            raise ProtocolViolation(f"key for isolated HMU {hmu!r}")
        self.keyed.add(hmu)
        self._keying.discard(hmu)
        if self.phase is Phase.KEYING:
            return self._open_if_keyed(now)
        return []

    def exclude(self, hmu: str, now: float) -> list[Action]:
        """Never select ``hmu`` again (it was isolated); its pending update is dropped."""
        self.excluded.add(hmu)
        self.keyed.discard(hmu)
        self._keying.discard(hmu)
        if self.current is not None:
            self.current.updates.pop(hmu, None)
        if self.phase is Phase.KEYING:
            return self._open_if_keyed(now)
        if self.phase is Phase.TRAINING:
            return self._close_if_settled(now)
        return []

    def update_arrived(self, hmu: str, round_: int, payload: Any, now: float) -> list[Action]:
        """A model update from ``hmu`` for ``round_``; raises ``ProtocolViolation`` if unwanted."""
        rnd = self.current
        if self.phase is not Phase.TRAINING or rnd is None:
            raise ProtocolViolation(f"update from {hmu} while {self.phase.value}")
        if round_ != rnd.number:
            raise ProtocolViolation(f"update from {hmu} for round {round_}, not {rnd.number}")
        if hmu not in rnd.selected:
            raise ProtocolViolation(f"update from {hmu}, which was not selected")
        if hmu in self.excluded:
            raise ProtocolViolation(f"update from isolated HMU {hmu}")
        if hmu in rnd.updates:
            raise ProtocolViolation(f"second update from {hmu} in round {round_}")
        rnd.updates[hmu] = payload
        return self._close_if_settled(now)

    def tick(self, now: float) -> list[Action]:
        """The clock moved: enforce the online timeout and the round deadline."""
        if self.phase is Phase.WAITING and now - self._started_at >= self.online_timeout_s:
            if any(self.online.values()):
                return self._next_round(now)
            return self._finish(False, f"no HMU came online within {self.online_timeout_s:g} s")
        if self.phase is Phase.KEYING and now - self._keying_since >= self.key_deadline_s:
            self._keying.clear()  # whoever has no key by now sits this round out
            return self._open_round(now)
        rnd = self.current
        if self.phase is Phase.TRAINING and rnd and now - rnd.opened_at >= self.round_deadline_s:
            return self._close(timed_out=True)
        return []

    def round_done(self, round_: int, now: float) -> list[Action]:
        """The runner finished aggregating ``round_``; open the next round or finish."""
        if self.phase is not Phase.AGGREGATING or self.current is None:
            raise ProtocolViolation(f"round_done while {self.phase.value}")
        if round_ != self.current.number:
            raise ProtocolViolation(f"round_done for {round_}, not {self.current.number}")
        self.completed_rounds = round_
        if round_ >= self.rounds:
            return self._finish(True, f"completed {round_} rounds")
        return self._next_round(now)

    def abort(self, reason: str) -> list[Action]:
        return self._finish(False, reason)

    def next_wakeup(self) -> float | None:
        """When ``tick`` next needs calling (absolute time), if ever."""
        if self.phase is Phase.WAITING:
            return self._started_at + self.online_timeout_s
        if self.phase is Phase.KEYING:
            return self._keying_since + self.key_deadline_s
        if self.phase is Phase.TRAINING and self.current is not None:
            return self.current.opened_at + self.round_deadline_s
        return None

    # -- internals ----------------------------------------------------------------

    def _eligible(self) -> list[str]:
        return [
            h
            for h in self.hmus
            if self.online[h]
            and h not in self.excluded
            and (h in self.keyed or not self.keys_required)
        ]

    def _next_round(self, now: float) -> list[Action]:
        """Open the next round, after a key session where one is due."""
        if not self.keys_required:
            return self._open_round(now)
        done = self.completed_rounds
        if self.rekey_rounds and done and done % self.rekey_rounds == 0:
            self.keyed.clear()
        need = tuple(
            h
            for h in self.hmus
            if self.online[h] and h not in self.excluded and h not in self.keyed
        )
        if not need:
            return self._open_round(now)
        self.phase = Phase.KEYING
        self._keying_since = now
        self._keying = set(need)
        return [Rekey(hmus=need, deadline_s=self.key_deadline_s)]

    def _open_if_keyed(self, now: float) -> list[Action]:
        return [] if self._keying else self._open_round(now)

    def _open_round(self, now: float) -> list[Action]:
        eligible = self._eligible()
        if not eligible:
            return self._finish(False, "no eligible HMU is online")
        k = min(self.clients_per_round, len(eligible))
        picked = self._rng.choice(len(eligible), size=k, replace=False)
        selected = tuple(sorted(eligible[i] for i in picked))
        number = (self.current.number if self.current else 0) + 1
        self.current = _Round(number=number, selected=selected, opened_at=now)
        self.phase = Phase.TRAINING
        return [Invite(round=number, hmus=selected, deadline_s=self.round_deadline_s)]

    def _close_if_settled(self, now: float) -> list[Action]:
        rnd = self.current
        assert rnd is not None
        waiting = [
            h
            for h in rnd.selected
            if h not in rnd.updates and self.online[h] and h not in self.excluded
        ]
        return [] if waiting else self._close(timed_out=False)

    def _close(self, *, timed_out: bool) -> list[Action]:
        rnd = self.current
        assert rnd is not None
        self.phase = Phase.AGGREGATING
        return [
            Aggregate(
                round=rnd.number,
                selected=rnd.selected,
                updates=dict(rnd.updates),
                timed_out=timed_out,
            )
        ]

    def _finish(self, completed: bool, reason: str) -> list[Action]:
        self.phase = Phase.FINISHED
        return [Finish(completed=completed, reason=reason)]
