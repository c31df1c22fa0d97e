"""The HMU agent: drives ``HmuSession`` over MQTT and trains in a worker, never in the loop.

Training is handed to an executor (a process pool shared by the HMUs of one launcher,
or a single worker thread in a standalone ``iomt hmu``) so the agent keeps answering
while it trains.  After training the update runs through the scenario's pipeline
(``iomt.fedlearn.pipeline``) and is sealed with the QKD link cipher
(``iomt.hmu_agent.keying``).  A bad message from anyone is counted and dropped.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine
from concurrent.futures import BrokenExecutor, Executor
from typing import Any

import numpy as np

from iomt.adversary.flood import FloodReport, flood
from iomt.errors import EnvironmentProblem, PeerError, ProtocolViolation, QkdError
from iomt.fedlearn import ckks
from iomt.hmu_agent.carry import Carried, CarriedStates
from iomt.hmu_agent.keying import HmuKeying
from iomt.hmu_agent.link_profile import RoundProfile
from iomt.hmu_agent.local_update import LocalUpdate, local_update
from iomt.hmu_agent.session import HmuSession, ResendUpdate, SendUpdate, StartTraining, Stop
from iomt.hmu_agent.setup import HmuOutcome, HmuSetup, round_seed
from iomt.monitoring import measurements
from iomt.refusals import RefusalLog
from iomt.wire import topics
from iomt.wire.bus import Bus, Delivery
from iomt.wire.envelope import BROADCAST, Envelope, new_envelope
from iomt.wire.frame import Frame, decode_frame, encode_frame
from iomt.wire.messages import (
    DecryptedAggregate,
    DecryptRequest,
    GlobalModel,
    KeyRequest,
    ModelUpdate,
    RunComplete,
    Status,
    TrainRequest,
)
from iomt.wire.stamp import stamp

log = logging.getLogger(__name__)


class HmuAgent:
    """One hospital management unit connected to the broker."""

    def __init__(self, setup: HmuSetup, executor: Executor | None = None) -> None:
        self.setup = setup
        self.executor = executor
        self.session = HmuSession(setup.hmu_id, setup.aggregator)
        self.rejected: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self.qkd = setup.qkd if setup.qkd is not None and setup.qkd.enabled else None
        if self.qkd is not None and not setup.secret:
            raise QkdError(f"{setup.hmu_id}: QKD needs an enrolment secret")
        self.keying: HmuKeying | None = None
        self.pipeline = setup.pipeline
        self.carried = CarriedStates(setup.state_dir)  # optimiser and pipeline state per round
        self._bytes: defaultdict[int, dict[str, int]] = defaultdict(lambda: {"up": 0, "down": 0})
        self.failures: dict[int, str] = {}  # round -> why no update was sent
        self._server_gone_at: float | None = None
        self._last_update: tuple[int, bytes] = (0, b"")
        self._refusals = RefusalLog(log, setup.hmu_id)
        self.flooded: FloodReport | None = None
        self._global: dict[str, Any] = {}  # the last global weights we were sent
        self.churned: list[dict[str, float]] = []
        self.links: dict[int, dict[str, Any]] = {}  # round -> profile and what it cost

    def _tier(self, build: Any) -> str:
        s = self.setup
        return build(s.run_id, s.hmu_id, aggregator=s.aggregator)

    async def run(self) -> HmuOutcome:
        s = self.setup
        status_topic = topics.status(s.run_id, s.hmu_id)
        will = (status_topic, self._status("offline"))
        async with Bus(s.client_kwargs, will=will, reconnect_s=s.reconnect_s) as bus:
            self.bus = bus
            global_topic = topics.global_model(s.run_id, s.aggregator)
            await bus.subscribe(
                self._tier(topics.inbox), global_topic, topics.status(s.run_id, s.aggregator)
            )
            if self.qkd is not None:
                assert s.secret is not None
                seed = [s.seed, round_seed(s.seed, s.hmu_id, 0)]
                self.keying = HmuKeying(self.qkd, s.secret, s.run_id, s.hmu_id, seed, bus.publish)
                await bus.subscribe(topics.classical(s.run_id, s.hmu_id, "server"))
            await bus.publish(status_topic, self._status("online"), retain=True)
            if s.on_online is not None:
                s.on_online()
            pump, stop_pump = None, asyncio.Event()
            if s.publisher is not None:
                pump = asyncio.create_task(s.publisher.pump(bus.publish, stop_pump))
            reason = await self._loop(bus)
            self._refusals.flush()
            for task in list(self._tasks):
                task.cancel()
            if s.on_finish is not None:
                await asyncio.to_thread(s.on_finish)
            if s.metrics is not None:
                await s.metrics.aflush()
            stop_pump.set()
            if pump is not None:
                await pump  # publishes what the flush handed over
            await bus.publish(status_topic, self._status("offline"), retain=True)
        return HmuOutcome(
            s.hmu_id,
            self.session.rounds_trained,
            reason,
            dict(self.rejected),
            self.keying.sessions if self.keying else 0,
            dict(self._bytes),
            dict(self.failures),
            self.flooded,
            self.churned,
            self.links,
        )

    async def _loop(self, bus: Bus) -> str:
        s = self.setup
        key_topic = topics.classical(s.run_id, s.hmu_id, "server")
        server_status = topics.status(s.run_id, s.aggregator)
        while True:
            gone = self._server_gone_at
            wait = None if gone is None else max(0.0, gone + s.server_gone_s - time.monotonic())
            delivery = await bus.receive(timeout=wait)
            if delivery is None:  # a timeout, or the broker came back
                if gone is not None and time.monotonic() >= gone + s.server_gone_s:
                    return f"{s.aggregator} offline for {s.server_gone_s:g} s (server_gone_s)"
                continue
            try:
                if delivery.topic == server_status:
                    self._on_server_status(delivery.payload)
                    continue
                if delivery.topic == key_topic:
                    if self.keying is None:
                        raise ProtocolViolation("post-processing frame on a link without QKD")
                    await self.keying.on_frame(delivery.payload)
                    continue
                for action in await self._on_delivery(delivery):
                    if isinstance(action, Stop):
                        return action.reason
            except PeerError as exc:
                self.rejected[type(exc).__name__] += 1
                peer = topics.agent_of(delivery.topic, s.run_id) or delivery.topic
                self._refusals.refused(peer, delivery.topic, str(exc))

    def _on_server_status(self, payload: bytes) -> None:
        """The aggregator's presence: its last will starts the clock, coming back stops it."""
        frame = decode_frame(payload)
        env, message = frame.envelope, frame.message
        if env.sender != self.setup.aggregator or not isinstance(message, Status):
            raise ProtocolViolation(f"{env.sender!r} wrote on the server's status topic")
        if message.state == "online":
            self._server_gone_at = None
        elif self._server_gone_at is None:
            log.warning("%s: %s went offline", self.setup.hmu_id, self.setup.aggregator)
            self._server_gone_at = time.monotonic()

    async def _on_delivery(self, delivery: Delivery) -> list[Any]:
        s = self.setup
        frame = decode_frame(delivery.payload, open_=self._open)
        env = frame.envelope
        if env.run_id != s.run_id or env.recipient not in (s.hmu_id, BROADCAST):
            raise ProtocolViolation(f"message for {env.recipient!r} in run {env.run_id!r}")
        message = frame.message
        if isinstance(message, KeyRequest):
            if self.keying is None:
                raise ProtocolViolation(f"key request from {env.sender!r} on a link without QKD")
            await self.keying.start(env, message)
            return []
        if isinstance(message, TrainRequest):
            if delivery.topic != self._tier(topics.inbox):
                raise ProtocolViolation(f"train request on {delivery.topic}")
            if self.qkd is not None and env.cipher == "none":
                raise ProtocolViolation(
                    "plaintext train request refused: this link needs a QKD key"
                )
            actions = self.session.train_request(env.sender, env.round)
            self._bytes[env.round]["down"] += len(delivery.payload)
            for action in actions:
                again = any(c["round"] == env.round for c in self.churned)  # once a round
                away = s.churn.away(s.hmu_id, env.round) if s.churn and not again else None
                if isinstance(action, StartTraining) and away is not None:
                    await self._drop_off(action.round, away)
                elif isinstance(action, StartTraining) and self._flooder(action.round):
                    self._spawn(self._flood(action.round))
                elif isinstance(action, StartTraining):
                    self._start_training(action.round, frame)
                elif isinstance(action, ResendUpdate) and self._last_update[0] == action.round:
                    log.info("%s: round %d update sent again", s.hmu_id, action.round)
                    await self.bus.publish(self._tier(topics.update), self._last_update[1])
                    self._bytes[action.round]["up"] += len(self._last_update[1])
            return []
        if isinstance(message, DecryptRequest):
            await self._decrypt(env.round, message, frame.tensors, delivery.topic)
            return []
        if isinstance(message, RunComplete):
            return self.session.run_complete(env.sender, message.reason)
        if isinstance(message, GlobalModel):
            return []  # a round closed elsewhere; the next invitation carries the weights
        raise ProtocolViolation(f"unexpected {message.type!r} message on {delivery.topic}")

    def _open(self, envelope: Envelope, sealed: bytes, associated_data: bytes) -> bytes:
        if self.keying is None:
            raise ProtocolViolation(f"sealed {envelope.type!r} frame on a link without QKD")
        return self.keying.open(envelope, sealed, associated_data)

    def _start_training(self, round_: int, frame: Frame) -> None:
        assert isinstance(frame.message, TrainRequest)
        self._global = frame.tensors  # the shapes an aggregate to decrypt will have
        if self.setup.on_global is not None:  # e.g. live detection's current model
            self.setup.on_global(frame.tensors, frame.message.model_version)
        self._spawn(self._train(round_, frame.message.model_version, frame.tensors))

    # -- FL + HE: decrypting the round's aggregate (fedlearn.ckks) -----------------------

    async def _decrypt(
        self, round_: int, request: DecryptRequest, tensors: dict[str, Any], topic: str
    ) -> None:
        """Decrypt the aggregate the server asks for and send it back on our update topic."""
        s = self.setup
        if s.he_context is None or topic != self._tier(topics.inbox):
            raise ProtocolViolation(f"decrypt request on {topic}, and this HMU holds no key")
        like = {k: v for k, v in self._global.items() if isinstance(v, np.ndarray)}
        if sum(v.size for v in like.values()) != request.size:
            raise ProtocolViolation(f"decrypt request for {request.size} values, not our model's")
        parts = ckks.ciphertexts(tensors)
        context = ckks.load_context(s.he_context)
        delta = await asyncio.to_thread(ckks.decrypt_delta, context, parts, like)
        reply = DecryptedAggregate(model_version=request.model_version, tensors=[])
        data = self._to_aggregator(round_, "decrypted", reply, delta)
        await self.bus.publish(self._tier(topics.update), data)
        self._bytes[round_]["up"] += len(data)
        log.info("%s: round %d aggregate decrypted for the server", s.hmu_id, round_)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drop_off(self, round_: int, away: float) -> None:
        """Churn: leave the network instead of training (``hmu_agent.churn``)."""
        log.info(
            "%s: round %d: dropping off the network for %.1f s", self.setup.hmu_id, round_, away
        )
        self.session.training_failed(round_)
        self.failures[round_] = f"churn: offline for {away:.1f} s"
        self.churned.append({"round": round_, "offline_s": round(away, 3)})
        await self.bus.drop(away)

    # -- the flood attack (adversary.flood) -----------------------------------------------

    def _flooder(self, round_: int) -> bool:
        attack = self.setup.flood
        return attack is not None and round_ >= attack.start_round

    async def _flood(self, round_: int) -> None:
        """Flood once, at the first invitation due; never train."""
        attack = self.setup.flood
        assert attack is not None
        if self.flooded is None:
            log.warning("%s: flooding with %d messages", self.setup.hmu_id, attack.messages)
            self.flooded = FloodReport(0, time.time(), 0.0)  # one flood, even if invited again
            rng = np.random.default_rng([self.setup.seed, 0xF100D])
            self.flooded = await flood(
                self.bus.publish, self._tier(topics.update), attack.messages,
                attack.size_bytes, rng,
            )  # fmt: skip
        self._failed(round_, f"flooding ({self.flooded.sent} messages sent), not training")

    async def _train(self, round_: int, version: int, weights: dict[str, Any]) -> None:
        """Train from global model ``version`` (its ``weights``) and send the update."""
        s = self.setup
        loop = asyncio.get_running_loop()
        if s.links is not None:  # the invitation comes down the HMU's link first
            down = self._bytes[round_]["down"]
            await self._on_link(round_, "down_s", lambda p: p.transfer_s(down))
        base = self.carried.before(round_)
        self.pipeline.restore(base.pipeline)
        link = self.keying.link if self.keying else None
        if s.cipher_key_bits and link is None:
            self._failed(round_, "no QKD key for the keyed neural cipher")
            return
        cipher_key = link.neural_key(round_, s.cipher_key_bits) if s.cipher_key_bits else None
        work = functools.partial(
            local_update,
            weights,
            s.x,
            s.y,
            s.training,
            round_seed(s.seed, s.hmu_id, round_),
            hmu=s.hmu_id,
            round_=round_,
            pipeline=self.pipeline,
            optimiser_state=base.optimiser,
            cipher_key=cipher_key,
        )
        try:
            done: LocalUpdate = await loop.run_in_executor(self.executor, work)
        except BrokenExecutor as exc:  # our own worker died: a local failure, not the sender's
            self._failed(round_, f"training worker lost: {exc}")
            return
        except (ValueError, KeyError, RuntimeError) as exc:
            # weights that do not fit our model are the sender's fault
            self.rejected["DecodeError"] += 1
            self._failed(round_, f"cannot train from the round's weights: {exc}")
            return
        except Exception as exc:  # never lose a round silently
            log.exception("%s: round %d training failed", s.hmu_id, round_)
            self._failed(round_, f"{type(exc).__name__}: {exc}")
            return
        self.pipeline.restore(done.pipeline_state)  # the worker may have been another process
        result = done.result
        if s.links is not None:  # a slower processor than this machine's takes longer
            await self._on_link(round_, "compute_s", lambda p: p.extra_compute_s(result.seconds))
        try:
            carried = Carried(round_, result.optimiser_state, self.pipeline.state())
            self.carried.after(carried)
        except EnvironmentProblem as exc:  # the update still goes out; a resume may differ
            log.warning("%s: round %d state not saved: %s", s.hmu_id, round_, exc)
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
                await self._send_update(action.round, version, done)

    async def _on_link(self, round_: int, what: str, cost: Callable[[RoundProfile], float]) -> None:
        """Hold back as long as this round's link or processor profile says (``cost``)."""
        profile = self.setup.links.profile(self.setup.hmu_id, round_)  # type: ignore[union-attr]
        wait = cost(profile)
        self.links.setdefault(round_, profile.as_dict())[what] = round(wait, 4)
        await asyncio.sleep(wait)

    def _failed(self, round_: int, reason: str) -> None:
        log.warning("%s: round %d: %s", self.setup.hmu_id, round_, reason)
        self.failures[round_] = reason[:200]
        self.session.training_failed(round_)

    async def _send_update(self, round_: int, version: int, done: LocalUpdate) -> None:
        s = self.setup
        link = self.keying.link if self.keying else None
        if self.qkd is not None and link is None:
            log.warning("%s: no key; round %d update not sent", s.hmu_id, round_)
            return
        r = done.result
        message = ModelUpdate(
            num_samples=r.num_samples, loss=float(r.loss), train_seconds=float(r.seconds),
            base_version=version, encoding=list(done.update.encoding), tensors=[],
        )  # fmt: skip
        try:
            data = self._to_aggregator(round_, "update", message, done.update.tensors)
        except QkdError as exc:  # a one-time pad that is used up: refuse to send
            log.warning("%s: round %d update not sent: %s", s.hmu_id, round_, exc)
            self.rejected["OtpExhausted"] += 1
            return
        self._last_update = (round_, data)  # kept to send again if the broker loses it
        if s.on_upload is not None:
            await asyncio.to_thread(s.on_upload, round_)
        if s.links is not None:
            await self._on_link(round_, "up_s", lambda p: p.transfer_s(len(data)))
        await self.bus.publish(self._tier(topics.update), data)
        self._bytes[round_]["up"] += len(data)

    def _to_aggregator(
        self, round_: int, type_: str, message: Any, tensors: dict[str, Any]
    ) -> bytes:
        """A frame for our aggregator, sealed under the QKD link when there is one;
        ``QkdError`` if its one-time pad is used up."""
        s = self.setup
        link = self.keying.link if self.keying else None
        env = new_envelope(
            s.run_id, round_, s.hmu_id, s.aggregator, type_,
            cipher=link.cipher if link else "none", key_id=link.key_id if link else "",
            **stamp(),
        )  # fmt: skip
        return encode_frame(env, message, tensors, seal=link.seal if link else None)

    def _status(self, state: str) -> bytes:
        s = self.setup
        env = new_envelope(s.run_id, 0, s.hmu_id, BROADCAST, "status", **stamp())
        return encode_frame(env, Status(role="hmu", state=state, samples=len(s.y)))  # type: ignore[arg-type]
