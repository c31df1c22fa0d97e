"""The HMU agent: drives ``HmuSession`` over MQTT and trains in a worker, never in the loop.

Training is handed to an executor (a thread or process pool shared by the HMUs of one
launcher, or a single worker thread in a standalone ``iomt hmu``) so the agent keeps
answering while it trains.  A bad message from anyone is counted and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import Counter
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

from iomt.errors import PeerError, ProtocolViolation, QkdError
from iomt.fedlearn.attacks import assign_attacks
from iomt.fedlearn.compression import Compressor
from iomt.fedlearn.config import TrainingConfig
from iomt.fedlearn.defence_config import AttackConfig, CompressionConfig, PrivacyConfig
from iomt.fedlearn.model import Weights
from iomt.fedlearn.train import OptimiserState
from iomt.hmu_agent.local_update import LocalUpdate, local_update
from iomt.hmu_agent.session import HmuSession, SendUpdate, StartTraining, Stop
from iomt.monitoring import measurements
from iomt.monitoring.publisher import MqttMetricsPublisher
from iomt.monitoring.sink import MetricsSink
from iomt.qkd_channel.alice import AliceSession
from iomt.qkd_channel.channel import prepare
from iomt.qkd_channel.config import QkdConfig
from iomt.qkd_channel.transport import pack_states
from iomt.wire import topics
from iomt.wire.bus import Bus, Delivery
from iomt.wire.envelope import BROADCAST, Envelope, new_envelope
from iomt.wire.frame import Frame, decode_frame, encode_frame
from iomt.wire.link_cipher import LinkCipher
from iomt.wire.messages import (
    GlobalModel,
    KeyRequest,
    ModelUpdate,
    QubitBatch,
    RunComplete,
    Status,
    TrainRequest,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HmuSetup:
    """Everything one HMU needs: who it is, its local data and how to train."""

    run_id: str
    hmu_id: str
    x: np.ndarray
    y: np.ndarray
    training: TrainingConfig
    seed: int
    client_kwargs: dict[str, Any]
    qkd: QkdConfig | None = None
    secret: bytes | None = None
    """Enrolment secret shared with the server; authenticates QKD post-processing."""
    hmus: tuple[str, ...] = ()
    """Every HMU of the run: attack schedules pick their attackers among them."""
    attacks: AttackConfig = AttackConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    compression: CompressionConfig = CompressionConfig()
    metrics: MetricsSink | None = None
    """Where this HMU's own metrics go; None when the server records them for it."""
    publisher: MqttMetricsPublisher | None = None
    """Set when the HMU's metrics travel over MQTT to the server (field HMUs)."""


@dataclass
class HmuOutcome:
    hmu_id: str
    rounds_trained: int
    reason: str
    rejected: dict[str, int]
    key_sessions: int = 0


def round_seed(seed: int, hmu_id: str, round_: int) -> int:
    """A training seed unique to (scenario seed, HMU, round), stable across processes."""
    digits = int("".join(c for c in hmu_id if c.isdigit()) or "0")
    return int(np.random.SeedSequence([seed, digits, round_]).generate_state(1)[0])


