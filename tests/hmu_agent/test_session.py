"""The HMU's session core: only the server invites, rounds move forward, stale results drop."""

import pytest

from iomt.errors import ProtocolViolation
from iomt.hmu_agent.session import (
    HmuPhase,
    HmuSession,
    ResendUpdate,
    SendUpdate,
    StartTraining,
    Stop,
)


def test_invite_train_send():
    s = HmuSession("hmu-01", "server")
    assert s.train_request("server", 1) == [StartTraining(1)]
    assert s.phase is HmuPhase.TRAINING
    assert s.training_done(1) == [SendUpdate(1)]
    assert s.phase is HmuPhase.IDLE and s.rounds_trained == 1


def test_only_the_server_may_invite_and_rounds_only_move_forward():
    s = HmuSession("hmu-01", "server")
    with pytest.raises(ProtocolViolation, match="not the server"):
        s.train_request("hmu-02", 1)
    s.train_request("server", 2)
    with pytest.raises(ProtocolViolation, match="already at 2"):
        s.train_request("server", 2)  # a replayed invitation


def test_a_newer_round_makes_the_running_result_stale():
    s = HmuSession("hmu-01", "server")
    s.train_request("server", 1)
    s.train_request("server", 2)
    assert s.training_done(1) == []
    assert s.training_done(2) == [SendUpdate(2)]


def test_run_complete_stops_and_refuses_more_work():
    s = HmuSession("hmu-01", "server")
    with pytest.raises(ProtocolViolation):
        s.run_complete("hmu-02", "x")
    assert s.run_complete("server", "done") == [Stop("done")]
    with pytest.raises(ProtocolViolation, match="ended"):
        s.train_request("server", 5)


def test_a_failed_training_is_not_counted_and_sends_nothing():
    session = HmuSession("hmu-01", "server")
    session.train_request("server", 1)
    assert session.training_failed(1) == []
    assert session.phase is HmuPhase.IDLE and session.rounds_trained == 0
    session.train_request("server", 2)
    assert session.training_done(2) and session.rounds_trained == 1


def test_an_invitation_again_for_the_round_just_sent_sends_the_same_update_again():
    s = HmuSession("hmu-01", "server")
    s.train_request("server", 3)
    assert s.training_done(3) == [SendUpdate(3)]
    assert s.train_request("server", 3) == [ResendUpdate(3)]
    assert s.rounds_trained == 1  # nothing trained twice
    with pytest.raises(ProtocolViolation, match="already at 3"):
        s.train_request("server", 2)


def test_a_round_whose_work_was_lost_can_be_asked_for_again():
    """Churn or a failed training: invited again for the same round (the asynchronous
    server does so when the HMU is back), it trains; a duplicate while training or after
    sending is not a new start."""
    s = HmuSession("hmu-01", "server")
    assert s.train_request("server", 3) == [StartTraining(round=3)]
    with pytest.raises(ProtocolViolation, match="already at 3"):
        s.train_request("server", 3)  # still training
    assert s.training_failed(3) == []
    assert s.train_request("server", 3) == [StartTraining(round=3)]
    assert s.training_done(3) == [SendUpdate(round=3)]
    assert s.train_request("server", 3) == [ResendUpdate(round=3)]  # not a second training
    with pytest.raises(ProtocolViolation, match="already at 3"):
        s.train_request("server", 2)
