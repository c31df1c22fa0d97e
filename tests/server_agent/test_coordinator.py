"""The server's round state machine, driven with in-memory events and a fake clock."""

import numpy as np
import pytest

from iomt.errors import PeerError, ProtocolViolation, StateError, UnexpectedEvent
from iomt.server_agent.coordinator import (
    TRANSITIONS,
    Abort,
    Aggregate,
    BrokerBack,
    Event,
    Excluded,
    Finish,
    HmuStatus,
    Invite,
    KeyAccepted,
    MessagesDropped,
    Phase,
    Rekey,
    RoundCoordinator,
    RoundDone,
    Tick,
    UpdateArrived,
)

HMUS = ["hmu-01", "hmu-02", "hmu-03", "hmu-04"]


def make(k=2, rounds=2, seed=0, deadline=10.0, online_timeout=30.0):
    return RoundCoordinator(
        HMUS,
        clients_per_round=k,
        rounds=rounds,
        round_deadline_s=deadline,
        online_timeout_s=online_timeout,
        rng=np.random.default_rng(seed),
        now=0.0,
    )


def bring_online(core, hmus=HMUS, now=1.0):
    actions = []
    for h in hmus:
        actions += core.hmu_status(h, True, now)
    return actions


def test_first_round_opens_when_every_hmu_is_online():
    core = make()
    assert bring_online(core, HMUS[:3]) == []
    (invite,) = core.hmu_status("hmu-04", True, 1.0)
    assert isinstance(invite, Invite) and invite.round == 1 and len(invite.hmus) == 2
    assert core.phase is Phase.TRAINING


def test_selection_is_reproducible_from_the_seed_and_varies_with_it():
    picks = []
    for seed in (1, 1, 2, 3, 4):
        core = make(seed=seed)
        picks.append(bring_online(core)[0].hmus)
    assert picks[0] == picks[1]
    assert len(set(picks)) > 1


def test_round_closes_when_all_selected_answer_then_finishes():
    core = make(rounds=2)
    (invite,) = bring_online(core)
    first, second = invite.hmus
    assert core.update_arrived(first, 1, "u1", 2.0) == []
    (agg,) = core.update_arrived(second, 1, "u2", 2.5)
    assert isinstance(agg, Aggregate) and agg.updates == {first: "u1", second: "u2"}
    assert not agg.timed_out
    (invite2,) = core.round_done(1, 3.0)
    assert invite2.round == 2
    for h in invite2.hmus:
        core.update_arrived(h, 2, "u", 4.0)
    (finish,) = core.round_done(2, 5.0)
    assert isinstance(finish, Finish) and finish.completed
    assert core.phase is Phase.FINISHED


def test_deadline_closes_a_round_with_what_arrived():
    core = make(k=3, deadline=10.0)
    (invite,) = bring_online(core, now=0.0)
    core.update_arrived(invite.hmus[0], 1, "u", 1.0)
    assert core.tick(9.9) == []
    assert core.next_wakeup() == pytest.approx(10.0)
    (agg,) = core.tick(10.0)
    assert agg.timed_out and list(agg.updates) == [invite.hmus[0]]


def test_offline_selected_hmu_does_not_hold_the_round():
    core = make(k=2)
    (invite,) = bring_online(core)
    a, b = invite.hmus
    core.update_arrived(a, 1, "u", 2.0)
    (agg,) = core.hmu_status(b, False, 2.5)
    assert list(agg.updates) == [a]
    (invite2,) = core.round_done(1, 3.0)
    assert b not in invite2.hmus


def test_an_hmu_back_from_a_drop_mid_round_is_not_waited_for():
    """Churn: its connection dropped mid-round, its training for the round was lost; back
    online before the round ends, it must not hold the round to its deadline."""
    core = make(k=3)
    (invite,) = bring_online(core)
    a, b, c = invite.hmus
    assert core.hmu_status(b, False, 2.0) == []  # a and c still train
    assert core.hmu_status(b, True, 3.0) == []  # back, with nothing for round 1
    core.update_arrived(a, 1, "u", 4.0)
    (agg,) = core.update_arrived(c, 1, "u", 5.0)
    assert sorted(agg.updates) == sorted([a, c]) and not agg.timed_out
    (invite2,) = core.round_done(1, 6.0)
    assert b in invite2.hmus  # and it takes part in the next round