class HmuAgent:
    """One hospital management unit connected to the broker."""

    def __init__(self, setup: HmuSetup, executor: Executor | None = None) -> None:
        self.setup = setup
        self.executor = executor
        self.session = HmuSession(setup.hmu_id, topics.SERVER_ID)
        self.rejected: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self.qkd = setup.qkd if setup.qkd is not None and setup.qkd.enabled else None
        if self.qkd is not None and not setup.secret:
            raise QkdError(f"{setup.hmu_id}: QKD needs an enrolment secret")
        self.alice: AliceSession | None = None
        self.link: LinkCipher | None = None
        self.key_sessions = 0
        self.compressor = Compressor(setup.compression)
        self.optimiser_state: OptimiserState | None = None  # kept from round to round

    async def run(self) -> HmuOutcome:
        s = self.setup
        status_topic = topics.status(s.run_id, s.hmu_id)
        async with Bus(s.client_kwargs, will=(status_topic, self._status("offline"))) as bus:
            self.bus = bus
            await bus.subscribe(topics.inbox(s.run_id, s.hmu_id), topics.global_model(s.run_id))
            if self.qkd is not None:
                await bus.subscribe(topics.classical(s.run_id, s.hmu_id, "server"))
            await bus.publish(status_topic, self._status("online"), retain=True)
            pump = None
            if s.publisher is not None:
                pump = asyncio.create_task(s.publisher.pump(bus.publish))
            reason = await self._loop(bus)
            for task in list(self._tasks):
                task.cancel()
            if s.metrics is not None:
                await s.metrics.aflush()
            if pump is not None:
                pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump
                await s.publisher.drain(bus.publish)  # type: ignore[union-attr]
            await bus.publish(status_topic, self._status("offline"), retain=True)
        return HmuOutcome(
            s.hmu_id, self.session.rounds_trained, reason, dict(self.rejected), self.key_sessions
        )

    async def _loop(self, bus: Bus) -> str:
        while True:
            delivery = await bus.receive()
            assert delivery is not None
            try:
                if delivery.topic == topics.classical(
                    self.setup.run_id, self.setup.hmu_id, "server"
                ):
                    await self._on_key_frame(bus, delivery.payload)
                    continue
                for action in await self._on_delivery(delivery):
                    if isinstance(action, Stop):
                        return action.reason
            except PeerError as exc:
                self.rejected[type(exc).__name__] += 1
                log.warning(
                    "%s: rejected message on %s: %s", self.setup.hmu_id, delivery.topic, exc
                )

    async def _on_delivery(self, delivery: Delivery) -> list[Any]:
        s = self.setup
        frame = decode_frame(delivery.payload, open_=self._open)
        env = frame.envelope
        if env.run_id != s.run_id or env.recipient not in (s.hmu_id, BROADCAST):
            raise ProtocolViolation(f"message for {env.recipient!r} in run {env.run_id!r}")
        message = frame.message
        if isinstance(message, KeyRequest):
            await self._start_key_session(env, message)
            return []
        if isinstance(message, TrainRequest):
            if delivery.topic != topics.inbox(s.run_id, s.hmu_id):
                raise ProtocolViolation(f"train request on {delivery.topic}")
            if self.qkd is not None and env.cipher == "none":
                raise ProtocolViolation(
                    "plaintext train request refused: this link needs a QKD key"
                )
            actions = self.session.train_request(env.sender, env.round)
            for action in actions:
                if isinstance(action, StartTraining):
                    self._start_training(action.round, frame)
            return []
        if isinstance(message, RunComplete):
            return self.session.run_complete(env.sender, message.reason)
        if isinstance(message, GlobalModel):
            return []  # the aggregated model after each round; nothing to do with it here
        raise ProtocolViolation(f"unexpected {message.type!r} message on {delivery.topic}")

    # -- key distribution -------------------------------------------------------

    def _open(self, envelope: Envelope, sealed: bytes, associated_data: bytes) -> bytes:
        if self.link is None:
            raise ProtocolViolation(f"sealed {envelope.type!r} frame but no key is accepted yet")
        return self.link.open(envelope, sealed, associated_data)

    async def _start_key_session(self, env: Envelope, request: KeyRequest) -> None:
        """Prepare B92 states for a fresh session and send them into the quantum channel."""
        s = self.setup
        if self.qkd is None or env.sender != topics.SERVER_ID:
            raise ProtocolViolation(f"key request from {env.sender!r} on a link without QKD")
        self.key_sessions += 1
        rng = np.random.default_rng([s.seed, round_seed(s.seed, s.hmu_id, 0), self.key_sessions])
        bits = prepare(request.qubits, rng)
        assert s.secret is not None
        self.alice = AliceSession(self.qkd, s.secret, request.session_id, bits, rng)
        batch = QubitBatch(session_id=request.session_id, qubits=request.qubits, tensors=[])
        out = new_envelope(s.run_id, env.round, s.hmu_id, topics.CHANNEL_ID, "qubits")
        await self.bus.publish(
            topics.quantum(s.run_id, s.hmu_id, "tx"), encode_frame(out, batch, pack_states(bits))
        )

    async def _on_key_frame(self, bus: Bus, payload: bytes) -> None:
        """One authenticated post-processing frame from the server's side of the session."""
        alice = self.alice
        if alice is None or alice.finished:
            raise ProtocolViolation("post-processing frame outside a key session")
        replies = await asyncio.to_thread(alice.receive, payload)
        for reply in replies:
            await bus.publish(topics.classical(self.setup.run_id, self.setup.hmu_id, "hmu"), reply)
        outcome = alice.outcome
        if outcome is None:
            return
        if outcome.aborted or outcome.key is None:
            self.link = None
            log.warning("%s: key session aborted: %s", self.setup.hmu_id, outcome.reason)
        else:
            assert self.qkd is not None
            self.link = LinkCipher(outcome.key, outcome.session_id, "hmu", self.qkd.cipher)
            log.info("%s: key accepted (%d bits)", self.setup.hmu_id, 8 * len(outcome.key))

    # -- training -------------------------------------------------------------------

    def _start_training(self, round_: int, frame: Frame) -> None:
        task = asyncio.create_task(self._train(round_, frame.tensors))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _train(self, round_: int, weights: Weights) -> None:
        s = self.setup
        loop = asyncio.get_running_loop()
        seed = round_seed(s.seed, s.hmu_id, round_)
        attack = assign_attacks(s.attacks, s.hmus, round_, s.seed).get(s.hmu_id)
        work = functools.partial(
            local_update,
            weights,
            s.x,
            s.y,
            s.training,
            seed,
            attack=attack,
            privacy=s.privacy,
            compression=s.compression,
            compressor=self.compressor,
            optimiser_state=self.optimiser_state,
        )
        try:
            update: LocalUpdate = await loop.run_in_executor(self.executor, work)
        except (ValueError, KeyError, RuntimeError) as exc:
            # weights that do not fit our model are the sender's fault
            self.rejected["DecodeError"] += 1
            log.warning("%s: cannot train from round %d weights: %s", s.hmu_id, round_, exc)
            self.session.training_done(round_)
            return
        if update.compressor is not None:
            self.compressor = update.compressor  # the worker may have been another process
        result = update.result
        self.optimiser_state = result.optimiser_state
        if s.metrics is not None:
            s.metrics.emit(
                measurements.hmu_training(
                    s.hmu_id,
                    round_,
                    loss=float(result.loss),
                    samples=result.num_samples,
                    train_s=float(result.seconds),
                )
            )
        for action in self.session.training_done(round_):
            if isinstance(action, SendUpdate):
                await self._send_update(action.round, update)

    async def _send_update(self, round_: int, update: LocalUpdate) -> None:
        s = self.setup
        link = self.link
        if self.qkd is not None and link is None:
            log.warning("%s: no key; round %d update not sent", s.hmu_id, round_)
            return
        env = new_envelope(
            s.run_id,
            round_,
            s.hmu_id,
            topics.SERVER_ID,
            "update",
            cipher=link.cipher if link else "none",
            key_id=link.key_id if link else "",
        )
        result = update.result
        message = ModelUpdate(
            num_samples=result.num_samples,
            loss=float(result.loss),
            train_seconds=float(result.seconds),
            encoding=update.encoding,  # type: ignore[arg-type]
            tensors=[],
        )
        try:
            data = encode_frame(env, message, update.tensors, seal=link.seal if link else None)
        except QkdError as exc:  # a one-time pad that is used up: refuse to send
            log.warning("%s: round %d update not sent: %s", s.hmu_id, round_, exc)
            self.rejected["OtpExhausted"] += 1
            return
        await self.bus.publish(topics.update(s.run_id, s.hmu_id), data)

    def _status(self, state: str) -> bytes:
        s = self.setup
        env = new_envelope(s.run_id, 0, s.hmu_id, BROADCAST, "status")
        return encode_frame(env, Status(role="hmu", state=state, samples=len(s.y)))  # type: ignore[arg-type]
