"""The FL server agent: drives ``RoundCoordinator`` over MQTT and does the heavy work off-loop.

Aggregation and evaluation run in a worker thread so the network loop keeps
answering; every round's state is checkpointed to the run directory before the next
round opens, so a crash loses at most the round in flight.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fedlearn.aggregate import fedavg
from fedlearn.config import FederationConfig
from fedlearn.evaluate import Evaluation, evaluate
from fedlearn.model import Weights, check_weights
from iomt_testbed.errors import DecodeError, PeerError, ProtocolViolation, RunError
from server_agent.coordinator import Aggregate, Finish, Invite, Phase, RoundCoordinator
from wire import topics
from wire.bus import Bus, Delivery
from wire.envelope import BROADCAST, new_envelope
from wire.frame import decode_frame, encode_frame
from wire.messages import GlobalModel, ModelUpdate, RunComplete, Status, TrainRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerSetup:
    """Everything the server needs for one run."""

    run_id: str
    hmus: list[str]
    federation: FederationConfig
    hidden: tuple[int, ...]
    initial_weights: Weights
    x_test: np.ndarray
    y_test: np.ndarray
    seed: int
    run_dir: Path
    client_kwargs: dict[str, Any]
    on_round: Callable[[dict[str, Any]], None] | None = None


@dataclass
class ServerOutcome:
    """What a finished run produced."""

    completed: bool
    reason: str
    rounds: list[dict[str, Any]]
    final: dict[str, Any]
    weights: Weights
    rejected: dict[str, int] = field(default_factory=dict)


@dataclass
class _RoundBytes:
    up: int = 0
    down: int = 0


class ServerAgent:
    """One FL server connected to the broker."""

    def __init__(self, setup: ServerSetup) -> None:
        self.setup = setup
        self.weights = setup.initial_weights
        self.records: list[dict[str, Any]] = []
        self.rejected: Counter[str] = Counter()
        self._bytes = _RoundBytes()
        self._round_started = 0.0
        self._selected: dict[int, tuple[str, ...]] = {}

    async def run(self) -> ServerOutcome:
        s = self.setup
        fed = s.federation
        core = RoundCoordinator(
            s.hmus,
            clients_per_round=fed.clients_per_round,
            rounds=fed.rounds,
            round_deadline_s=fed.round_deadline_s,
            online_timeout_s=fed.online_timeout_s,
            rng=np.random.default_rng([s.seed, 0x5E]),
            now=time.monotonic(),
        )
        self.core = core
        status_topic = topics.status(s.run_id, topics.SERVER_ID)
        async with Bus(s.client_kwargs, will=(status_topic, self._status("offline"))) as bus:
            self.bus = bus
            await bus.subscribe(topics.status_filter(s.run_id), topics.update_filter(s.run_id))
            await bus.publish(status_topic, self._status("online"), retain=True)
            finish = await self._loop(bus, core)
            await bus.publish(topics.global_model(s.run_id), self._frame_complete(finish.reason))
            await bus.publish(status_topic, self._status("offline"), retain=True)
        if not self.records and not finish.completed:
            raise RunError(f"run {s.run_id} did not start: {finish.reason}")
        final = await asyncio.to_thread(self._evaluate, self.weights)
        return ServerOutcome(
            completed=finish.completed,
            reason=finish.reason,
            rounds=self.records,
            final=final.as_dict(),
            weights=self.weights,
            rejected=dict(self.rejected),
        )

    async def _loop(self, bus: Bus, core: RoundCoordinator) -> Finish:
        actions: list[Any] = []
        while True:
            while actions:
                action = actions.pop(0)
                if isinstance(action, Finish):
                    return action
                actions.extend(await self._perform(action))
            wake = core.next_wakeup()
            timeout = None if wake is None else max(0.0, wake - time.monotonic())
            delivery = await bus.receive(timeout=timeout)
            now = time.monotonic()
            if delivery is None:
                actions = core.tick(now)
                continue
            try:
                actions = self._on_delivery(delivery, core, now)
            except PeerError as exc:
                self.rejected[type(exc).__name__] += 1
                log.warning("server: rejected message on %s: %s", delivery.topic, exc)

    def _on_delivery(self, delivery: Delivery, core: RoundCoordinator, now: float) -> list[Any]:
        s = self.setup
        agent = topics.agent_of(delivery.topic, s.run_id)
        frame = decode_frame(delivery.payload)
        env = frame.envelope
        if agent is None or env.sender != agent or env.run_id != s.run_id:
            raise ProtocolViolation(f"{env.sender!r} wrote on {delivery.topic}")
        if isinstance(frame.message, Status):
            if agent == topics.SERVER_ID or frame.message.role != "hmu":
                return []
            return core.hmu_status(agent, frame.message.state == "online", now)
        if isinstance(frame.message, ModelUpdate):
            self._bytes.up += frame.size
            try:
                check_weights(frame.tensors, self.setup.initial_weights)
            except ValueError as exc:
                raise DecodeError(f"update from {agent} does not fit the model: {exc}") from None
            if not all(np.isfinite(t).all() for t in frame.tensors.values()):
                raise DecodeError(f"update from {agent} holds NaN or infinite weights")
            payload = (frame.tensors, frame.message)
            return core.update_arrived(agent, env.round, payload, now)
        raise ProtocolViolation(f"unexpected {frame.message.type!r} message on {delivery.topic}")

    async def _perform(self, action: Any) -> list[Any]:
        if isinstance(action, Invite):
            await self._invite(action)
            return []
        if isinstance(action, Aggregate):
            await self._aggregate(action)
            return self.core.round_done(action.round, time.monotonic())
        raise AssertionError(f"unknown action {action!r}")

    async def _invite(self, invite: Invite) -> None:
        s = self.setup
        self._bytes = _RoundBytes()
        self._round_started = time.monotonic()
        self._selected[invite.round] = invite.hmus
        request = TrainRequest(deadline_s=invite.deadline_s, tensors=[])
        for hmu in invite.hmus:
            env = new_envelope(s.run_id, invite.round, topics.SERVER_ID, hmu, "train")
            data = encode_frame(env, request, self.weights)
            await self.bus.publish(topics.inbox(s.run_id, hmu), data)
            self._bytes.down += len(data)
        log.info("round %d: invited %s", invite.round, ", ".join(invite.hmus))

    async def _aggregate(self, agg: Aggregate) -> None:
        s = self.setup
        received = sorted(agg.updates)
        if received:
            pairs = [(agg.updates[h][0], agg.updates[h][1].num_samples) for h in received]
            self.weights = await asyncio.to_thread(fedavg, pairs)
        else:
            log.warning("round %d: no update arrived before the deadline", agg.round)
        evaluation = await asyncio.to_thread(self._evaluate, self.weights)
        env = new_envelope(s.run_id, agg.round, topics.SERVER_ID, BROADCAST, "global")
        data = encode_frame(env, GlobalModel(accuracy=evaluation.accuracy, tensors=[]), self.weights)
        await self.bus.publish(topics.global_model(s.run_id), data, retain=True)
        self._bytes.down += len(data)
        record = {
            "round": agg.round,
            "selected": list(agg.selected),
            "received": received,
            "timed_out": agg.timed_out,
            "accuracy": evaluation.accuracy,
            "precision": evaluation.precision,
            "recall": evaluation.recall,
            "f1": evaluation.f1,
            "loss": evaluation.loss,
            "duration_s": round(time.monotonic() - self._round_started, 4),
            "bytes_up": self._bytes.up,
            "bytes_down": self._bytes.down,
        }
        self.records.append(record)
        await asyncio.to_thread(self._checkpoint, record)
        if s.on_round is not None:
            s.on_round(record)

    def _evaluate(self, weights: Weights) -> Evaluation:
        s = self.setup
        return evaluate(weights, s.x_test, s.y_test, s.hidden)

    def _checkpoint(self, record: dict[str, Any]) -> None:
        """Atomically save the global model and the round log (a crash loses nothing done)."""
        run_dir = self.setup.run_dir
        ckpt = run_dir / "checkpoints"
        ckpt.mkdir(parents=True, exist_ok=True)
        tmp = ckpt / "global.npz.tmp"
        with tmp.open("wb") as fh:
            np.savez(fh, **self.weights)
        os.replace(tmp, ckpt / "global.npz")
        state = {"run_id": self.setup.run_id, "round": record["round"], "rounds": self.records}
        tmp_state = ckpt / "state.json.tmp"
        tmp_state.write_text(json.dumps(state, indent=1))
        os.replace(tmp_state, ckpt / "state.json")

    def _status(self, state: str) -> bytes:
        env = new_envelope(self.setup.run_id, 0, topics.SERVER_ID, BROADCAST, "status")
        return encode_frame(env, Status(role="server", state=state))  # type: ignore[arg-type]

    def _frame_complete(self, reason: str) -> bytes:
        rnd = self.core.completed_rounds if self.core.phase is Phase.FINISHED else 0
        env = new_envelope(self.setup.run_id, rnd, topics.SERVER_ID, BROADCAST, "complete")
        return encode_frame(env, RunComplete(reason=reason[:200]))