@pytest.mark.parametrize(
    "who, rnd, match",
    [("hmu-01", 2, "round 2"), ("hmu-09", 1, "not selected")],
)
def test_unwanted_updates_are_violations(who, rnd, match):
    core = make(k=4)
    bring_online(core)
    with pytest.raises(ProtocolViolation, match=match):
        core.update_arrived(who, rnd, "u", 2.0)


def test_duplicate_update_is_a_violation():
    core = make(k=4)
    bring_online(core)
    core.update_arrived("hmu-01", 1, "u", 2.0)
    with pytest.raises(ProtocolViolation, match="second"):
        core.update_arrived("hmu-01", 1, "u", 2.0)


def test_online_timeout_starts_with_who_is_there_or_gives_up():
    core = make(k=3, online_timeout=30.0)
    bring_online(core, ["hmu-02"])
    (invite,) = core.tick(30.0)
    assert invite.hmus == ("hmu-02",)
    nobody = make(online_timeout=30.0)
    (finish,) = nobody.tick(31.0)
    assert isinstance(finish, Finish) and not finish.completed


def test_excluded_hmu_is_never_selected_again():
    core = make(k=4, rounds=3)
    bring_online(core)
    assert core.exclude("hmu-03", 2.0) == []  # three others still owe updates
    for h in ("hmu-01", "hmu-02", "hmu-04"):
        actions = core.update_arrived(h, 1, "u", 2.0)
    assert isinstance(actions[0], Aggregate)
    (invite,) = core.round_done(1, 3.0)
    assert "hmu-03" not in invite.hmus
    with pytest.raises(ProtocolViolation):
        core.update_arrived("hmu-03", 2, "u", 4.0)


def test_unknown_status_sender_is_a_violation():
    with pytest.raises(ProtocolViolation, match="unknown"):
        make().hmu_status("hmu-99", True, 1.0)


def keyed(rounds=4, rekey=2, k=4):
    return RoundCoordinator(
        HMUS,
        clients_per_round=k,
        rounds=rounds,
        round_deadline_s=10.0,
        online_timeout_s=30.0,
        rng=np.random.default_rng(0),
        now=0.0,
        keys_required=True,
        rekey_rounds=rekey,
        key_deadline_s=5.0,
    )


def test_no_hmu_trains_without_a_key():
    core = keyed()
    (rekey,) = bring_online(core)
    assert isinstance(rekey, Rekey) and rekey.hmus == tuple(HMUS)
    assert core.phase is Phase.KEYING
    for h in HMUS[:3]:
        assert core.key_accepted(h, 1.5) == []
    (invite,) = core.exclude("hmu-04", 1.6)  # its link aborted: isolated
    assert isinstance(invite, Invite) and invite.hmus == tuple(HMUS[:3])


def test_keys_are_renewed_every_rekey_rounds():
    core = keyed(rounds=3, rekey=2)
    bring_online(core)
    for h in HMUS:
        core.key_accepted(h, 1.0)
    for rnd in (1, 2):
        for h in HMUS:
            actions = core.update_arrived(h, rnd, "u", rnd + 1.0)
        assert isinstance(actions[0], Aggregate)
        (nxt,) = core.round_done(rnd, rnd + 1.5)
        if rnd == 1:
            assert isinstance(nxt, Invite)  # key still fresh
        else:
            assert isinstance(nxt, Rekey) and core.keyed == set()


def test_keying_deadline_goes_on_with_the_keyed():
    core = keyed()
    bring_online(core, now=0.0)
    core.key_accepted("hmu-02", 0.5)
    assert core.tick(4.9) == []
    (invite,) = core.tick(5.0 + 1.0)
    assert invite.hmus == ("hmu-02",)


# -- the transition table, cell by cell ------------------------------------------------


def in_phase(phase: Phase) -> RoundCoordinator:
    """A coordinator brought into ``phase`` by ordinary events."""
    keyed = phase is Phase.KEYING
    core = RoundCoordinator(
        HMUS,
        clients_per_round=4,
        rounds=2,
        round_deadline_s=10.0,
        online_timeout_s=30.0,
        rng=np.random.default_rng(0),
        now=0.0,
        keys_required=keyed,
    )
    if phase is Phase.WAITING:
        return core
    bring_online(core)
    if phase is Phase.AGGREGATING:
        for h in HMUS:
            core.update_arrived(h, 1, "u", 2.0)
    if phase is Phase.FINISHED:
        core.abort("stopped")
    assert core.phase is phase
    return core


