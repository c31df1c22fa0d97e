"""The server's side of every HMU's B92 sessions, and the link ciphers they yield.

Each session: ask the HMU for qubits (its inbox), take the detector's record from the
channel agent, run ``BobSession`` over the authenticated classical topics, and end with
either a confirmed key (an AES-GCM or one-time-pad link cipher) or an abort. What to
do about an abort (isolate the HMU) is the caller's decision; this class only keys.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from iomt.errors import ProtocolViolation
from iomt.qkd_channel.bob import BobSession
from iomt.qkd_channel.config import QkdConfig
from iomt.qkd_channel.session import SessionOutcome, session_seed
from iomt.qkd_channel.transport import unpack_detections
from iomt.wire import topics
from iomt.wire.envelope import Envelope, new_envelope
from iomt.wire.frame import decode_frame, encode_frame
from iomt.wire.link_cipher import LinkCipher
from iomt.wire.messages import DetectionRecord, KeyRequest
from iomt.wire.stamp import stamp

Publish = Callable[[str, bytes], Awaitable[None]]


class ServerKeying:
    """Pending sessions, finished sessions' figures, and the current cipher per HMU."""

    def __init__(
        self,
        qkd: QkdConfig,
        secrets_: dict[str, bytes],
        run_id: str,
        seed: int,
        publish: Publish,
    ) -> None:
        self.qkd = qkd
        self.secrets = secrets_
        self.run_id = run_id
        self.seed = seed
        self.sessions: Counter[str] = Counter()
        self.publish = publish
        self.links: dict[str, LinkCipher] = {}
        self.bobs: dict[str, BobSession] = {}
        self.pending: dict[str, str] = {}
        self.report: dict[str, dict[str, Any]] = {}
        self.keying_seconds: list[float] = []
        self._started = 0.0

    def open(self, envelope: Envelope, sealed: bytes, associated_data: bytes) -> bytes:
        """Open a sealed frame with its sender's current link cipher."""
        link = self.links.get(envelope.sender)
        if link is None:
            raise ProtocolViolation(f"sealed frame from {envelope.sender!r}, which holds no key")
        return link.open(envelope, sealed, associated_data)

    async def rekey(self, hmus: tuple[str, ...], round_: int) -> None:
        """Ask each HMU to start a fresh session; its old key is retired."""
        self._started = time.monotonic()
        qubits = self.qkd.planned_qubits()
        for hmu in hmus:
            self.links.pop(hmu, None)
            self.bobs.pop(hmu, None)
            session_id = secrets.token_hex(8)
            self.pending[hmu] = session_id
            env = new_envelope(self.run_id, round_, topics.SERVER_ID, hmu, "key-request", **stamp())
            request = KeyRequest(session_id=session_id, qubits=qubits)
            await self.publish(topics.inbox(self.run_id, hmu), encode_frame(env, request))

    async def on_detections(self, hmu: str, payload: bytes) -> SessionOutcome | None:
        """The detector's record of an HMU's qubits: start the server's side of the session."""
        frame = decode_frame(payload)
        record = frame.message
        if frame.envelope.sender != topics.CHANNEL_ID or not isinstance(record, DetectionRecord):
            raise ProtocolViolation(f"{frame.envelope.sender!r} sent {record.type!r} as detections")
        if self.pending.get(hmu) != record.session_id:
            raise ProtocolViolation(
                f"detections for {hmu} session {record.session_id}, not pending"
            )
        detections = unpack_detections(frame.tensors, record.qubits)
        self.sessions[hmu] += 1
        bob = BobSession(self.qkd, self.secrets[hmu], record.session_id, detections, self._rng(hmu))
        self.bobs[hmu] = bob
        return await self._forward(hmu, bob, await asyncio.to_thread(bob.start))

    def _rng(self, hmu: str) -> np.random.Generator:
        return np.random.default_rng(session_seed(self.seed, 0xB0B, hmu, self.sessions[hmu]))

    async def on_key_frame(self, hmu: str, payload: bytes) -> SessionOutcome | None:
        """One post-processing frame from the HMU's side of its session."""
        bob = self.bobs.get(hmu)
        if bob is None or bob.finished:
            raise ProtocolViolation(f"post-processing frame from {hmu} outside a session")
        return await self._forward(hmu, bob, await asyncio.to_thread(bob.receive, payload))

    async def _forward(
        self, hmu: str, bob: BobSession, frames: list[bytes]
    ) -> SessionOutcome | None:
        for out in frames:
            await self.publish(topics.classical(self.run_id, hmu, "server"), out)
        outcome = bob.outcome
        if outcome is None:
            return None
        self.pending.pop(hmu, None)
        if not self.pending:
            self.keying_seconds.append(round(time.monotonic() - self._started, 4))
        self._record(hmu, outcome)
        if outcome.aborted or outcome.key is None:
            self.links.pop(hmu, None)
        else:
            self.links[hmu] = LinkCipher(outcome.key, outcome.session_id, "server", self.qkd.cipher)
        return outcome

    def _record(self, hmu: str, outcome: SessionOutcome) -> None:
        st = outcome.stats
        self.report[hmu] = {
            "qber": st.qber,
            "qber_upper": st.qber_upper,
            "conclusive_rate": st.conclusive / st.qubits if st.qubits else 0.0,
            "sifted_bits": st.sifted_bits,
            "leaked_bits": st.leaked_bits,
            "final_key_bits": st.final_key_bits,
            "status": "isolated" if outcome.aborted else "accepted",
            "reason": outcome.reason,
            "sessions": self.report.get(hmu, {}).get("sessions", 0) + 1,
        }
