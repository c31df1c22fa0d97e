"""Asynchronous federation's state machine, driven with in-memory events and a fake clock:
K HMUs kept busy, every M updates aggregated, staleness weighted and bounded."""

from types import SimpleNamespace

import numpy as np
import pytest

from iomt.errors import ProtocolViolation
from iomt.fedlearn.defence_config import DefenceConfig
from iomt.fedlearn.strategy import build_aggregator
from iomt.server_agent.async_coordinator import AsyncCoordinator, staleness_weight
from iomt.server_agent.coordinator import (
    Aggregate,
    Finish,
    HmuStatus,
    Phase,
    RoundDone,
    Tick,
    UpdateArrived,
)
from iomt.server_agent.rounds import ModelHistory, close_round

HMUS = [f"hmu-0{i}" for i in range(1, 7)]


def make(k=4, m=2, bound=1, a=0.5, rounds=10, min_updates=1, seed=0, deadline=10.0):
    return AsyncCoordinator(
        HMUS, buffer_size=m, staleness_bound=bound, staleness_exponent=a,
        clients_per_round=k, rounds=rounds, round_deadline_s=deadline, online_timeout_s=30.0,
        rng=np.random.default_rng(seed), now=0.0, min_updates=min_updates,
    )  # fmt: skip


def start(core, now=1.0):
    actions = []
    for hmu in HMUS:
        actions += core.handle(HmuStatus(hmu, True), now)
    (invite,) = actions
    return invite


def answer(core, hmu, now=2.0):
    round_, version = core.in_flight[hmu]
    return core.handle(UpdateArrived(hmu, round_, version, f"update of {hmu}"), now)


def test_k_hmus_train_at_once_and_every_m_updates_are_aggregated():
    core = make(k=4, m=2)
    invite = start(core)
    assert len(invite.hmus) == 4 and invite.version == 0 and set(core.in_flight) == set(invite.hmus)
    first, second, third, fourth = invite.hmus
    assert answer(core, first) == []  # one buffered: not yet M
    (agg,) = answer(core, second)
    assert isinstance(agg, Aggregate) and set(agg.updates) == {first, second}
    assert agg.bases == {first: 0, second: 0} and agg.scale == {first: 1.0, second: 1.0}
    assert core.phase is Phase.AGGREGATING
    assert answer(core, third) == []  # arrives while aggregating: waits for the next buffer
    (refill,) = core.handle(RoundDone(1), 3.0)
    assert core.version == 1 and refill.version == 1 and refill.round == 2
    assert not set(refill.hmus) & {third, fourth}  # one is buffered, one still training
    assert len(core.in_flight) + len(core.buffer) == 4  # K busy again
    (agg2,) = answer(core, fourth)  # trained from version 0: staleness 1, within the bound
    assert agg2.bases == {third: 0, fourth: 0}
    assert agg2.scale == {third: staleness_weight(1, 0.5), fourth: pytest.approx(2**-0.5)}


def test_an_update_staler_than_the_bound_is_refused_and_its_hmu_gets_the_newest_model():
    core = make(k=4, m=1, bound=1)
    invite = start(core)
    slow = invite.hmus[0]
    for round_ in (1, 2):  # two aggregations while the slow HMU trains on version 0
        fast = next(h for h in core.in_flight if h != slow)
        (agg,) = answer(core, fast)
        core.handle(RoundDone(round_), 3.0)
    assert core.version == 2 and core.in_flight[slow] == (1, 0)
    (invite,) = answer(core, slow)  # staleness 2 > 1: refused, invited again
    assert invite.hmus == (slow,) and invite.version == 2 and core.in_flight[slow] == (3, 2)
    assert core.refused_stale == {2: 1} and slow not in core.buffer
    report = core.report()
    assert report["refused_stale"] == 1 and report["applied"] == 2
    assert report["staleness_histogram"] == {"0": 1, "1": 1}  # the 2nd fast one began at v0


def test_an_update_buffered_in_time_but_aggregated_too_late_is_refused_then():
    core = make(k=2, m=2, bound=0)
    a, b = start(core).hmus
    (agg,) = answer(core, a) + answer(core, b)
    assert core.phase is Phase.AGGREGATING
    core.in_flight["hmu-05"] = (1, 0)  # an HMU still training on version 0
    answer(core, "hmu-05")  # staleness 0 now: buffered while the runner aggregates
    core.handle(RoundDone(1), 3.0)  # version 1: its update is now 1 behind, bound 0
    while core.phase is Phase.TRAINING:
        actions = core.handle(Tick(), 20.0)
    (agg2,) = actions
    assert agg2.timed_out and "hmu-05" not in agg2.updates and core.refused_stale == {1: 1}