def sample_event(event_type: type[Event], core: RoundCoordinator) -> Event:
    number = core.current.number if core.current else 1
    return {
        HmuStatus: HmuStatus("hmu-01", True),
        KeyAccepted: KeyAccepted("hmu-01"),
        Excluded: Excluded("hmu-04"),
        UpdateArrived: UpdateArrived("hmu-01", number, core.version, "u"),
        Tick: Tick(),
        RoundDone: RoundDone(number),
        Abort: Abort("stop"),
        BrokerBack: BrokerBack(),
        MessagesDropped: MessagesDropped(),
    }[event_type]


EVENT_TYPES = [
    HmuStatus, KeyAccepted, Excluded, UpdateArrived, Tick, RoundDone, Abort, BrokerBack,
    MessagesDropped,
]  # fmt: skip


@pytest.mark.parametrize("phase", list(Phase), ids=lambda p: p.value)
@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda e: e.__name__)
def test_every_cell_of_the_transition_table(phase: Phase, event_type: type[Event]) -> None:
    core = in_phase(phase)
    event = sample_event(event_type, core)
    if (phase, event_type) in TRANSITIONS:
        core.handle(event, 3.0)  # accepted: no error
        return
    expected = UnexpectedEvent if event_type.from_peer else StateError
    with pytest.raises(expected, match=f"{event_type.__name__} while {phase.value}"):
        core.handle(event, 3.0)
    assert core.phase is phase  # a refused event changes nothing


def test_a_refused_peer_event_is_a_peer_error_and_a_refused_local_one_is_not() -> None:
    assert issubclass(UnexpectedEvent, PeerError)
    assert not issubclass(StateError, PeerError)


# -- versions ---------------------------------------------------------------------------


def test_every_aggregation_makes_a_new_version_and_invitations_carry_it() -> None:
    core = make(k=4, rounds=3)
    (invite,) = bring_online(core)
    assert invite.version == 0 and core.accepted_versions() == {0}
    for h in invite.hmus:
        actions = core.update_arrived(h, 1, "u", 2.0, version=0)
    (agg,) = actions
    assert agg.version == 0
    (invite2,) = core.round_done(1, 3.0)
    assert invite2.version == 1 == core.version
    assert core.accepted_versions() == {1}


def test_a_synchronous_round_refuses_an_update_from_another_version() -> None:
    core = make(k=4, rounds=3)
    (invite,) = bring_online(core)
    for h in invite.hmus:
        core.update_arrived(h, 1, "u", 2.0)
    core.round_done(1, 3.0)
    with pytest.raises(ProtocolViolation, match="trained from version 0"):
        core.update_arrived("hmu-01", 2, "stale", 4.0, version=0)
    assert core.current.updates == {}
    assert core.update_arrived("hmu-01", 2, "fresh", 4.0, version=1) == []


@pytest.mark.parametrize("event", [BrokerBack(), MessagesDropped()], ids=lambda e: type(e).__name__)
def test_when_messages_may_be_lost_the_rounds_silent_hmus_are_invited_again(event) -> None:
    core = make(k=4, rounds=2)
    (invite,) = bring_online(core)
    core.update_arrived("hmu-01", 1, "u", 2.0)
    (again,) = core.handle(event, 3.0)
    assert again.again and again.round == 1 and again.version == invite.version
    assert again.hmus == ("hmu-02", "hmu-03", "hmu-04")
    assert core.phase is Phase.TRAINING and core.current.updates == {"hmu-01": "u"}


def test_a_round_due_while_every_hmu_is_away_waits_for_one_to_come_back():
    core = make(k=2, rounds=3, online_timeout=30.0)
    (invite,) = bring_online(core)
    actions = []
    for hmu in HMUS:  # churn: everyone drops off during round 1, which closes at once
        actions += core.hmu_status(hmu, False, 2.0)
    (agg,) = actions
    assert agg.updates == {} and core.phase is Phase.AGGREGATING
    core.min_updates = 0
    assert core.round_done(1, 11.0) == [] and core.phase is Phase.WAITING
    (invite,) = core.hmu_status("hmu-03", True, 12.0)  # one is back: round 2 opens
    assert invite.round == 2 and invite.hmus == ("hmu-03",)
    (agg,) = core.hmu_status("hmu-03", False, 13.0)
    assert core.round_done(2, 13.0) == [] and core.phase is Phase.WAITING
    (finish,) = core.handle(Tick(), 44.0)  # nobody back within online_timeout_s
    assert not finish.completed and "came back within 30 s" in finish.reason
