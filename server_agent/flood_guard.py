"""Telling a flood from bad luck: refusals per HMU in a sliding window; no I/O.

An honest HMU's message is refused now and then (a replay by a man in the middle, a
frame damaged on the way).  Hundreds within a couple of seconds are a flood: the HMU's
credentials are being used against the run, and the server isolates it at the broker
(``iomt.server_agent.isolation``), as it does an eavesdropped HMU.
"""

from __future__ import annotations

from collections import deque

from iomt.fedlearn.defence_config import FloodGuardConfig


class FloodGuard:
    """``refused(hmu, now)`` for every refused message; True once, when ``hmu`` floods."""

    def __init__(self, cfg: FloodGuardConfig) -> None:
        self.cfg = cfg
        self._times: dict[str, deque[float]] = {}
        self.flooding: dict[str, float] = {}
        """HMU -> when (monotonic) it crossed the limit."""

    def refused(self, hmu: str, now: float) -> bool:
        if self.cfg.refusals == 0 or hmu in self.flooding:
            return False
        times = self._times.setdefault(hmu, deque())
        times.append(now)
        while times and now - times[0] > self.cfg.window_s:
            times.popleft()
        if len(times) < self.cfg.refusals:
            return False
        self.flooding[hmu] = now
        del self._times[hmu]
        return True
