"""What both post-processing state machines share: framing, sequencing, outcome.

A session is a pure state machine in the style of h11: ``receive(frame)`` takes
the bytes of one authenticated frame and returns the frames to send back; it never
touches a socket or a clock.  A frame that fails its tag, names another session,
arrives out of sequence or is not allowed in the current state raises a
:class:`~iomt_testbed.errors.PeerError` and leaves the session unchanged, so an
agent can count it, drop it and go on.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from iomt.errors import ProtocolViolation
from iomt.qkd_channel.config import QkdConfig
from iomt.qkd_channel.messages import QkdMessage, Role, _Message, mac_key, open_frame, seal

log = logging.getLogger(__name__)


class SessionState(enum.Enum):
    """States of both parties; each party uses its own subset (see its table)."""

    START = "start"
    WAIT_SIFT = "wait_sift"
    WAIT_SAMPLE = "wait_sample"
    WAIT_PLAN = "wait_plan"
    RECONCILING = "reconciling"
    WAIT_CONFIRM = "wait_confirm"
    DONE = "done"
    ABORTED = "aborted"


@dataclass
class SessionStats:
    """Public figures of one session, filled in as it proceeds."""

    qubits: int = 0
    detections: int = 0
    conclusive: int = 0
    sifted_bits: int = 0
    sample_size: int = 0
    sample_errors: int | None = None
    qber: float | None = None
    qber_upper: float | None = None
    leaked_bits: int = 0
    final_key_bits: int = 0
    corrected_bits: int | None = None


@dataclass(frozen=True)
class SessionOutcome:
    """How a finished session ended: the key (None if aborted) and its figures."""

    role: Role
    session_id: str
    key: bytes | None
    aborted: bool
    reason: str | None
    stats: SessionStats = field(default_factory=SessionStats)


Handler = Callable[[QkdMessage], list[_Message]]


class Session:
    """Base of :class:`AliceSession` and :class:`BobSession`."""

    role: Role
    peer: Role

    def __init__(self, config: QkdConfig, secret: bytes, session_id: str) -> None:
        self.config = config
        self.session_id = session_id
        self.state = SessionState.START
        self.stats = SessionStats()
        self.reason: str | None = None
        self._key: bytes | None = None
        self._send_key = mac_key(secret, self.role)
        self._recv_key = mac_key(secret, self.peer)
        self._sent = 0
        self._received = 0

    # the transition table: (state, message type) -> handler
    def _table(self) -> dict[tuple[SessionState, str], Handler]:
        raise NotImplementedError

    @property
    def finished(self) -> bool:
        return self.state in (SessionState.DONE, SessionState.ABORTED)

    @property
    def outcome(self) -> SessionOutcome | None:
        """The result once the session is DONE or ABORTED, else None."""
        if not self.finished:
            return None
        aborted = self.state is SessionState.ABORTED
        return SessionOutcome(
            role=self.role,
            session_id=self.session_id,
            key=None if aborted else self._key,
            aborted=aborted,
            reason=self.reason,
            stats=self.stats,
        )

    def receive(self, frame: bytes) -> list[bytes]:
        """Handle one frame from the peer; the frames to send back, in order."""
        message = open_frame(frame, self._recv_key)
        if message.session_id != self.session_id:
            raise ProtocolViolation(
                f"frame for session {message.session_id!r} reached session {self.session_id!r}"
            )
        if message.seq != self._received:
            raise ProtocolViolation(
                f"{message.type} with sequence number {message.seq}, expected "
                f"{self._received}: replayed or out of order"
            )
        handler = self._table().get((self.state, message.type))
        if handler is None:
            raise ProtocolViolation(
                f"{self.role} session in state {self.state.name} cannot take a "
                f"{message.type!r} message"
            )
        replies = handler(message)  # validates before it changes any state
        self._received += 1
        return self._emit(replies)

    # -- helpers for subclasses ----------------------------------------------------

    def _new(self, cls: type[_Message], **fields: object) -> _Message:
        """A message of this session; its sequence number is set when it is sent."""
        return cls(session_id=self.session_id, seq=0, **fields)

    def _emit(self, messages: list[_Message]) -> list[bytes]:
        frames = []
        for message in messages:
            numbered = message.model_copy(update={"seq": self._sent})
            self._sent += 1
            frames.append(seal(numbered, self._send_key))
        return frames

    def _abort(self, reason: str) -> None:
        log.info("%s session %s aborted: %s", self.role, self.session_id, reason)
        self.state = SessionState.ABORTED
        self.reason = reason
        self._key = None

    def _on_abort(self, message: QkdMessage) -> list[_Message]:
        self._abort(f"peer aborted: {message.reason}")  # type: ignore[union-attr]
        return []


def session_seed(seed: int, party: int, hmu: str, session: int) -> np.random.SeedSequence:
    """The random streams of one party (``party``: a tag per role) in one HMU's
    ``session``-th key session: fixed by the run's seed, the link and the session's number,
    whatever order the HMUs' sessions run in, so a seeded run draws the same keys."""
    return np.random.SeedSequence([seed, party, *hmu.encode(), session])
