"""The quantum channel agent: carries every HMU-server B92 link, with its loss, noise and Eve.

It reads the states an HMU prepares (on that link's ``quantum/tx`` topic, which only
that HMU may write), sends them through the fibre model and the link's eavesdropper,
measures them with the server's detector model, and hands the server the detector's
record (``quantum/rx``, which only this agent may write). The detector is part of the
simulated physics: the server learns only what a real detector would report (basis,
click, conclusive), never the states themselves. Per-link statistics are kept for the
results and the metrics.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from iomt.errors import PeerError, ProtocolViolation
from iomt.qkd_channel.backends import run_link
from iomt.qkd_channel.config import QkdConfig
from iomt.qkd_channel.eve.base import Eavesdropper
from iomt.qkd_channel.session import session_seed
from iomt.qkd_channel.transport import pack_detections, unpack_states
from iomt.wire import topics
from iomt.wire.bus import Bus, Delivery
from iomt.wire.envelope import BROADCAST, new_envelope
from iomt.wire.frame import decode_frame, encode_frame
from iomt.wire.messages import DetectionRecord, QubitBatch, RunComplete, Status
from iomt.wire.stamp import stamp

log = logging.getLogger(__name__)


@dataclass
class LinkStats:
    """What the channel saw on one link, over all its sessions."""

    eavesdropper: str | None
    eve_fraction: float
    sessions: int = 0
    qubits: int = 0
    clicks: int = 0
    conclusive: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "eavesdropper": self.eavesdropper,
            "eve_fraction": self.eve_fraction,
            "sessions": self.sessions,
            "qubits": self.qubits,
            "clicks": self.clicks,
            "conclusive": self.conclusive,
        }


@dataclass(frozen=True)
class ChannelSetup:
    run_id: str
    hmus: list[str]
    qkd: QkdConfig
    eavesdroppers: dict[str, Eavesdropper]
    seed: int
    client_kwargs: dict[str, Any]


@dataclass
class ChannelOutcome:
    links: dict[str, dict[str, Any]]
    rejected: dict[str, int] = field(default_factory=dict)


class ChannelAgent:
    """One MQTT agent simulating the quantum link of every HMU."""

    def __init__(self, setup: ChannelSetup) -> None:
        self.setup = setup
        self.rejected: Counter[str] = Counter()
        self.links = {
            h: LinkStats(
                eavesdropper=setup.eavesdroppers[h].name if h in setup.eavesdroppers else None,
                eve_fraction=setup.eavesdroppers[h].fraction if h in setup.eavesdroppers else 0.0,
            )
            for h in setup.hmus
        }

    async def run(self) -> ChannelOutcome:
        s = self.setup
        status_topic = topics.status(s.run_id, topics.CHANNEL_ID)
        async with Bus(s.client_kwargs, will=(status_topic, self._status("offline"))) as bus:
            await bus.subscribe(*(topics.quantum(s.run_id, h, "tx") for h in s.hmus))
            await bus.subscribe(topics.global_model(s.run_id))
            await bus.publish(status_topic, self._status("online"), retain=True)
            while True:
                delivery = await bus.receive()
                assert delivery is not None
                try:
                    if await self._on_delivery(bus, delivery):
                        break
                except PeerError as exc:
                    self.rejected[type(exc).__name__] += 1
                    log.warning("channel: rejected message on %s: %s", delivery.topic, exc)
            await bus.publish(status_topic, self._status("offline"), retain=True)
        return ChannelOutcome(
            {h: st.as_dict() for h, st in self.links.items()}, dict(self.rejected)
        )

    async def _on_delivery(self, bus: Bus, delivery: Delivery) -> bool:
        s = self.setup
        frame = decode_frame(delivery.payload)
        message = frame.message
        if isinstance(message, RunComplete):
            return frame.envelope.sender == topics.SERVER_ID
        if not isinstance(message, QubitBatch):
            return False  # global-model broadcasts are not for the channel
        hmu = frame.envelope.sender
        if hmu not in self.links or delivery.topic != topics.quantum(s.run_id, hmu, "tx"):
            raise ProtocolViolation(f"qubits from {hmu!r} on {delivery.topic}")
        states = unpack_states(frame.tensors, message.qubits)
        stats = self.links[hmu]
        stats.sessions += 1
        streams = session_seed(s.seed, 0x0C4A, hmu, stats.sessions).spawn(2)
        channel_rng, bob_rng = (np.random.default_rng(x) for x in streams)
        eve = s.eavesdroppers.get(hmu)
        link = s.qkd.link()
        detections = await asyncio.to_thread(
            run_link, states, link, eve, channel_rng, bob_rng, s.qkd.backend
        )
        stats.qubits += detections.qubits
        stats.clicks += int(detections.clicked.sum())
        stats.conclusive += int(detections.conclusive.sum())
        env = new_envelope(
            s.run_id,
            frame.envelope.round,
            topics.CHANNEL_ID,
            topics.SERVER_ID,
            "detections",
            **stamp(),
        )
        record = DetectionRecord(session_id=message.session_id, qubits=message.qubits, tensors=[])
        await bus.publish(
            topics.quantum(s.run_id, hmu, "rx"),
            encode_frame(env, record, pack_detections(detections)),
        )
        log.info(
            "link %s: %d qubits, %d conclusive%s",
            hmu,
            detections.qubits,
            int(detections.conclusive.sum()),
            f", Eve {stats.eavesdropper}" if eve else "",
        )
        return False

    def _status(self, state: str) -> bytes:
        env = new_envelope(self.setup.run_id, 0, topics.CHANNEL_ID, BROADCAST, "status", **stamp())
        return encode_frame(env, Status(role="channel", state=state))  # type: ignore[arg-type]
