"""In-memory driver: one full QKD session, channel plus both state machines, no network.

Used by the CLI's ``simulate`` and by tests; agents carry the same frames over MQTT.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from iomt.errors import QkdError
from iomt.qkd_channel.alice import AliceSession
from iomt.qkd_channel.backends import run_link
from iomt.qkd_channel.bob import BobSession
from iomt.qkd_channel.channel import Detections, prepare
from iomt.qkd_channel.config import QkdConfig
from iomt.qkd_channel.eve.base import Eavesdropper
from iomt.qkd_channel.session import SessionOutcome

MAX_FRAMES = 100_000


@dataclass(frozen=True)
class SessionResult:
    """Both parties' outcomes and the classical traffic between them."""

    alice: SessionOutcome
    bob: SessionOutcome
    frames: int
    frame_bytes: int


def exchange(alice: AliceSession, bob: BobSession) -> tuple[int, int]:
    """Carry frames between the two sessions until neither has anything to send.

    Returns ``(frames, bytes)`` carried.
    """
    queue: deque[tuple[str, bytes]] = deque(("alice", frame) for frame in bob.start())
    frames = size = 0
    while queue:
        to, frame = queue.popleft()
        frames += 1
        size += len(frame)
        if frames > MAX_FRAMES:
            raise QkdError(f"QKD session did not finish within {MAX_FRAMES} frames")
        if to == "alice":
            queue.extend(("bob", reply) for reply in alice.receive(frame))
        else:
            queue.extend(("alice", reply) for reply in bob.receive(frame))
    return frames, size


def postprocess(
    config: QkdConfig,
    bits: np.ndarray,
    detections: Detections,
    secret: bytes,
    session_id: str,
    alice_rng: np.random.Generator,
    bob_rng: np.random.Generator,
) -> SessionResult:
    """Run the classical post-processing between Alice's bits and Bob's record."""
    alice = AliceSession(config, secret, session_id, bits, alice_rng)
    bob = BobSession(config, secret, session_id, detections, bob_rng)
    frames, size = exchange(alice, bob)
    if alice.outcome is None or bob.outcome is None:
        raise QkdError(
            f"QKD session stalled: HMU in {alice.state.name}, server in {bob.state.name}"
        )
    return SessionResult(alice=alice.outcome, bob=bob.outcome, frames=frames, frame_bytes=size)


def run_session(
    config: QkdConfig,
    *,
    secret: bytes,
    session_id: str,
    seed: int | np.random.SeedSequence,
    eve: Eavesdropper | None = None,
) -> SessionResult:
    """A whole session: Alice prepares, the link (with ``eve``) delivers, both post-process.

    ``seed`` is split into independent streams for Alice, the channel and Bob.
    """
    sequence = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    alice_rng, channel_rng, bob_rng = (np.random.default_rng(s) for s in sequence.spawn(3))
    bits = prepare(config.planned_qubits(), alice_rng)
    detections = run_link(bits, config.link(), eve, channel_rng, bob_rng, config.backend)
    return postprocess(config, bits, detections, secret, session_id, alice_rng, bob_rng)
