"""The fog aggregator agent: ``FogTier`` over MQTT, on its fog broker.

It connects to its own fog broker only. What it shares with the cloud (the cloud's
invitations and round broadcasts in, its partial update and status out) crosses
Mosquitto's bridge (``iomt.broker.bridge``); its HMUs' updates never leave the fog
broker. Each round the cloud invites it, it forwards the global model to a share of
its HMUs, screens and aggregates what they send with the scenario's defence
(z-score screening, trust), and sends one partial update upward whose weight is the
samples behind the updates it kept. A peer's bad message is counted, never fatal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from iomt.adversary.fog_attack import tamper
from iomt.errors import BrokerError, PeerError, ProtocolViolation
from iomt.fedlearn.defence_config import DefenceConfig, MaliciousFog
from iomt.fedlearn.model import Weights
from iomt.fedlearn.strategy import build_aggregator
from iomt.server_agent.decoding import update_weights
from iomt.server_agent.events import Aggregate, Invite
from iomt.server_agent.fog_tier import FogTier, partial_update
from iomt.wire import topics
from iomt.wire.bus import Bus, Delivery
from iomt.wire.envelope import BROADCAST, new_envelope
from iomt.wire.frame import decode_frame, encode_frame
from iomt.wire.messages import (
    GlobalModel,
    ModelUpdate,
    RunComplete,
    Status,
    TrainRequest,
)
from iomt.wire.stamp import stamp

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FogSetup:
    """What one fog aggregator is given for a run."""

    run_id: str
    fog_id: str
    members: list[str]
    share: int
    """HMUs invited per round (of those online)."""
    defence: DefenceConfig
    seed: int
    client_kwargs: dict[str, Any] = field(repr=False)
    reconnect_s: float = 0.0
    tamper: MaliciousFog | None = None
    """This fog is compromised: it tampers with its partial (``adversary/fog_attack.py``)."""


@dataclass
class FogOutcome:
    """What the fog did: its rounds (who it invited, kept, flagged) and what it refused."""

    fog_id: str
    members: list[str]
    reason: str
    rounds: list[dict[str, Any]] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)

    def as_report(self) -> dict[str, Any]:
        return {
            "hmus": self.members,
            "reason": self.reason,
            "rounds": self.rounds,
            "rejected": self.rejected,
        }


class FogAgent:
    """One fog aggregator: a member of the cloud's tier and the aggregator of its own."""

    def __init__(self, setup: FogSetup) -> None:
        self.setup = setup
        rng = np.random.default_rng([setup.seed, 0xF06, int(setup.fog_id.split("-")[-1])])
        self.tier = FogTier(setup.members, setup.share, rng)
        self.aggregator = build_aggregator(setup.defence)
        self.weights: Weights = {}
        self.outcome = FogOutcome(setup.fog_id, list(setup.members), "not started")
        self._rejected: Counter[str] = Counter()
        self._attack_rng = np.random.default_rng([setup.seed, 0xBADF06])
        self._opened = 0.0

    async def run(self) -> FogOutcome:
        s = self.setup
        status_topic = topics.status(s.run_id, s.fog_id)
        will = (status_topic, self._status("offline"))
        async with Bus(s.client_kwargs, will=will, reconnect_s=s.reconnect_s) as bus:
            self.bus = bus
            await bus.subscribe(
                topics.inbox(s.run_id, s.fog_id),  # the cloud's invitations (bridged in)
                topics.global_model(s.run_id),  # the cloud's round broadcasts (bridged in)
                topics.update_filter(s.run_id, s.fog_id),
                *(topics.status(s.run_id, m) for m in s.members),
            )
            await bus.publish(status_topic, self._status("online"), retain=True)
            try:
                self.outcome.reason = await self._loop(bus)
            except BrokerError as exc:
                self.outcome.reason = str(exc)
            else:
                await bus.publish(status_topic, self._status("offline"), retain=True)
        self.outcome.rejected = dict(self._rejected)
        return self.outcome

    async def _loop(self, bus: Bus) -> str:
        while True:
            wake = self.tier.next_wakeup()
            timeout = None if wake is None else max(0.0, wake - time.monotonic())
            delivery = await bus.receive(timeout=timeout)
            now = time.monotonic()
            if delivery is None:
                actions = self.tier.tick(now)
            else:
                try:
                    actions, reason = await self._on_delivery(delivery, now)
                except PeerError as exc:
                    self._rejected[type(exc).__name__] += 1
                    log.info("%s: refused a message on %s: %s", self.setup.fog_id,
                             delivery.topic, exc)  # fmt: skip
                    continue
                if reason is not None:
                    return reason
            for action in actions:
                await (self._invite(action) if isinstance(action, Invite) else self._send(action))

    async def _on_delivery(
        self, delivery: Delivery, now: float
    ) -> tuple[list[Invite | Aggregate], str | None]:
        s = self.setup
        frame = decode_frame(delivery.payload)
        env, message = frame.envelope, frame.message
        if env.run_id != s.run_id:
            raise ProtocolViolation(f"a message of run {env.run_id!r} on {delivery.topic}")
        if delivery.topic == topics.global_model(s.run_id):
            if env.sender != topics.SERVER_ID:
                raise ProtocolViolation(f"{env.sender!r} wrote on the cloud's global topic")
            if isinstance(message, RunComplete):
                await self._forward_complete(message)
                return [], message.reason
            if not isinstance(message, GlobalModel):
                raise ProtocolViolation(f"unexpected {message.type!r} on the cloud's global topic")
            return [], None
        if delivery.topic == topics.inbox(s.run_id, s.fog_id):
            if env.sender != topics.SERVER_ID or not isinstance(message, TrainRequest):
                raise ProtocolViolation(f"{env.sender!r} sent {message.type!r} to this fog")
            self.weights = dict(frame.tensors)  # type: ignore[arg-type]
            self._opened = now
            return self.tier.invited(
                env.round, message.model_version, message.deadline_s, now
            ), None
        agent = topics.agent_of(delivery.topic, s.run_id)
        if agent is None or env.sender != agent:
            raise ProtocolViolation(f"{env.sender!r} wrote on {delivery.topic}")
        if isinstance(message, Status):
            return self.tier.status(agent, message.state == "online", now), None
        if isinstance(message, ModelUpdate):
            local = update_weights(agent, message, frame.tensors, self.weights)
            payload = (local, message)
            return self.tier.update(agent, env.round, message.base_version, payload, now), None
        raise ProtocolViolation(f"unexpected {message.type!r} message on {delivery.topic}")

    async def _invite(self, invite: Invite) -> None:
        s = self.setup
        request = TrainRequest(
            deadline_s=invite.deadline_s, model_version=invite.version, tensors=[]
        )
        frames = {
            hmu: encode_frame(
                new_envelope(s.run_id, invite.round, s.fog_id, hmu, "train", **stamp()),
                request,
                self.weights,
            )
            for hmu in invite.hmus
        }
        await asyncio.gather(
            *(self.bus.publish(topics.inbox(s.run_id, h, s.fog_id), d) for h, d in frames.items())
        )
        log.info("%s: round %d: invited %s", s.fog_id, invite.round, ", ".join(invite.hmus))

    async def _send(self, agg: Aggregate) -> None:
        """The round's partial update to the cloud; nothing when no update was kept."""
        s = self.setup
        partial = await asyncio.to_thread(partial_update, self.aggregator, self.weights, agg)
        result, weights = partial.result, partial.weights
        attack = s.tamper
        tampered = attack is not None and agg.round >= attack.start_round and partial.samples > 0
        if tampered:
            assert attack is not None
            weights = tamper(weights, self.weights, attack, self._attack_rng)
        self.outcome.rounds.append({
            "round": agg.round,
            "selected": list(agg.selected),
            "received": sorted(agg.updates),
            "flagged": sorted(result.flagged),
            "trust": result.trust,
            "timed_out": agg.timed_out,
            "samples": partial.samples,
            **({"tampered": attack.action} if tampered and attack else {}),
        })  # fmt: skip
        if partial.samples == 0:
            again = self.tier.retry(time.monotonic())
            log.warning("%s: round %d: no update kept; %s", s.fog_id, agg.round,
                        "asking other HMUs" if again else "no partial sent")  # fmt: skip
            for invite in again:
                await self._invite(invite)  # type: ignore[arg-type]
            return
        message = ModelUpdate(
            num_samples=partial.samples,
            loss=partial.loss,
            train_seconds=round(time.monotonic() - self._opened, 4),
            base_version=agg.version,
            tensors=[],
        )
        env = new_envelope(s.run_id, agg.round, s.fog_id, topics.SERVER_ID, "update", **stamp())
        data = encode_frame(env, message, weights)
        await self.bus.publish(topics.update(s.run_id, s.fog_id), data)

    async def _forward_complete(self, message: RunComplete) -> None:
        """The cloud's run-complete, passed on to the fog's HMUs so that they leave."""
        s = self.setup
        env = new_envelope(s.run_id, 0, s.fog_id, BROADCAST, "complete", **stamp())
        await self.bus.publish(topics.global_model(s.run_id, s.fog_id), encode_frame(env, message))

    def _status(self, state: str) -> bytes:
        s = self.setup
        env = new_envelope(s.run_id, 0, s.fog_id, BROADCAST, "status", **stamp())
        return encode_frame(env, Status(role="fog", state=state))  # type: ignore[arg-type]
