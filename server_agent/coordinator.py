"""The FL server's round protocol as a pure state machine: typed events in, actions out, no I/O.

The runner feeds it events (presence changes, keys, arriving updates, aggregation
results, clock ticks) through ``handle``; it answers with actions (invite these HMUs,
run key sessions, aggregate these updates, finish).  Time is always passed in, and the
only randomness (client selection) comes from the ``numpy.random.Generator`` given at
construction, so a run is reproducible from its seed.

    WAITING --all HMUs online, or online timeout with at least one--> KEYING or TRAINING
    (a round due while every eligible HMU is away) --> WAITING until one is back
    KEYING --every online HMU has a key or is excluded, or deadline--> TRAINING
    TRAINING --every selected HMU answered or went offline, or deadline--> AGGREGATING
    AGGREGATING --round done, rounds left, rekey due--> KEYING
    AGGREGATING --round done, rounds left--> TRAINING
    AGGREGATING --round done, last round--> FINISHED
    any but FINISHED --abort--> FINISHED
    TRAINING --broker back, or messages dropped--> TRAINING (the round's silent HMUs
                                                   invited again)

Which event each phase takes is the table ``TRANSITIONS``; any other pair raises
``UnexpectedEvent`` when the event came from a peer (a message: never fatal) and
``StateError`` when the server raised it itself (a bug).

**Versions.**  Every global model has a version (0, then one more per aggregation);
an invitation names the one it carries, an update the one it was trained from.  A
synchronous round accepts only the current version (``accepted_versions``);
``async_coordinator`` buffers updates up to a staleness bound.  With ``keys_required``
an HMU is eligible only while it holds a key, renewed every ``rekey_rounds`` (0: never).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

import numpy as np

from iomt.errors import ProtocolViolation, StateError, UnexpectedEvent
from iomt.server_agent.events import (
    Abort,
    Action,
    Aggregate,
    BrokerBack,
    Event,
    Excluded,
    Finish,
    HmuStatus,
    Invite,
    KeyAccepted,
    MessagesDropped,
    Rekey,
    RoundDone,
    Tick,
    UpdateArrived,
)

__all__ = [
    "TRANSITIONS", "Abort", "Action", "Aggregate", "BrokerBack", "Event", "Excluded", "Finish",
    "HmuStatus", "Invite", "KeyAccepted", "MessagesDropped", "Phase", "Rekey", "RoundCoordinator",
    "RoundDone", "Tick", "UpdateArrived"]  # fmt: skip


class Phase(Enum):
    WAITING = "waiting"
    KEYING = "keying"
    TRAINING = "training"
    AGGREGATING = "aggregating"
    FINISHED = "finished"


@dataclass
class _Round:
    number: int
    selected: tuple[str, ...]
    opened_at: float
    version: int
    updates: dict[str, Any] = field(default_factory=dict)
    left: set[str] = field(default_factory=set)  # went offline: their round's work is lost


_ACTIVE = (Phase.WAITING, Phase.KEYING, Phase.TRAINING, Phase.AGGREGATING)

Handler = Callable[["RoundCoordinator", Any, float], list[Action]]


class RoundCoordinator:
    """Decides who trains when, from which model version, and when a round is over."""

    transitions: ClassVar[dict[tuple[Phase, type[Event]], Handler]]
    """The table ``handle`` dispatches on (``TRANSITIONS``; a subclass may extend it)."""

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
        min_updates: int = 0,
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
        self.min_updates = min_updates
        """A round closing with fewer updates ends the run, not completed."""
        self.keyed: set[str] = set()
        self._keying_since = 0.0
        self._keying: set[str] = set()
        self.phase = Phase.WAITING
        self.online: dict[str, bool] = {h: False for h in self.hmus}
        self.excluded: set[str] = set()
        self.current: _Round | None = None
        self.completed_rounds = 0
        self._rejoining = False  # waiting mid-run for an eligible HMU to come back
        self.version = 0
        """Version of the current global model: how many aggregations made it."""

    def restore(
        self, completed_rounds: int, version: int, rng_state: dict[str, Any], excluded: list[str]
    ) -> None:
        """Continue a checkpointed run: the next round is ``completed_rounds + 1``, selected
        by the generator as it was then; isolated HMUs stay out.  Keys are not restored."""
        if self.phase is not Phase.WAITING:
            raise StateError("restore before the first event only")
        self.completed_rounds = completed_rounds
        self.version = version
        self._rng.bit_generator.state = rng_state
        self.excluded = set(excluded) & set(self.hmus)

    def rng_state(self) -> dict[str, Any]:
        """The client-selection generator's state, for the checkpoint."""
        return dict(self._rng.bit_generator.state)

    def accepted_versions(self) -> frozenset[int]:
        """Versions an update may be trained from: in synchronous rounds, the current one."""
        return frozenset({self.version})

    def handle(self, event: Event, now: float) -> list[Action]:
        """Apply ``event`` at time ``now``; raises if the current phase does not take it."""
        handler = self.transitions.get((self.phase, type(event)))
        if handler is None:
            what = f"{type(event).__name__} while {self.phase.value}"
            raise UnexpectedEvent(what) if event.from_peer else StateError(what)
        return handler(self, event, now)

    # -- convenience wrappers (the events by keyword) -----------------------------------

    def hmu_status(self, hmu: str, online: bool, now: float) -> list[Action]:
        return self.handle(HmuStatus(hmu, online), now)

    def key_accepted(self, hmu: str, now: float) -> list[Action]:
        return self.handle(KeyAccepted(hmu), now)

    def exclude(self, hmu: str, now: float) -> list[Action]:
        return self.handle(Excluded(hmu), now)

    def update_arrived(
        self, hmu: str, round_: int, payload: Any, now: float, *, version: int | None = None
    ) -> list[Action]:
        """An update; ``version`` defaults to the one the current round was opened with."""
        if version is None:
            version = self.current.version if self.current is not None else self.version
        return self.handle(UpdateArrived(hmu, round_, version, payload), now)

    def tick(self, now: float) -> list[Action]:
        return self.handle(Tick(), now)

    def round_done(self, round_: int, now: float) -> list[Action]:
        return self.handle(RoundDone(round_), now)

    def abort(self, reason: str) -> list[Action]:
        return self.handle(Abort(reason), 0.0)

    def next_wakeup(self) -> float | None:
        """When ``tick`` next needs calling (absolute time), if ever."""
        if self.phase is Phase.WAITING:
            return self._started_at + self.online_timeout_s
        if self.phase is Phase.KEYING:
            return self._keying_since + self.key_deadline_s
        if self.phase is Phase.TRAINING and self.current is not None:
            return self.current.opened_at + self.round_deadline_s
        return None

    # -- transitions ---------------------------------------------------------------------

    def _on_status(self, event: HmuStatus, now: float) -> list[Action]:
        if event.hmu not in self.online:
            raise ProtocolViolation(f"status from unknown HMU {event.hmu!r}")
        self.online[event.hmu] = event.online
        back = self._rejoining and event.online
        if self.phase is Phase.WAITING and (back or all(self.online.values())):
            return self._next_round(now)
        if self.phase is Phase.KEYING and not event.online:
            self._keying.discard(event.hmu)
            return self._open_if_keyed(now)
        if self.phase is Phase.TRAINING and not event.online and self.current is not None:
            self.current.left.add(event.hmu)  # back before the round ends, it has nothing
            return self._close_if_settled(now)
        return []

    def _on_key(self, event: KeyAccepted, now: float) -> list[Action]:
        hmu = event.hmu
        if hmu not in self.online:
            raise ProtocolViolation(f"key for unknown HMU {hmu!r}")
        if hmu in self.excluded:
            raise ProtocolViolation(f"key for isolated HMU {hmu!r}")
        self.keyed.add(hmu)
        self._keying.discard(hmu)
        return self._open_if_keyed(now) if self.phase is Phase.KEYING else []

    def _on_excluded(self, event: Excluded, now: float) -> list[Action]:
        self.excluded.add(event.hmu)
        self.keyed.discard(event.hmu)
        self._keying.discard(event.hmu)
        if self.current is not None:
            self.current.updates.pop(event.hmu, None)
        if self.phase is Phase.KEYING:
            return self._open_if_keyed(now)
        if self.phase is Phase.TRAINING:
            return self._close_if_settled(now)
        return []

    def _on_update(self, event: UpdateArrived, now: float) -> list[Action]:
        rnd, hmu = self.current, event.hmu
        assert rnd is not None  # TRAINING always has a round
        if event.round != rnd.number:
            raise ProtocolViolation(f"update from {hmu} for round {event.round}, not {rnd.number}")
        if event.version not in self.accepted_versions():
            raise ProtocolViolation(
                f"update from {hmu} trained from version {event.version}, "
                f"not one of {sorted(self.accepted_versions())}"
            )
        if hmu not in rnd.selected:
            raise ProtocolViolation(f"update from {hmu}, which was not selected")
        if hmu in self.excluded:
            raise ProtocolViolation(f"update from isolated HMU {hmu}")
        if hmu in rnd.updates:
            raise ProtocolViolation(f"second update from {hmu} in round {event.round}")
        rnd.updates[hmu] = event.payload
        return self._close_if_settled(now)

    def _on_tick(self, event: Tick, now: float) -> list[Action]:
        if self.phase is Phase.WAITING and now - self._started_at >= self.online_timeout_s:
            if self._rejoining:
                why = f"no eligible HMU came back within {self.online_timeout_s:g} s"
                return self._finish(False, f"{why} (online_timeout_s) after round {self.version}")
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

    def _on_round_done(self, event: RoundDone, now: float) -> list[Action]:
        assert self.current is not None  # AGGREGATING always has a round
        if event.round != self.current.number:
            raise StateError(f"round_done for {event.round}, not {self.current.number}")
        self.completed_rounds = event.round
        self.version += 1
        received = len(self.current.updates)
        if received < self.min_updates:
            return self._finish(
                False,
                f"round {event.round} closed with {received} update(s), fewer than "
                f"federation.min_updates = {self.min_updates}",
            )
        if event.round >= self.rounds:
            return self._finish(True, f"completed {event.round} rounds")
        return self._next_round(now)

    def _on_broker_back(self, event: BrokerBack | MessagesDropped, now: float) -> list[Action]:
        """Invite again whoever has not answered this round: their update may be lost."""
        rnd = self.current
        if self.phase is not Phase.TRAINING or rnd is None:
            return []
        pending = tuple(
            h
            for h in rnd.selected
            if h not in rnd.updates and self.online[h] and h not in self.excluded
        )
        if not pending:
            return []
        return [Invite(rnd.number, pending, self.round_deadline_s, rnd.version, again=True)]

    def _on_abort(self, event: Abort, now: float) -> list[Action]:
        return self._finish(False, event.reason)

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
        away = [h for h in self.hmus if not self.online[h] and h not in self.excluded]
        if not eligible and away and not self._rejoining:
            # every eligible HMU is away (churn, a restart): wait for one to come back
            self.phase, self._started_at, self._rejoining = Phase.WAITING, now, True
            return []
        if not eligible:
            return self._finish(False, "no eligible HMU is online")
        self._rejoining = False
        k = min(self.clients_per_round, len(eligible))
        picked = self._rng.choice(len(eligible), size=k, replace=False)
        selected = tuple(sorted(eligible[i] for i in picked))
        number = self.completed_rounds + 1
        self.current = _Round(number, selected, opened_at=now, version=self.version)
        self.phase = Phase.TRAINING
        return [Invite(number, selected, self.round_deadline_s, self.version)]

    def _close_if_settled(self, now: float) -> list[Action]:
        rnd = self.current
        assert rnd is not None
        gone = rnd.left | self.excluded
        waiting = [h for h in rnd.selected if h not in rnd.updates and h not in gone]
        return [] if waiting else self._close(timed_out=False)

    def _close(self, *, timed_out: bool) -> list[Action]:
        rnd = self.current
        assert rnd is not None
        self.phase = Phase.AGGREGATING
        return [Aggregate(rnd.number, rnd.selected, dict(rnd.updates), timed_out, rnd.version)]

    def _finish(self, completed: bool, reason: str) -> list[Action]:
        self.phase = Phase.FINISHED
        return [Finish(completed=completed, reason=reason)]


