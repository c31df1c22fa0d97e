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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iomt.errors import (
    AuthenticationError,
    DecodeError,
    PeerError,
    ProtocolViolation,
    QkdError,
    RunError,
)
from iomt.fedlearn.accountant import privacy_report
from iomt.fedlearn.attacks import assign_attacks
from iomt.fedlearn.compression import decompress
from iomt.fedlearn.config import FederationConfig
from iomt.fedlearn.defence_config import AttackConfig, DefenceConfig, PrivacyConfig
from iomt.fedlearn.evaluate import Evaluation, evaluate
from iomt.fedlearn.model import Weights, check_weights
from iomt.fedlearn.resilience import detection_rates
from iomt.fedlearn.strategy import build_aggregator
from iomt.fedlearn.updates import parameter_count
from iomt.monitoring import measurements
from iomt.monitoring.broker_stats import SYS_FILTER, BrokerStats
from iomt.monitoring.forwarder import MetricsForwarder
from iomt.monitoring.point import Point
from iomt.qkd_channel.config import QkdConfig
from iomt.server_agent.coordinator import Aggregate, Finish, Invite, Phase, Rekey, RoundCoordinator
from iomt.server_agent.keying import ServerKeying
from iomt.wire import topics
from iomt.wire.aead import ReplayError
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
    qkd: QkdConfig | None = None
    secrets: dict[str, bytes] = field(default_factory=dict)
    """Enrolment secret of each HMU; authenticates QKD post-processing."""
    revoke: Callable[[str], Awaitable[bool]] | None = None
    """Withdraw an HMU's right to publish updates at the broker."""
    emit: Callable[[Point], None] | None = None
    """Where metrics go (a ``MetricsSink.emit``); None: nowhere."""
    forwarder: MetricsForwarder | None = None
    """Accepts HMUs' metrics published over MQTT (field HMUs without InfluxDB)."""
    defence: DefenceConfig = DefenceConfig()
    attacks: AttackConfig = AttackConfig()
    """The scenario's injected attacks: ground truth for the detection rates only."""
    privacy: PrivacyConfig = PrivacyConfig()


