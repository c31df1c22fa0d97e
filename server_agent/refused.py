"""The server's books of refused messages: counted by reason and by peer, logged in
summaries, reported as security events, and watched for floods."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable

from iomt.errors import PeerError
from iomt.fedlearn.defence_config import FloodGuardConfig
from iomt.monitoring import measurements
from iomt.monitoring.point import Point
from iomt.refusals import RefusalLog, security_event_kind
from iomt.server_agent.flood_guard import FloodGuard
from iomt.wire import topics

log = logging.getLogger(__name__)


class Refused:
    """Every message the server refused; ``refused`` names an HMU that floods, once."""

    def __init__(
        self,
        run_id: str,
        who: str,
        hmus: list[str],
        guard: FloodGuardConfig,
        emit: Callable[[Point], None],
    ) -> None:
        self.run_id = run_id
        self.hmus = frozenset(hmus)
        self.by_reason: Counter[str] = Counter()
        self.by_peer: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.guard = FloodGuard(guard)
        self._log = RefusalLog(log, who)
        self._emit = emit

    def refused(self, topic: str, exc: PeerError, now: float, round_: int | None) -> str | None:
        """Count one refused message; returns its HMU if that HMU has just started flooding."""
        reason = type(exc).__name__
        self.by_reason[reason] += 1
        sender = topics.agent_of(topic, self.run_id)
        link = topics.qkd_link_of(topic, self.run_id)
        hmu = sender or (link[0] if link else None)
        peer = hmu or topic
        self.by_peer[peer][reason] += 1
        self._log.refused(peer, topic, str(exc))
        self._emit(measurements.security_event(security_event_kind(exc), hmu=hmu, round=round_))
        if hmu in self.hmus and self.guard.refused(hmu, now):
            return hmu
        return None

    def flush(self) -> None:
        self._log.flush()

    def report(self) -> dict[str, dict[str, int]]:
        """Peer -> refused messages by reason (``refused_by_peer`` in results.json)."""
        return {peer: dict(reasons) for peer, reasons in sorted(self.by_peer.items())}
