"""An HMU's side of the round protocol as a pure state machine: events in, actions out.

    IDLE --train request--> TRAINING --training done--> IDLE (update sent)
    TRAINING --training failed--> IDLE (nothing sent, not counted as trained)
    TRAINING --newer train request--> TRAINING (the stale result will be dropped)
    IDLE --train request for the round just sent--> IDLE (the same update sent again)
    IDLE --train request for a round whose work was lost--> TRAINING (churn, a failure)
    any --run complete--> FINISHED

Only the server may invite, rounds only move forward (a replayed or stale invitation
is refused), and a training result for a round the server has left is discarded.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from iomt.errors import ProtocolViolation


class HmuPhase(Enum):
    IDLE = "idle"
    TRAINING = "training"
    FINISHED = "finished"


@dataclass(frozen=True)
class StartTraining:
    """Train on local data from the global weights received for ``round``."""

    round: int


@dataclass(frozen=True)
class SendUpdate:
    """Publish the training result for ``round``."""

    round: int


@dataclass(frozen=True)
class ResendUpdate:
    """Publish ``round``'s update again: the server did not get it (the broker was away)."""

    round: int


@dataclass(frozen=True)
class Stop:
    """The run is over: go offline."""

    reason: str


HmuAction = StartTraining | SendUpdate | ResendUpdate | Stop


class HmuSession:
    """Tracks which round this HMU is in and whether its result is still wanted."""

    def __init__(self, hmu_id: str, server_id: str) -> None:
        self.hmu_id = hmu_id
        self.server_id = server_id
        self.phase = HmuPhase.IDLE
        self.round = 0
        self.rounds_trained = 0
        self._sent = 0  # the last round whose update went out

    def train_request(self, sender: str, round_: int) -> list[HmuAction]:
        if self.phase is HmuPhase.FINISHED:
            raise ProtocolViolation(f"train request for round {round_} after the run ended")
        if sender != self.server_id:
            raise ProtocolViolation(f"train request from {sender!r}, not the server")
        if round_ == self.round and self._sent == round_ and self.phase is HmuPhase.IDLE:
            # the server asks again after losing the broker: the same sealed frame again
            # (a replayed invitation gets no more: a copy the server already has is refused)
            return [ResendUpdate(round=round_)]
        lost = round_ == self.round and self._sent != round_ and self.phase is HmuPhase.IDLE
        if round_ < self.round or (round_ == self.round and not lost):
            raise ProtocolViolation(f"train request for round {round_}; already at {self.round}")
        self.round = round_
        self.phase = HmuPhase.TRAINING
        return [StartTraining(round=round_)]

    def training_done(self, round_: int) -> list[HmuAction]:
        if self.phase is not HmuPhase.TRAINING or round_ != self.round:
            return []  # the server has moved on; the result is stale
        self.phase = HmuPhase.IDLE
        self.rounds_trained += 1
        self._sent = round_
        return [SendUpdate(round=round_)]

    def training_failed(self, round_: int) -> list[HmuAction]:
        """Training for ``round_`` did not produce an update: nothing to send."""
        if self.phase is HmuPhase.TRAINING and round_ == self.round:
            self.phase = HmuPhase.IDLE
        return []

    def run_complete(self, sender: str, reason: str) -> list[HmuAction]:
        if sender != self.server_id:
            raise ProtocolViolation(f"run-complete from {sender!r}, not the server")
        self.phase = HmuPhase.FINISHED
        return [Stop(reason=reason)]
