"""A flood of refused messages makes a few log lines, and every refusal is still told."""

from __future__ import annotations

import logging

import pytest

from iomt.refusals import RefusalLog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_is_one_line_then_one_summary_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    refusals = RefusalLog(logging.getLogger("t"), "server", interval_s=10.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="t"):
        for i in range(10_000):
            clock.now = i * 0.001  # 10,000 messages in 10 s
            refusals.refused("hmu-07", "iomt/r/tier/server/hmu-07/update", f"bad {i}")
        refusals.refused("hmu-02", "x", "once")  # another peer is told at once
        clock.now = 10.5
        refusals.refused("hmu-07", "y", "after the interval")
        refusals.flush()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "server: rejected message on iomt/r/tier/server/hmu-07/update: bad 0",
        "server: rejected message on x: once",
        "server: 9999 more messages from hmu-07 rejected within 10 s (last: bad 9999)",
        "server: rejected message on y: after the interval",
    ]


def test_flush_tells_what_is_held_back_once(caplog: pytest.LogCaptureFixture) -> None:
    refusals = RefusalLog(logging.getLogger("t"), "hmu-01", clock=Clock())
    with caplog.at_level(logging.WARNING, logger="t"):
        for _ in range(3):
            refusals.refused("server", "inbox", "stale")
        refusals.flush()
        refusals.flush()
    assert [r.getMessage() for r in caplog.records][-1] == (
        "hmu-01: 2 more messages from server rejected within 10 s (last: stale)"
    )
    assert len(caplog.records) == 2
