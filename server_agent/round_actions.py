"""What the server does when its coordinator asks: invite, start key sessions, aggregate
(in plaintext, or over ciphertexts that a key holder then decrypts), and close a round.

``RoundActions`` is the half of ``ServerAgent`` (``iomt.server_agent.runner``) that
performs actions; the runner's half routes deliveries.  The attributes below are set
by the runner.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from iomt.errors import QkdError
from iomt.fedlearn.evaluate import Evaluation, best_threshold, evaluate
from iomt.fedlearn.model import Weights
from iomt.fedlearn.strategy import Aggregator, trust_ledger
from iomt.monitoring import measurements
from iomt.monitoring.point import Point
from iomt.server_agent import audit, outbox
from iomt.server_agent.checkpoint import Checkpoint, checkpoint_of, write_checkpoint
from iomt.server_agent.coordinator import (
    Aggregate,
    Finish,
    Invite,
    Rekey,
    RoundCoordinator,
    RoundDone,
)
from iomt.server_agent.encrypted_rounds import EncryptedRounds, Pending
from iomt.server_agent.isolation import Isolation
from iomt.server_agent.keying import ServerKeying
from iomt.server_agent.refused import Refused
from iomt.server_agent.rounds import (
    ClosedRound,
    ModelHistory,
    close_round,
    round_record,
    training_points,
)
from iomt.server_agent.setup import ServerSetup
from iomt.wire import topics
from iomt.wire.bus import Bus
from iomt.wire.envelope import BROADCAST, new_envelope
from iomt.wire.frame import encode_frame
from iomt.wire.messages import DecryptRequest, GlobalModel, TrainRequest
from iomt.wire.stamp import stamp

log = logging.getLogger("iomt.server_agent.runner")


class RoundActions:
    """Performing the coordinator's actions (see the module docstring)."""

    setup: ServerSetup
    core: RoundCoordinator
    bus: Bus
    keying: ServerKeying | None
    he: EncryptedRounds | None
    aggregator: Aggregator
    weights: Weights
    records: list[dict[str, Any]]
    isolation: Isolation
    refused: Refused
    _emit: Callable[[Point], None]
    _bytes_up: int
    _bytes_down: int
    _round_started: float
    _run_started: float
    transfer_s: dict[str, float]
    history: ModelHistory

    def _tier(self, build: Callable[..., str], *parts: str) -> str:
        """A topic of this server's own tier."""
        return build(self.setup.run_id, *parts, aggregator=self.setup.aggregator_id)

    def _checkpoint(self) -> Checkpoint:
        """Taken as a round closes, before the coordinator counts it."""
        return checkpoint_of(
            self.setup.run_id, self.weights, self.records, self.core,
            trust_ledger(self.aggregator), self.isolation.isolated, self.refused.by_reason,
        )  # fmt: skip

    async def _invite(self, invite: Invite) -> list[Any]:
        s = self.setup
        if not invite.again:
            self._bytes_up = self._bytes_down = 0
            self._round_started = time.monotonic()
        request = TrainRequest(
            deadline_s=invite.deadline_s, model_version=invite.version, tensors=[]
        )
        frames: dict[str, bytes] = {}
        for hmu in invite.hmus:
            try:
                frames[hmu] = outbox.to_hmu(
                    s, self.keying, hmu, invite.round, "train", request, self.weights
                )
            except QkdError as exc:  # a one-time pad that is used up: refuse to send
                log.warning("round %d: no invitation for %s: %s", invite.round, hmu, exc)
        # all at once: each QoS 1 publish waits for its PUBACK, and one after another the
        # last invitee would start training a broker round trip per HMU late
        await asyncio.gather(
            *(self.bus.publish(self._tier(topics.inbox, h), d) for h, d in frames.items())
        )
        self._bytes_down += sum(map(len, frames.values()))
        again = " again (the broker was away)" if invite.again else ""
        log.info("round %d: invited %s%s", invite.round, ", ".join(invite.hmus), again)
        return []

    async def _rekey(self, rekey: Rekey) -> list[Any]:
        assert self.keying is not None
        await self.keying.rekey(rekey.hmus, self.core.completed_rounds)
        log.info("key sessions started with %s", ", ".join(rekey.hmus))
        return []

    async def _aggregate(self, agg: Aggregate) -> list[Any]:
        if not agg.updates:
            log.warning("round %d: no update arrived before the deadline", agg.round)
        if self.he is not None and agg.updates:  # encrypted: a key holder decrypts the sum
            pending = await asyncio.to_thread(self.he.start, agg, time.monotonic())
            return await self._ask_decryption(pending)
        closed = await asyncio.to_thread(
            close_round, self.aggregator, self.weights, agg, self._evaluate, self.history,
            self.setup.federation.server_lr,
        )  # fmt: skip
        return await self._round_closed(agg, closed)

    async def _ask_decryption(self, pending: Pending) -> list[Any]:
        hmu, agg = pending.holders[0], pending.agg
        size = sum(v.size for v in self.weights.values())
        request = DecryptRequest(model_version=agg.version, size=size, tensors=[])
        parts = {f"ckks.{i}": part for i, part in enumerate(pending.parts)}
        try:
            data = outbox.to_hmu(self.setup, self.keying, hmu, agg.round, "decrypt", request, parts)
        except QkdError as exc:
            log.warning("round %d: cannot ask %s to decrypt: %s", agg.round, hmu, exc)
            return await self._decryption_late(pending.deadline)
        await self.bus.publish(self._tier(topics.inbox, hmu), data)
        self._bytes_down += len(data)
        log.info("round %d: asked %s to decrypt the aggregate", agg.round, hmu)
        return []

    async def _decryption_late(self, now: float) -> list[Any]:
        assert self.he is not None and self.he.pending is not None
        round_ = self.he.pending.agg.round
        pending = self.he.expired(now)
        if pending is None:
            reason = f"round {round_}: no HMU of the round decrypted its aggregate"
            return [Finish(completed=False, reason=reason)]
        return await self._ask_decryption(pending)

    async def _round_closed(self, agg: Aggregate, closed: ClosedRound) -> list[Any]:
        """The round's new model: broadcast, record, checkpoint, report; then the next round."""
        s = self.setup
        previous = self.weights
        self.weights = closed.weights
        # the broadcast says the round closed; the weights go only to the next invitees
        env = new_envelope(s.run_id, agg.round, s.aggregator_id, BROADCAST, "global", **stamp())
        message = GlobalModel(version=agg.version + 1, accuracy=closed.evaluation.accuracy)
        data = encode_frame(env, message)
        await self.bus.publish(self._tier(topics.global_model), data, retain=True)
        self._bytes_down += len(data)
        record = round_record(
            agg,
            closed,
            duration_s=time.monotonic() - self._round_started,
            bytes_up=self._bytes_up,
            bytes_down=self._bytes_down,
        )
        record["elapsed_s"] = round(time.monotonic() - self._run_started, 3)
        record["transfer_s"] = {h: self.transfer_s[h] for h in sorted(agg.updates)}
        self.records.append(record)
        self.history.add(agg.version + 1, closed.weights)
        if s.privacy_audit:
            seen = (
                {h: w for h, (w, _) in agg.updates.items()} if self.he is None
                else {audit.AGGREGATE: closed.weights}
            )  # fmt: skip
            await asyncio.to_thread(audit.write_round, s.run_dir, agg.round, previous, seen)
        await asyncio.to_thread(write_checkpoint, s.run_dir, self._checkpoint())
        self._emit(measurements.fl_round_from_record(record))
        for point in training_points(agg, closed, previous):
            self._emit(point)
        if s.on_round is not None:
            s.on_round(record)
        return self.core.handle(RoundDone(agg.round), time.monotonic())

    # -- helpers ----------------------------------------------------------------------

    def _evaluate(self, weights: Weights) -> Evaluation:
        """The model on the test rows, at the threshold the validation rows choose."""
        s = self.setup
        cut = best_threshold(weights, *s.validation, s.hidden) if s.validation else 0.5
        return evaluate(weights, s.x_test, s.y_test, s.hidden, threshold=cut)
