"""The fog aggregator's pure core: rounds opened by the cloud, closed by answers or deadline."""

import numpy as np
import pytest

from iomt.errors import ProtocolViolation
from iomt.fedlearn.defence_config import DefenceConfig, ScreeningConfig
from iomt.fedlearn.strategy import build_aggregator
from iomt.server_agent.events import Aggregate, Invite
from iomt.server_agent.fog_tier import MARGIN, FogTier, partial_update
from iomt.wire.messages import ModelUpdate

MEMBERS = ["hmu-01", "hmu-03", "hmu-05"]


def tier(share: int = 3) -> FogTier:
    t = FogTier(MEMBERS, share, np.random.default_rng(0))
    for m in MEMBERS:
        assert t.status(m, True, 0.0) == []
    return t


def test_the_cloud_opens_the_round_and_every_answer_closes_it():
    t = tier()
    (invite,) = t.invited(4, 3, 10.0, now=100.0)
    assert invite == Invite(4, tuple(MEMBERS), 10.0 * (1 - MARGIN), 3)
    assert t.next_wakeup() == pytest.approx(100.0 + 8.0)
    assert t.update("hmu-01", 4, 3, "a", 101.0) == []
    assert t.update("hmu-03", 4, 3, "b", 101.0) == []
    (agg,) = t.update("hmu-05", 4, 3, "c", 102.0)
    assert agg == Aggregate(4, tuple(MEMBERS), {"hmu-01": "a", "hmu-03": "b", "hmu-05": "c"},
                            False, 3)  # fmt: skip
    assert t.current is None and t.next_wakeup() is None


def test_a_share_of_the_online_members_is_invited_and_the_deadline_closes_the_round():
    t = tier(share=2)
    t.status("hmu-05", False, 1.0)
    (invite,) = t.invited(1, 0, 5.0, now=10.0)
    assert invite.hmus == ("hmu-01", "hmu-03")  # hmu-05 is away
    assert t.update("hmu-01", 1, 0, "a", 11.0) == []
    assert t.tick(13.9) == []
    (agg,) = t.tick(14.0)
    assert agg.timed_out and agg.updates == {"hmu-01": "a"}


def test_a_member_leaving_mid_round_is_not_waited_for():
    t = tier()
    t.invited(1, 0, 5.0, now=0.0)
    t.update("hmu-01", 1, 0, "a", 1.0)
    t.update("hmu-03", 1, 0, "b", 1.0)
    (agg,) = t.status("hmu-05", False, 2.0)
    assert not agg.timed_out and set(agg.updates) == {"hmu-01", "hmu-03"}


def test_no_member_online_closes_at_once_with_nothing():
    t = FogTier(MEMBERS, 3, np.random.default_rng(0))
    (agg,) = t.invited(2, 1, 5.0, now=0.0)
    assert agg.updates == {} and agg.selected == ()


def test_bad_updates_are_refused_as_the_peers_fault():
    t = tier()
    with pytest.raises(ProtocolViolation, match="none open"):
        t.update("hmu-01", 1, 0, "a", 0.0)
    t.invited(1, 0, 5.0, now=0.0)
    for member, round_, version, why in (("hmu-01", 2, 0, "none open"),
                                         ("hmu-01", 1, 7, "none open"),
                                         ("hmu-02", 1, 0, "not invited")):  # fmt: skip
        with pytest.raises(ProtocolViolation, match=why):
            t.update(member, round_, version, "x", 0.0)
    t.update("hmu-01", 1, 0, "a", 0.0)
    with pytest.raises(ProtocolViolation, match="second update"):
        t.update("hmu-01", 1, 0, "a", 0.0)
    with pytest.raises(ProtocolViolation, match="not a member"):
        t.status("hmu-02", True, 0.0)


def test_a_new_invitation_drops_a_round_the_cloud_gave_up_on():
    t = tier()
    t.invited(1, 0, 5.0, now=0.0)
    t.update("hmu-01", 1, 0, "a", 1.0)
    (invite,) = t.invited(2, 1, 5.0, now=9.0)
    assert invite.round == 2 and t.current is not None and t.current.updates == {}


def update(samples: int, loss: float) -> ModelUpdate:
    return ModelUpdate(num_samples=samples, loss=loss, train_seconds=0.1, tensors=[])


def test_the_partial_weighs_the_samples_it_kept():
    previous = {"w": np.zeros(4, np.float32)}
    honest = {f"h{i}": ({"w": np.full(4, 1.0 + 0.01 * i, np.float32)}, update(100, 0.5))
              for i in range(6)}  # fmt: skip
    poisoned = {"bad": ({"w": np.full(4, -50.0, np.float32)}, update(300, 9.0))}
    plain = partial_update(build_aggregator(DefenceConfig()), previous,
                           Aggregate(1, (), dict(honest), False))  # fmt: skip
    assert plain.samples == 600 and plain.loss == pytest.approx(0.5)
    assert plain.weights["w"] == pytest.approx(np.full(4, 1.025), abs=1e-6)
    screened = DefenceConfig(screening=ScreeningConfig(enabled=True))
    kept = partial_update(build_aggregator(screened), previous,
                          Aggregate(1, (), {**honest, **poisoned}, False))  # fmt: skip
    assert kept.result.flagged == frozenset({"bad"})
    assert kept.samples == 600 and kept.loss == pytest.approx(0.5)
    assert (kept.weights["w"] > 0).all()
    empty = partial_update(build_aggregator(DefenceConfig()), previous, Aggregate(1, (), {}, True))
    assert empty.samples == 0 and empty.weights is previous


def test_when_nothing_was_kept_the_fog_asks_the_members_it_has_not_asked_yet():
    t = tier(share=2)
    (invite,) = t.invited(5, 2, 10.0, now=0.0)  # the fog's own deadline: 8 s from now
    assert t.retry(1.0) == []  # the round is still open: nothing to retry
    for member in invite.hmus:
        actions = t.update(member, 5, 2, "flagged", 1.0)
    assert isinstance(actions[0], Aggregate)
    (again,) = t.retry(3.0)  # the defence kept none of them
    assert again.round == 5 and again.version == 2 and again.deadline_s == pytest.approx(5.0)
    (rest,) = set(MEMBERS) - set(invite.hmus)
    assert again.hmus == (rest,)
    (agg,) = t.update(rest, 5, 2, "ok", 4.0)
    assert agg.updates == {rest: "ok"} and agg.round == 5
    assert t.retry(4.5) == []  # everyone has been asked
    t.invited(6, 3, 10.0, now=5.0)
    assert t.retry(6.0) == []  # a new cloud round starts afresh
