"""Refusals per HMU in a sliding window: a flood trips the guard once; bad luck does not."""

from iomt.fedlearn.defence_config import FloodGuardConfig
from iomt.server_agent.flood_guard import FloodGuard


def test_a_burst_trips_the_guard_once():
    guard = FloodGuard(FloodGuardConfig(refusals=5, window_s=1.0))
    tripped = [guard.refused("hmu-02", 10.0 + i * 0.01) for i in range(20)]
    assert tripped == [False] * 4 + [True] + [False] * 15
    assert guard.flooding == {"hmu-02": 10.04}


def test_refusals_spread_over_time_never_trip_it():
    guard = FloodGuard(FloodGuardConfig(refusals=5, window_s=1.0))
    assert not any(guard.refused("hmu-01", t * 0.3) for t in range(100))  # 3-4 per second


def test_hmus_are_counted_apart_and_zero_turns_it_off():
    guard = FloodGuard(FloodGuardConfig(refusals=3, window_s=1.0))
    assert [guard.refused(h, 0.0) for h in ("a", "b", "a", "b")] == [False] * 4
    assert guard.refused("a", 0.1) and not guard.refused("b", 2.0)
    off = FloodGuard(FloodGuardConfig(refusals=0))
    assert not any(off.refused("a", 0.0) for _ in range(1000))