@dataclass
class ServerOutcome:
    """What a finished run produced."""

    completed: bool
    reason: str
    rounds: list[dict[str, Any]]
    final: dict[str, Any]
    weights: Weights
    rejected: dict[str, int] = field(default_factory=dict)
    qkd: dict[str, dict[str, Any]] = field(default_factory=dict)
    isolated: list[str] = field(default_factory=list)
    keying_seconds: list[float] = field(default_factory=list)
    poisoning: dict[str, Any] = field(default_factory=dict)
    privacy: dict[str, dict[str, Any]] = field(default_factory=dict)
    mitm: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Filled by the launcher: what a man-in-the-middle on an HMU's path saw and did."""


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
        self.qkd = setup.qkd if setup.qkd is not None and setup.qkd.enabled else None
        missing = [h for h in setup.hmus if self.qkd is not None and not setup.secrets.get(h)]
        if missing:
            raise QkdError(f"QKD needs an enrolment secret for {', '.join(missing)}")
        self.isolated: list[str] = []
        self.keying: ServerKeying | None = None
        self._emit = setup.emit or (lambda point: None)
        self._broker_stats = BrokerStats()
        self.aggregator = build_aggregator(setup.defence)
        self._broker_stats_at = 0.0

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
            keys_required=self.qkd is not None,
            rekey_rounds=self.qkd.rekey_rounds if self.qkd is not None else 0,
            key_deadline_s=fed.round_deadline_s,
        )
        self.core = core
        status_topic = topics.status(s.run_id, topics.SERVER_ID)
        async with Bus(s.client_kwargs, will=(status_topic, self._status("offline"))) as bus:
            self.bus = bus
            if self.qkd is not None:
                rng = np.random.default_rng([s.seed, 0xB0B])
                self.keying = ServerKeying(self.qkd, s.secrets, s.run_id, rng, bus.publish)
            await bus.subscribe(topics.status_filter(s.run_id), topics.update_filter(s.run_id))
            if s.emit is not None:
                await bus.subscribe(SYS_FILTER, qos=0)
            if s.forwarder is not None:
                await bus.subscribe(topics.metrics_filter(s.run_id))
            if self.qkd is not None:
                for hmu in s.hmus:
                    await bus.subscribe(
                        topics.quantum(s.run_id, hmu, "rx"), topics.classical(s.run_id, hmu, "hmu")
                    )
            await bus.publish(status_topic, self._status("online"), retain=True)
            finish = await self._loop(bus, core)
            await bus.publish(topics.global_model(s.run_id), self._frame_complete(finish.reason))
            await self._linger(bus, core)
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
            qkd=self.keying.report if self.keying else {},
            isolated=self.isolated,
            keying_seconds=self.keying.keying_seconds if self.keying else [],
            poisoning=self._poisoning(),
            privacy=self._privacy(),
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
                actions = await self._on_delivery(delivery, core, now)
            except PeerError as exc:
                self.rejected[type(exc).__name__] += 1
                log.warning("server: rejected message on %s: %s", delivery.topic, exc)
                sender = topics.agent_of(delivery.topic, self.setup.run_id)
                link = topics.qkd_link_of(delivery.topic, self.setup.run_id)
                self._emit(
                    measurements.security_event(
                        _event_kind(exc),
                        hmu=sender or (link[0] if link else None),
                        round=core.current.number if core.current else None,
                    )
                )

    async def _linger(self, bus: Bus, core: RoundCoordinator, limit_s: float = 3.0) -> None:
        """After the run: take the HMUs' last metrics until they have all gone offline."""
        if self.setup.forwarder is None:
            return
        until = time.monotonic() + limit_s
        while any(core.online.values()) and (left := until - time.monotonic()) > 0:
            delivery = await bus.receive(timeout=left)
            if delivery is None:
                return
            try:
                # the coordinator is finished: statuses only mark HMUs offline, updates are refused
                await self._on_delivery(delivery, core, time.monotonic())
            except PeerError as exc:
                log.debug("after the run: ignored %s: %s", delivery.topic, exc)

    async def _on_delivery(
        self, delivery: Delivery, core: RoundCoordinator, now: float
    ) -> list[Any]:
        s = self.setup
        if delivery.topic.startswith("$SYS/"):
            self._observe_broker(delivery, now)
            return []
        if s.forwarder is not None and delivery.topic.startswith(
            f"{topics.run_prefix(s.run_id)}/metrics/"
        ):
            s.forwarder.handle(delivery.topic, delivery.payload)
            return []
        link = topics.qkd_link_of(delivery.topic, s.run_id)
        if link is not None and self.keying is not None:
            return await self._on_key_traffic(*link, delivery.payload, core)
        agent = topics.agent_of(delivery.topic, s.run_id)
        frame = decode_frame(delivery.payload, open_=self.keying.open if self.keying else None)
        env = frame.envelope
        if agent is None or env.sender != agent or env.run_id != s.run_id:
            raise ProtocolViolation(f"{env.sender!r} wrote on {delivery.topic}")
        if isinstance(frame.message, Status):
            if agent == topics.SERVER_ID or frame.message.role != "hmu":
                return []
            return core.hmu_status(agent, frame.message.state == "online", now)
        if isinstance(frame.message, ModelUpdate):
            if self.qkd is not None and env.cipher == "none":
                raise ProtocolViolation(f"plaintext update from {agent} refused: QKD is on")
            self._bytes.up += frame.size
            weights = self._weights_of(agent, frame.message, frame.tensors)
            payload = (weights, frame.message)
            return core.update_arrived(agent, env.round, payload, now)
        raise ProtocolViolation(f"unexpected {frame.message.type!r} message on {delivery.topic}")

    async def _perform(self, action: Any) -> list[Any]:
        if isinstance(action, Invite):
            await self._invite(action)
            return []
        if isinstance(action, Rekey):
            assert self.keying is not None
            await self.keying.rekey(action.hmus, self.core.completed_rounds)
            log.info("key sessions started with %s", ", ".join(action.hmus))
            return []
        if isinstance(action, Aggregate):
            await self._aggregate(action)
            return self.core.round_done(action.round, time.monotonic())
        raise AssertionError(f"unknown action {action!r}")

    async def _invite(self, invite: Invite) -> None:
        s = self.setup
        self._bytes = _RoundBytes()
        self._round_started = time.monotonic()
        request = TrainRequest(deadline_s=invite.deadline_s, tensors=[])
        for hmu in invite.hmus:
            link = self.keying.links.get(hmu) if self.keying else None
            env = new_envelope(
                s.run_id,
                invite.round,
                topics.SERVER_ID,
                hmu,
                "train",
                cipher=link.cipher if link else "none",
                key_id=link.key_id if link else "",
            )
            try:
                data = encode_frame(env, request, self.weights, seal=link.seal if link else None)
            except QkdError as exc:  # a one-time pad that is used up: refuse to send
                log.warning("round %d: no invitation for %s: %s", invite.round, hmu, exc)
                continue
            await self.bus.publish(topics.inbox(s.run_id, hmu), data)
            self._bytes.down += len(data)
        log.info("round %d: invited %s", invite.round, ", ".join(invite.hmus))

    async def _aggregate(self, agg: Aggregate) -> None:
        s = self.setup
        received = sorted(agg.updates)
        previous = self.weights
        updates = {h: (agg.updates[h][0], agg.updates[h][1].num_samples) for h in received}
        if not received:
            log.warning("round %d: no update arrived before the deadline", agg.round)
        result = await asyncio.to_thread(self.aggregator.aggregate, previous, updates, agg.round)
        self.weights = result.weights
        attackers = sorted(
            set(assign_attacks(s.attacks, s.hmus, agg.round, s.seed)) & set(received)
        )
        evaluation = await asyncio.to_thread(self._evaluate, self.weights)
        env = new_envelope(s.run_id, agg.round, topics.SERVER_ID, BROADCAST, "global")
        # under QKD the weights leave the server only sealed, inside invitations
        shared = None if self.qkd is not None else self.weights
        data = encode_frame(env, GlobalModel(accuracy=evaluation.accuracy, tensors=[]), shared)
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
            "flagged": sorted(result.flagged),
            "attackers": attackers,
            "trust": result.trust,
        }
        self.records.append(record)
        await asyncio.to_thread(self._checkpoint, record)
        self._emit(measurements.fl_round_from_record(record))
        for hmu in received:
            local, message = agg.updates[hmu]
            self._emit(
                measurements.hmu_training(
                    hmu,
                    agg.round,
                    loss=message.loss,
                    samples=message.num_samples,
                    train_s=message.train_seconds,
                    update_norm=_distance(local, previous),
                    trust=result.trust.get(hmu),
                    flagged=hmu in result.flagged,
                )
            )
        if s.on_round is not None:
            s.on_round(record)

    # -- key distribution -------------------------------------------------------

    async def _on_key_traffic(
        self, hmu: str, leg: str, payload: bytes, core: RoundCoordinator
    ) -> list[Any]:
        """Detections or a post-processing frame; a finished session keys or isolates."""
        assert self.keying is not None
        if leg == "classical/hmu":
            outcome = await self.keying.on_key_frame(hmu, payload)
        else:
            outcome = await self.keying.on_detections(hmu, payload)
        if outcome is None:
            return []
        report = self.keying.report[hmu]
        self._emit(
            measurements.qkd_link_from_report(
                hmu, report, qber_threshold=self.keying.qkd.qber_threshold
            )
        )
        now = time.monotonic()
        if hmu in self.keying.links:
            return core.key_accepted(hmu, now)
        log.warning("isolating %s: key session aborted: %s", hmu, outcome.reason)
        self._emit(measurements.security_event("isolation", hmu=hmu))
        self.isolated.append(hmu)
        if self.setup.revoke is not None and not await self.setup.revoke(hmu):
            log.warning("the broker cannot revoke %s; its updates are ignored here", hmu)
        return core.exclude(hmu, now)

    def _weights_of(
        self, agent: str, message: ModelUpdate, tensors: dict[str, np.ndarray]
    ) -> Weights:
        """The local weights an update stands for, checked against the model."""
        if message.encoding != "dense":
            try:
                tensors = decompress(tensors, self.weights)
            except (ValueError, KeyError, IndexError) as exc:
                raise DecodeError(
                    f"{message.encoding} update from {agent} does not decode: {exc}"
                ) from None
        try:
            check_weights(tensors, self.setup.initial_weights)
        except ValueError as exc:
            raise DecodeError(f"update from {agent} does not fit the model: {exc}") from None
        if not all(np.isfinite(t).all() for t in tensors.values()):
            raise DecodeError(f"update from {agent} holds NaN or infinite weights")
        return tensors

    def _poisoning(self) -> dict[str, Any]:
        """Detection of the injected attackers over the run (flagged vs. ground truth)."""
        rates = detection_rates(
            [r["received"] for r in self.records],
            [r["attackers"] for r in self.records],
            [r["flagged"] for r in self.records],
        )
        return {"defence": self.setup.defence.aggregator, **rates.as_dict()}

    def _privacy(self) -> dict[str, dict[str, Any]]:
        """Each HMU's privacy spend: one release per update the server received."""
        releases = Counter(h for r in self.records for h in r["received"])
        d = parameter_count(self.weights)
        return {h: privacy_report(self.setup.privacy, releases[h], d) for h in self.setup.hmus}

    def _observe_broker(self, delivery: Delivery, now: float) -> None:
        """Fold a ``$SYS`` counter in; emit the broker's counters every few seconds."""
        self._broker_stats.observe(delivery.topic, delivery.payload)
        if now - self._broker_stats_at >= 5.0:
            point = self._broker_stats.point()
            if point is not None:
                self._emit(point)
                self._broker_stats_at = now

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


def _event_kind(exc: PeerError) -> str:
    """The security-event kind a refused message counts as."""
    if isinstance(exc, ReplayError):
        return "replayed"
    if isinstance(exc, AuthenticationError):
        return "tampered"
    if isinstance(exc, ProtocolViolation):
        return "unauthorised"
    return "malformed"


def _distance(local: Weights, reference: Weights) -> float:
    """L2 norm of ``local - reference`` over every tensor."""
    return float(np.sqrt(sum(float(np.sum((local[k] - reference[k]) ** 2)) for k in reference)))
