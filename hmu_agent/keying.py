"""The HMU's side of its B92 sessions with the server, and the link cipher they yield.

Mirrors ``iomt.server_agent.keying``: a key request from the server starts a session
(prepare states, send them into the quantum channel); ``AliceSession`` then runs the
authenticated post-processing; a confirmed key becomes the link cipher that seals this
HMU's updates and opens its invitations.  An abort leaves the HMU without a key: the
server isolates it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import numpy as np

from iomt.errors import ProtocolViolation
from iomt.qkd_channel.alice import AliceSession
from iomt.qkd_channel.channel import prepare
from iomt.qkd_channel.config import QkdConfig
from iomt.qkd_channel.transport import pack_states
from iomt.wire import topics
from iomt.wire.envelope import Envelope, new_envelope
from iomt.wire.frame import encode_frame
from iomt.wire.link_cipher import LinkCipher
from iomt.wire.messages import KeyRequest, QubitBatch
from iomt.wire.stamp import stamp

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], Awaitable[None]]


class HmuKeying:
    """This HMU's current session and link cipher."""

    def __init__(
        self,
        qkd: QkdConfig,
        secret: bytes,
        run_id: str,
        hmu_id: str,
        rng_seed: list[int],
        publish: Publish,
    ) -> None:
        self.qkd = qkd
        self.secret = secret
        self.run_id = run_id
        self.hmu_id = hmu_id
        self._rng_seed = rng_seed
        self.publish = publish
        self.alice: AliceSession | None = None
        self.link: LinkCipher | None = None
        self.sessions = 0

    def open(self, envelope: Envelope, sealed: bytes, associated_data: bytes) -> bytes:
        """Open a sealed frame from the server with the current link cipher."""
        if self.link is None:
            raise ProtocolViolation(f"sealed {envelope.type!r} frame but no key is accepted yet")
        return self.link.open(envelope, sealed, associated_data)

    async def start(self, env: Envelope, request: KeyRequest) -> None:
        """Prepare B92 states for a fresh session and send them into the quantum channel."""
        if env.sender != topics.SERVER_ID:
            raise ProtocolViolation(f"key request from {env.sender!r}, not the server")
        self.sessions += 1
        rng = np.random.default_rng([*self._rng_seed, self.sessions])
        bits = prepare(request.qubits, rng)
        self.alice = AliceSession(self.qkd, self.secret, request.session_id, bits, rng)
        batch = QubitBatch(session_id=request.session_id, qubits=request.qubits, tensors=[])
        out = new_envelope(
            self.run_id, env.round, self.hmu_id, topics.CHANNEL_ID, "qubits", **stamp()
        )
        await self.publish(
            topics.quantum(self.run_id, self.hmu_id, "tx"),
            encode_frame(out, batch, pack_states(bits)),
        )

    async def on_frame(self, payload: bytes) -> None:
        """One authenticated post-processing frame from the server's side of the session."""
        alice = self.alice
        if alice is None or alice.finished:
            raise ProtocolViolation("post-processing frame outside a key session")
        replies = await asyncio.to_thread(alice.receive, payload)
        for reply in replies:
            await self.publish(topics.classical(self.run_id, self.hmu_id, "hmu"), reply)
        outcome = alice.outcome
        if outcome is None:
            return
        if outcome.aborted or outcome.key is None:
            self.link = None
            log.warning("%s: key session aborted: %s", self.hmu_id, outcome.reason)
        else:
            self.link = LinkCipher(outcome.key, outcome.session_id, "hmu", self.qkd.cipher)
            log.info("%s: key accepted (%d bits)", self.hmu_id, 8 * len(outcome.key))