def test_the_deadline_aggregates_what_is_buffered_and_an_empty_one_ends_the_run():
    core = make(k=3, m=3, min_updates=1)
    invite = start(core)
    answer(core, invite.hmus[0])
    (agg,) = core.handle(Tick(), 11.5)  # 10 s after the round opened at 1.0
    assert agg.timed_out and set(agg.updates) == {invite.hmus[0]}
    core.handle(RoundDone(1), 12.0)
    (agg,) = core.handle(Tick(), 30.0)
    assert agg.updates == {}
    (finish,) = core.handle(RoundDone(2), 30.0)
    assert isinstance(finish, Finish) and not finish.completed and "min_updates" in finish.reason


def test_an_hmu_that_leaves_is_replaced_and_the_last_answers_close_the_buffer():
    core = make(k=2, m=2)
    a, b = start(core).hmus
    answer(core, a)
    (invite,) = core.handle(HmuStatus(b, False), 3.0)  # b is gone: another idle HMU trains
    assert b not in core.in_flight and len(invite.hmus) == 1 and invite.hmus[0] not in (a, b)
    for hmu in HMUS:
        if hmu not in (a,) and hmu not in invite.hmus:
            core.handle(HmuStatus(hmu, False), 3.0)
    (agg,) = core.handle(HmuStatus(invite.hmus[0], False), 3.5)  # nobody left to answer
    assert set(agg.updates) == {a} and not agg.timed_out


def test_updates_out_of_turn_are_refused_and_change_nothing():
    core = make()
    invite = start(core)
    idle = next(h for h in HMUS if h not in invite.hmus)
    with pytest.raises(ProtocolViolation, match="not training"):
        core.handle(UpdateArrived(idle, 1, 0, "x"), 2.0)
    with pytest.raises(ProtocolViolation, match="version"):
        core.handle(UpdateArrived(invite.hmus[0], 1, 5, "x"), 2.0)
    assert core.buffer == {} and len(core.in_flight) == 4


def test_the_run_completes_after_its_rounds_and_seeds_reproduce_the_invitations():
    def trace(seed):
        core, events = make(k=3, m=2, rounds=3, seed=seed), []
        invite, now = start(core), 2.0
        events.append(invite.hmus)
        while core.phase is not Phase.FINISHED:
            (hmu,) = sorted(core.in_flight)[:1]
            for action in answer(core, hmu, now):
                if isinstance(action, Aggregate):
                    for after in core.handle(RoundDone(action.round), now):
                        events.append(getattr(after, "hmus", after))
            now += 1.0
        return events

    assert trace(1) == trace(1) and trace(1) != trace(2)
    assert trace(1)[-1] == Finish(True, "completed 3 rounds")
    with pytest.raises(ValueError, match="buffer_size"):
        make(k=2, m=3)


def test_a_stale_update_adds_its_change_onto_the_current_model_at_its_weight():
    """``close_round`` as the runner calls it: FedAvg of a fresh update (100 samples) and
    one trained from the version before (100 samples, staleness 1, a = 0.5)."""
    v0, v1 = {"w": np.zeros(3)}, {"w": np.ones(3)}
    history = ModelHistory(depth=5)
    history.add(0, v0)
    history.add(1, v1)
    fresh = {"w": v1["w"] + np.array([1.0, 0.0, 0.0])}  # +1 on the first value
    stale = {"w": v0["w"] + np.array([0.0, 4.0, 0.0])}  # +4 on the second, from v0
    weight = staleness_weight(1, 0.5)
    agg = Aggregate(
        round=2, selected=("a", "b"), timed_out=False, version=1,
        updates={"a": (fresh, SimpleNamespace(num_samples=100)),
                 "b": (stale, SimpleNamespace(num_samples=100))},
        bases={"a": 1, "b": 0}, scale={"a": 1.0, "b": weight},
    )  # fmt: skip
    closed = close_round(build_aggregator(DefenceConfig()), v1, agg, lambda w: None, history)
    share = weight / (1 + weight)  # the stale update's share of the mean
    np.testing.assert_allclose(closed.weights["w"], [1 + (1 - share), 1 + 4 * share, 1.0])


def test_a_server_learning_rate_moves_the_model_that_share_of_the_way():
    current = {"w": np.zeros(2)}
    agg = Aggregate(
        round=1, selected=("a",), timed_out=False, version=0,
        updates={"a": ({"w": np.array([2.0, -4.0])}, SimpleNamespace(num_samples=10))},
    )  # fmt: skip
    fedavg = build_aggregator(DefenceConfig())
    closed = close_round(fedavg, current, agg, lambda w: None, server_lr=0.25)
    np.testing.assert_allclose(closed.weights["w"], [0.5, -1.0])