def _rows(phases: tuple[Phase, ...], event: type[Event], handler: Handler) -> dict:
    return {(phase, event): handler for phase in phases}


TRANSITIONS: dict[tuple[Phase, type[Event]], Handler] = {
    # statuses are taken even after the run, to see the HMUs leave
    **_rows((*_ACTIVE, Phase.FINISHED), HmuStatus, RoundCoordinator._on_status),
    # a key session may finish after its deadline, while a round runs
    **_rows((Phase.KEYING, Phase.TRAINING, Phase.AGGREGATING), KeyAccepted,
            RoundCoordinator._on_key),
    **_rows(_ACTIVE, Excluded, RoundCoordinator._on_excluded),
    (Phase.TRAINING, UpdateArrived): RoundCoordinator._on_update,
    **_rows(_ACTIVE, Tick, RoundCoordinator._on_tick),
    (Phase.AGGREGATING, RoundDone): RoundCoordinator._on_round_done,
    **_rows(_ACTIVE, BrokerBack, RoundCoordinator._on_broker_back),
    **_rows(_ACTIVE, MessagesDropped, RoundCoordinator._on_broker_back),
    **_rows(_ACTIVE, Abort, RoundCoordinator._on_abort),
}  # fmt: skip
"""(phase, event type) -> handler: every pair not listed is refused."""
RoundCoordinator.transitions = TRANSITIONS
