"""The FL server agent: drives ``RoundCoordinator`` over MQTT; each job has its own module.

This module is the network loop only: it routes each delivery to the job it belongs
to and performs the coordinator's actions through a table.  The jobs:

* ``coordinator``: who trains when, from which model version (pure);
* ``keying`` and ``isolation``: B92 sessions with each HMU, and what an abort costs it;
* ``decoding``: an update's wire steps undone and its weights checked;
* ``round_actions``: performing the coordinator's actions (the other half of the agent);
* ``rounds``: aggregation, evaluation and the round's record (in a worker thread);
* ``encrypted_rounds``: FL + HE: encrypted updates summed, a key holder decrypts;
* ``checkpoint``: the server's state after every round, and resuming from it;
* ``refused`` and ``flood_guard``: the books of refused messages, and floods;
* ``outbox``: the frames the server sends;
* ``broker_watch``: Mosquitto's ``$SYS`` counters as metrics, and its drops.

Who attacks, and what privacy an HMU spent, are the experiment's ground truth and
accounting: the scenario's results builder works them out, not the server.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from iomt.errors import (
    BrokerError,
    PeerError,
    ProtocolViolation,
    QkdError,
    RunError,
)
from iomt.fedlearn.evaluate import evaluate
from iomt.fedlearn.pipeline import Decoder
from iomt.fedlearn.strategy import build_aggregator, trust_ledger
from iomt.monitoring import measurements
from iomt.monitoring.broker_stats import SYS_FILTER
from iomt.server_agent import outbox
from iomt.server_agent.async_coordinator import AsyncCoordinator
from iomt.server_agent.broker_watch import BrokerWatch
from iomt.server_agent.checkpoint import Checkpoint, restore
from iomt.server_agent.coordinator import (
    Aggregate,
    BrokerBack,
    Excluded,
    Finish,
    HmuStatus,
    Invite,
    KeyAccepted,
    MessagesDropped,
    Phase,
    Rekey,
    RoundCoordinator,
    Tick,
    UpdateArrived,
)
from iomt.server_agent.decoding import update_weights
from iomt.server_agent.encrypted_rounds import EncryptedRounds
from iomt.server_agent.isolation import Isolation
from iomt.server_agent.keying import ServerKeying
from iomt.server_agent.refused import Refused
from iomt.server_agent.round_actions import RoundActions
from iomt.server_agent.rounds import ModelHistory, decrypted_round
from iomt.server_agent.setup import ServerOutcome, ServerSetup
from iomt.wire import topics
from iomt.wire.bus import Bus, Delivery
from iomt.wire.frame import decode_frame
from iomt.wire.messages import (
    DecryptedAggregate,
    ModelUpdate,
    Status,
)

log = logging.getLogger(__name__)

__all__ = ["ServerAgent", "ServerOutcome", "ServerSetup"]


class ServerAgent(RoundActions):
    """One FL server (an aggregator of one tier) connected to the broker."""

    def __init__(self, setup: ServerSetup) -> None:
        self.setup = setup
        self.weights = setup.initial_weights
        self.records: list[dict[str, Any]] = []
        self.qkd = setup.qkd if setup.qkd is not None and setup.qkd.enabled else None
        missing = [h for h in setup.hmus if self.qkd is not None and not setup.secrets.get(h)]
        if missing:
            raise QkdError(f"QKD needs an enrolment secret for {', '.join(missing)}")
        self._emit = setup.emit or (lambda point: None)
        self.keying: ServerKeying | None = None
        self.isolation = Isolation(setup.revoke, self._emit)
        self.aggregator = build_aggregator(setup.defence)
        self._broker = BrokerWatch(self._emit)
        self.refused = Refused(
            setup.run_id, setup.aggregator_id, setup.hmus, setup.defence.flood_guard, self._emit
        )
        self._bytes_up = self._bytes_down = 0
        self._round_started = 0.0
        self._run_started = time.monotonic()
        self.transfer_s: dict[str, float] = {}  # HMU -> its last update's stamp to arrival
        self._perform: dict[type, Callable[[Any], Awaitable[list[Any]]]] = {
            Invite: self._invite,
            Rekey: self._rekey,
            Aggregate: self._aggregate,
        }
        fed = setup.federation
        settings: dict[str, Any] = dict(
            clients_per_round=fed.clients_per_round,
            rounds=fed.rounds,
            round_deadline_s=fed.round_deadline_s,
            online_timeout_s=fed.online_timeout_s,
            rng=np.random.default_rng([setup.seed, 0x5E]),
            now=time.monotonic(),
            keys_required=self.qkd is not None,
            rekey_rounds=self.qkd.rekey_rounds if self.qkd is not None else 0,
            key_deadline_s=fed.round_deadline_s,
            min_updates=fed.min_updates,
        )
        self.core: RoundCoordinator = (
            AsyncCoordinator(
                setup.hmus, buffer_size=fed.buffer, staleness_bound=fed.staleness_bound,
                staleness_exponent=fed.staleness_exponent, **settings,
            ) if fed.mode == "async" else RoundCoordinator(setup.hmus, **settings)
        )  # fmt: skip
        self.history = ModelHistory(fed.staleness_bound if fed.mode == "async" else 0)
        self.history.add(0, self.weights)
        self.he = (
            EncryptedRounds(setup.he_public, fed.round_deadline_s) if setup.he_public else None
        )
        if setup.resume is not None:
            self._restore(setup.resume)

    def _restore(self, ckpt: Checkpoint) -> None:
        """Continue where ``ckpt`` left off (see ``iomt.server_agent.checkpoint``)."""
        self.weights, self.records = ckpt.weights, list(ckpt.rounds)
        self.history.add(ckpt.version, ckpt.weights)
        self.refused.by_reason.update(ckpt.rejected)
        self.isolation.isolated = list(ckpt.isolated)
        restore(ckpt, self.core, trust_ledger(self.aggregator))
        log.info("resuming run %s after round %d", ckpt.run_id, ckpt.completed_rounds)

    async def run(self) -> ServerOutcome:
        s = self.setup
        status_topic = topics.status(s.run_id, s.aggregator_id)
        will = (status_topic, outbox.status(s, "offline"))
        async with Bus(s.client_kwargs, will=will, reconnect_s=s.reconnect_s) as bus:
            self.bus = bus
            if self.qkd is not None:
                self.keying = ServerKeying(self.qkd, s.secrets, s.run_id, s.seed, bus.publish)
            await bus.subscribe(topics.status_filter(s.run_id), self._tier(topics.update_filter))
            await bus.subscribe(SYS_FILTER, qos=0)  # counters; dropped messages
            if s.forwarder is not None:
                await bus.subscribe(topics.metrics_filter(s.run_id))
            if self.qkd is not None:
                for hmu in s.hmus:
                    await bus.subscribe(
                        topics.quantum(s.run_id, hmu, "rx"), topics.classical(s.run_id, hmu, "hmu")
                    )
            for hmu in self.isolation.isolated:  # a resumed run: still cut off at this broker
                await self.isolation.revoke(hmu)
            await bus.publish(status_topic, outbox.status(s, "online"), retain=True)
            try:
                finish = await self._loop(bus)
            except BrokerError as exc:  # gone for longer than broker.reconnect_s
                log.info("server: %s", exc)  # the run ends on it: the CLI says it once
                finish = Finish(completed=False, reason=str(exc))
            else:
                done = self.core.completed_rounds if self.core.phase is Phase.FINISHED else 0
                complete = outbox.complete(s, done, finish.reason)
                await bus.publish(self._tier(topics.global_model), complete)
                await self._linger(bus)
                await bus.publish(status_topic, outbox.status(s, "offline"), retain=True)
        self.refused.flush()
        if not self.records and not finish.completed:
            raise RunError(f"run {s.run_id} did not start: {finish.reason}")
        final = (await asyncio.to_thread(self._evaluate, self.weights)).as_dict()
        if s.validation is not None:  # the same test rows at the untuned threshold, to compare
            fixed = evaluate(self.weights, s.x_test, s.y_test, s.hidden)
            final["at_half"] = {k: getattr(fixed, k) for k in ("accuracy", "macro_f1", "recall")}
        return ServerOutcome(
            completed=finish.completed,
            reason=finish.reason,
            rounds=self.records,
            final=final,
            weights=self.weights,
            version=self.core.version,
            rejected=dict(self.refused.by_reason),
            refused_by_peer=self.refused.report(),
            isolations=self.isolation.details,
            qkd=self.keying.report if self.keying else {},
            isolated=self.isolation.isolated,
            keying_seconds=self.keying.keying_seconds if self.keying else [],
            asynchronous=self.core.report() if isinstance(self.core, AsyncCoordinator) else {},
        )

    async def _loop(self, bus: Bus) -> Finish:
        core = self.core
        actions: list[Any] = []
        reconnects = bus.reconnects
        while True:
            if bus.reconnects != reconnects:  # the broker was away: answers may be lost
                reconnects = bus.reconnects
                actions.extend(core.handle(BrokerBack(), time.monotonic()))
            while actions:
                action = actions.pop(0)
                if isinstance(action, Finish):
                    return action
                actions.extend(await self._perform[type(action)](action))
            pending = self.he.pending if self.he else None
            wake = pending.deadline if pending else core.next_wakeup()
            timeout = None if wake is None else max(0.0, wake - time.monotonic())
            delivery = await bus.receive(timeout=timeout)
            now = time.monotonic()
            if delivery is None and pending is not None:
                actions = await self._decryption_late(now) if now >= pending.deadline else []
                continue
            if delivery is None:
                actions = core.handle(Tick(), now)
                continue
            try:
                actions = await self._on_delivery(delivery, now)
            except PeerError as exc:  # never fatal: counted, logged, and watched for floods
                current = core.current.number if core.current else None
                flooder = self.refused.refused(delivery.topic, exc, now, current)
                actions = await self._flooding(flooder) if flooder else []

    async def _flooding(self, hmu: str) -> list[Any]:
        """``hmu``'s credentials flood the run: cut it off at the broker and leave it out."""
        cfg = self.setup.defence.flood_guard
        reason = f"flooding: {cfg.refusals} messages refused within {cfg.window_s:g} s"
        await self.isolation.isolate(hmu, reason)
        if self.core.phase is Phase.FINISHED:
            return []
        return self.core.handle(Excluded(hmu), time.monotonic())

    async def _linger(self, bus: Bus, limit_s: float = 3.0) -> None:
        """After the run: take the HMUs' last metrics until they have all gone offline."""
        if self.setup.forwarder is None:
            return
        until = time.monotonic() + limit_s
        while any(self.core.online.values()) and (left := until - time.monotonic()) > 0:
            delivery = await bus.receive(timeout=left)
            if delivery is None:
                return
            try:
                # the coordinator is finished: statuses only mark HMUs offline, updates are refused
                await self._on_delivery(delivery, time.monotonic())
            except PeerError as exc:
                log.debug("after the run: ignored %s: %s", delivery.topic, exc)

    # -- routing deliveries ---------------------------------------------------------

    async def _on_delivery(self, delivery: Delivery, now: float) -> list[Any]:
        s = self.setup
        if delivery.topic.startswith("$SYS/"):
            dropped = self._broker.observe(delivery.topic, delivery.payload, now)
            if dropped and self.core.phase is not Phase.FINISHED:
                log.warning("the broker dropped %d message(s); inviting silent HMUs again", dropped)
                return self.core.handle(MessagesDropped(), now)
            return []
        if s.forwarder is not None and delivery.topic.startswith(
            f"{topics.run_prefix(s.run_id)}/metrics/"
        ):
            s.forwarder.handle(delivery.topic, delivery.payload)
            return []
        link = topics.qkd_link_of(delivery.topic, s.run_id)
        if link is not None and self.keying is not None:
            return await self._on_key_traffic(*link, delivery.payload)
        agent = topics.agent_of(delivery.topic, s.run_id)
        frame = decode_frame(delivery.payload, open_=self.keying.open if self.keying else None)
        env = frame.envelope
        if agent is None or env.sender != agent or env.run_id != s.run_id:
            raise ProtocolViolation(f"{env.sender!r} wrote on {delivery.topic}")
        message = frame.message
        if isinstance(message, Status):
            if agent == s.aggregator_id or message.role not in ("hmu", "fog"):  # members
                return []
            return self.core.handle(HmuStatus(agent, message.state == "online"), now)
        if isinstance(message, ModelUpdate):
            if self.qkd is not None and env.cipher == "none":
                raise ProtocolViolation(f"plaintext update from {agent} refused: QKD is on")
            self._bytes_up += frame.size
            self.transfer_s[agent] = round(max(0.0, time.time() - env.created_at), 4)
            if self.he is not None:
                size = sum(v.size for v in self.weights.values())
                local: Any = self.he.encrypted_update(agent, message, frame.tensors, size)
            else:
                decoders = self._decoders(agent, env.round)
                base = self.history.get(message.base_version, self.weights)
                local = update_weights(agent, message, frame.tensors, base, decoders)
            event = UpdateArrived(agent, env.round, message.base_version, (local, message))
            return self.core.handle(event, now)
        if isinstance(message, DecryptedAggregate) and self.he is not None:
            agg, weights = self.he.answer(agent, message.model_version, frame.tensors, self.weights)
            self._bytes_up += frame.size
            closed = await asyncio.to_thread(decrypted_round, weights, self._evaluate)
            return await self._round_closed(agg, closed)
        raise ProtocolViolation(f"unexpected {message.type!r} message on {delivery.topic}")

    def _decoders(self, hmu: str, round_: int) -> dict[str, Decoder]:
        """The wire steps only this server undoes: the neural cipher, with ``hmu``'s key of
        the round when it is keyed."""
        s = self.setup
        if s.neural_decoder is None:
            return {}
        from iomt.fedlearn import neural_cipher  # torch: only where a cipher runs
        from iomt.fedlearn.decoder_gain import unbiased_reader

        key = None
        if s.cipher_key_bits:
            link = self.keying.links.get(hmu) if self.keying else None
            if link is None:
                raise ProtocolViolation(f"no QKD key with {hmu} to decode its update")
            material = link.neural_key(round_, s.cipher_key_bits)
            key = neural_cipher.key_from_bytes(material, s.cipher_key_bits)
        read = functools.partial(neural_cipher.decrypt_update, s.neural_decoder, key=key)
        return {"neural": unbiased_reader(read, s.neural_gain)}

    async def _on_key_traffic(self, hmu: str, leg: str, payload: bytes) -> list[Any]:
        """Detections or a post-processing frame; a finished session keys or isolates."""
        assert self.keying is not None
        if leg == "classical/hmu":
            outcome = await self.keying.on_key_frame(hmu, payload)
        else:
            outcome = await self.keying.on_detections(hmu, payload)
        if outcome is None:
            return []
        report = self.keying.report[hmu]
        threshold = self.keying.qkd.qber_threshold
        self._emit(measurements.qkd_link_from_report(hmu, report, qber_threshold=threshold))
        now = time.monotonic()
        if hmu in self.keying.links:
            return self.core.handle(KeyAccepted(hmu), now)
        await self.isolation.isolate(hmu, f"key session aborted: {outcome.reason}")
        return self.core.handle(Excluded(hmu), now)
