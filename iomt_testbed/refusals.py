"""Logging a peer's refused messages without drowning the log: one line per peer per interval.

A flood of 10,000 forged or malformed messages is one event for the reader of a log,
not 10,000 lines.  The first refusal from a peer is logged at once; further ones within
``interval_s`` are counted and summarised in one line (how many, and the last reason)
when the interval is over or at ``flush()``.  Every refusal is still counted where the
agent counts them (``rejected`` in results.json); this only shapes the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from iomt.errors import AuthenticationError, PeerError, ProtocolViolation, ReplayError


@dataclass
class _Peer:
    since: float
    held: int = 0
    last: str = ""


class RefusalLog:
    """``refused(peer, where, reason)`` for every refused message; ``flush()`` at the end."""

    def __init__(
        self,
        logger: logging.Logger,
        who: str,
        *,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._who = who
        self._interval_s = interval_s
        self._clock = clock
        self._peers: dict[str, _Peer] = {}

    def refused(self, peer: str, where: str, reason: str) -> None:
        now = self._clock()
        state = self._peers.get(peer)
        if state is not None and now - state.since < self._interval_s:
            state.held += 1
            state.last = reason
            return
        if state is not None:
            self._summary(peer, state)
        self._log.warning("%s: rejected message on %s: %s", self._who, where, reason)
        self._peers[peer] = _Peer(since=now)

    def flush(self) -> None:
        """Summarise what is held back (at the end of a run)."""
        for peer, state in self._peers.items():
            self._summary(peer, state)
            state.held = 0

    def _summary(self, peer: str, state: _Peer) -> None:
        if state.held:
            self._log.warning(
                "%s: %d more messages from %s rejected within %g s (last: %s)",
                self._who, state.held, peer, self._interval_s, state.last,
            )  # fmt: skip


def security_event_kind(exc: PeerError) -> str:
    """The security-event kind a refused message counts as."""
    if isinstance(exc, ReplayError):
        return "replayed"
    if isinstance(exc, AuthenticationError):
        return "tampered"
    if isinstance(exc, ProtocolViolation):
        return "unauthorised"
    return "malformed"
