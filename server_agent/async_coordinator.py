"""Asynchronous federation as a pure state machine: buffered, staleness-bounded aggregation.

``federation.mode: async`` runs this coordinator instead of synchronous rounds.  It is
FedBuff's scheme (Nguyen et al., "Federated Learning with Buffered Asynchronous
Aggregation", 2022) with a polynomial staleness weight (Xie et al., FedAsync, 2019):

* Up to K (``clients_per_round``) HMUs train at once, each from the newest global model
  it was sent.  An HMU is idle, in flight (invited, no answer yet) or buffered (its
  update waits for the next aggregation); it is not invited again while buffered, so
  it adds at most one update to an aggregation.
* An update trained from version v that arrives while the global model is at version V
  has staleness s = V - v.  With s > ``staleness_bound`` it is refused and counted, and
  its HMU is sent the newest model; otherwise it is buffered.
* When M (``buffer_size``) updates are buffered, or ``round_deadline_s`` after the last
  aggregation with whatever is buffered, they are aggregated: the runner adds each
  update's delta (its weights minus the global model it was trained from) to the
  current model, weighted by its samples x (1 + s)^-a (``staleness_exponent``).  The
  version advances by one; every aggregation is one "round" of ``results.json``.
  Staleness is measured again then: an update buffered while the model moved past the
  bound is refused at that point.
* Updates go on arriving while the runner aggregates; they wait for the next buffer.

The rest (presence, keys at the start, isolation, the online timeout, ``min_updates``,
the number of rounds) is ``RoundCoordinator``'s.  Key sessions run only before the
first aggregation: rekeying during asynchronous training is refused by the scenario.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from iomt.errors import ProtocolViolation
from iomt.server_agent.coordinator import (
    TRANSITIONS,
    Action,
    Aggregate,
    BrokerBack,
    Finish,
    HmuStatus,
    Invite,
    KeyAccepted,
    MessagesDropped,
    Phase,
    RoundCoordinator,
    UpdateArrived,
    _Round,
)


def staleness_weight(staleness: int, exponent: float) -> float:
    """(1 + s)^-a: 1 for a fresh update, 1/sqrt(2) for s = 1 at a = 0.5."""
    return (1.0 + staleness) ** -exponent


class AsyncCoordinator(RoundCoordinator):
    """Keeps K HMUs training and aggregates every M updates (see the module docstring)."""

    def __init__(
        self,
        hmus: list[str],
        *,
        buffer_size: int,
        staleness_bound: int,
        staleness_exponent: float,
        **settings: Any,
    ) -> None:
        super().__init__(hmus, **settings)
        if not 1 <= buffer_size <= self.clients_per_round:
            raise ValueError("buffer_size must be between 1 and clients_per_round")
        self.buffer_size = buffer_size
        self.staleness_bound = staleness_bound
        self.staleness_exponent = staleness_exponent
        self.in_flight: dict[str, tuple[int, int]] = {}
        """HMU -> (round, version) of the invitation it is training on."""
        self.buffer: dict[str, tuple[int, Any]] = {}
        """HMU -> (version it trained from, payload), waiting for the next aggregation."""
        self.applied: Counter[int] = Counter()
        """Aggregated updates by staleness."""
        self.refused_stale: Counter[int] = Counter()
        """Updates refused for staleness beyond the bound, by staleness."""

    def report(self) -> dict[str, Any]:
        """``results.json``'s ``asynchronous`` section."""
        return {
            "buffer_size": self.buffer_size,
            "staleness_bound": self.staleness_bound,
            "staleness_exponent": self.staleness_exponent,
            "applied": sum(self.applied.values()),
            "refused_stale": sum(self.refused_stale.values()),
            "staleness_histogram": {str(s): n for s, n in sorted(self.applied.items())},
            "refused_histogram": {str(s): n for s, n in sorted(self.refused_stale.items())},
        }

    # -- transitions that differ ----------------------------------------------------------

    def _open_round(self, now: float) -> list[Action]:
        self.current = _Round(self.completed_rounds + 1, (), opened_at=now, version=self.version)
        self.phase = Phase.TRAINING
        if len(self.buffer) >= self.buffer_size:  # filled while the last one aggregated
            return self._close(timed_out=False)
        return self._fill()

    def _on_update(self, event: UpdateArrived, now: float) -> list[Action]:
        hmu = event.hmu
        flight = self.in_flight.get(hmu)
        if flight is None:
            raise ProtocolViolation(f"update from {hmu}, which is not training")
        if (event.round, event.version) != flight:
            raise ProtocolViolation(
                f"update from {hmu} for round {event.round} from version {event.version}; "
                f"it was sent round {flight[0]}, version {flight[1]}"
            )
        if hmu in self.excluded:
            raise ProtocolViolation(f"update from isolated HMU {hmu}")
        del self.in_flight[hmu]
        staleness = self.version - event.version
        if staleness > self.staleness_bound:
            self.refused_stale[staleness] += 1
            return self._fill(first=hmu) if self.phase is Phase.TRAINING else []
        self.buffer[hmu] = (event.version, event.payload)
        return self._close_if_settled(now) if self.phase is Phase.TRAINING else []

    def _on_status(self, event: HmuStatus, now: float) -> list[Action]:
        actions = super()._on_status(event, now)
        if self.phase is Phase.TRAINING and event.online and not actions:
            return self._fill()  # one more HMU to keep busy
        return actions

    def _on_key(self, event: KeyAccepted, now: float) -> list[Action]:
        actions = super()._on_key(event, now)
        return actions + self._fill() if self.phase is Phase.TRAINING else actions

    def _on_broker_back(self, event: BrokerBack | MessagesDropped, now: float) -> list[Action]:
        """Invite again whoever is in flight: its update may have been lost."""
        if self.phase is not Phase.TRAINING:
            return []
        groups: dict[tuple[int, int], list[str]] = {}
        for hmu, flight in sorted(self.in_flight.items()):
            if self.online[hmu] and hmu not in self.excluded:
                groups.setdefault(flight, []).append(hmu)
        return [
            Invite(round_, tuple(hmus), self.round_deadline_s, version, again=True)
            for (round_, version), hmus in groups.items()
        ]

    def _close_if_settled(self, now: float) -> list[Action]:
        """After an update, a departure or an isolation: aggregate a full buffer, else
        keep K HMUs busy; with nobody left to answer, aggregate what there is."""
        for hmu in list(self.in_flight):
            if not self.online[hmu] or hmu in self.excluded:
                del self.in_flight[hmu]
        for hmu in list(self.buffer):
            if hmu in self.excluded:
                del self.buffer[hmu]
        if len(self.buffer) >= self.buffer_size:
            return self._close(timed_out=False)
        actions = self._fill()
        if not self.in_flight and self.buffer and not any(isinstance(a, Finish) for a in actions):
            return self._close(timed_out=False)
        return actions

    def _close(self, *, timed_out: bool) -> list[Action]:
        rnd = self.current
        assert rnd is not None
        fresh: dict[str, Any] = {}
        bases: dict[str, int] = {}
        for hmu, (version, payload) in sorted(self.buffer.items()):
            staleness = self.version - version
            if staleness > self.staleness_bound:
                self.refused_stale[staleness] += 1
                continue
            fresh[hmu], bases[hmu] = payload, version
            self.applied[staleness] += 1
        self.buffer.clear()
        rnd.updates = dict(fresh)
        self.phase = Phase.AGGREGATING
        scale = {
            h: staleness_weight(self.version - v, self.staleness_exponent) for h, v in bases.items()
        }
        return [Aggregate(rnd.number, rnd.selected, fresh, timed_out, self.version, bases, scale)]

    # -- internals ------------------------------------------------------------------------

    def _fill(self, first: str | None = None) -> list[Action]:
        """Invite idle eligible HMUs (``first``, then at random, seeded) until K are busy."""
        rnd = self.current
        assert rnd is not None
        busy = set(self.in_flight) | set(self.buffer)
        idle = [h for h in self._eligible() if h not in busy]
        room = self.clients_per_round - len(busy)
        if not busy and not idle:
            return self._finish(False, "no eligible HMU is online")
        if room <= 0 or not idle:
            return []
        chosen = [first] if first in idle else []
        others = [h for h in idle if h not in chosen]
        if room > len(chosen) and others:
            picked = self._rng.choice(len(others), size=min(room - len(chosen), len(others)),
                                      replace=False)  # fmt: skip
            chosen += [others[i] for i in picked]
        hmus = tuple(sorted(chosen))
        for hmu in hmus:
            self.in_flight[hmu] = (rnd.number, self.version)
        rnd.selected = tuple(sorted({*rnd.selected, *hmus}))
        return [Invite(rnd.number, hmus, self.round_deadline_s, self.version)]


AsyncCoordinator.transitions = {
    **{key: getattr(AsyncCoordinator, handler.__name__) for key, handler in TRANSITIONS.items()},
    # updates go on arriving while a buffer is aggregated: they wait for the next one
    (Phase.AGGREGATING, UpdateArrived): AsyncCoordinator._on_update,
}
"""``TRANSITIONS`` with this class's handlers, and updates taken while aggregating."""
