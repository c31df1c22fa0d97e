"""Isolating an HMU (its key session aborted, or it floods): recorded, reported, and cut off
at the broker."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from iomt.monitoring import measurements
from iomt.monitoring.point import Point

log = logging.getLogger(__name__)


class Isolation:
    """The HMUs isolated so far, in order."""

    def __init__(
        self,
        revoke: Callable[[str], Awaitable[bool]] | None,
        emit: Callable[[Point], None],
    ) -> None:
        self._revoke = revoke
        self._emit = emit
        self.isolated: list[str] = []
        self.details: dict[str, dict[str, float | str]] = {}
        """HMU -> why, and when (wall clock, seconds) the broker enforced it."""

    async def isolate(self, hmu: str, reason: str) -> None:
        """Never trust ``hmu`` again, and withdraw its right to publish updates."""
        log.warning("isolating %s: %s", hmu, reason)
        self._emit(measurements.security_event("isolation", hmu=hmu))
        self.isolated.append(hmu)
        await self.revoke(hmu)
        self.details[hmu] = {"reason": reason, "at": time.time()}

    async def revoke(self, hmu: str) -> None:
        """Withdraw ``hmu``'s right to publish updates at the broker, where it can."""
        if self._revoke is not None and not await self._revoke(hmu):
            log.warning("the broker cannot revoke %s; its updates are ignored here", hmu)
