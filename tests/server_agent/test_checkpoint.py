"""The server's checkpoint: what a resumed run needs, written and read back whole."""

import numpy as np
import pytest

from iomt.errors import UsageError
from iomt.fedlearn.defence_config import DefenceConfig
from iomt.fedlearn.strategy import build_aggregator, trust_ledger
from iomt.server_agent.checkpoint import Checkpoint, read_checkpoint, write_checkpoint
from iomt.server_agent.coordinator import Invite, RoundCoordinator

HMUS = ["hmu-01", "hmu-02", "hmu-03", "hmu-04", "hmu-05"]


def coordinator(rng: np.random.Generator) -> RoundCoordinator:
    return RoundCoordinator(
        HMUS, clients_per_round=2, rounds=10, round_deadline_s=5.0, online_timeout_s=5.0,
        rng=rng, now=0.0,
    )  # fmt: skip


def play_round(core: RoundCoordinator, now: float, *, close: bool = True) -> tuple[str, ...]:
    """Run the open round (bringing the HMUs online first) to its aggregation, and close it
    unless told not to; returns who was selected."""
    actions = [a for h in HMUS if not core.online[h] for a in core.hmu_status(h, True, now)]
    assert not actions or isinstance(actions[0], Invite)
    selected = core.current.selected
    for h in selected:
        actions = core.update_arrived(h, core.current.number, {}, now)
    if close:
        core.round_done(actions[0].round, now)
    return tuple(selected)


def test_checkpoint_round_trips_every_field(tmp_path):
    rng = np.random.default_rng(7)
    rng.random(3)
    ckpt = Checkpoint(
        run_id="r-1",
        weights={"0.weight": np.arange(6, dtype=np.float32).reshape(2, 3)},
        version=4,
        rounds=[{"round": r} for r in (1, 2, 3, 4)],
        rng=dict(rng.bit_generator.state),
        trust={"trust": {"hmu-01": 0.5}, "history": {"hmu-01": [2, 3]}},
        isolated=["hmu-02"],
        rejected={"ReplayError": 3},
    )
    write_checkpoint(tmp_path, ckpt)
    back = read_checkpoint(tmp_path)
    np.testing.assert_array_equal(back.weights["0.weight"], ckpt.weights["0.weight"])
    assert (back.run_id, back.version, back.completed_rounds) == ("r-1", 4, 4)
    assert (back.trust, back.isolated, back.rejected) == (ckpt.trust, ["hmu-02"], ckpt.rejected)
    again = np.random.default_rng()
    again.bit_generator.state = back.rng
    assert again.random() == rng.random()


def test_a_restored_coordinator_selects_as_the_uninterrupted_one():
    whole = coordinator(np.random.default_rng(11))
    expected = [play_round(whole, float(t)) for t in range(6)]

    first = coordinator(np.random.default_rng(11))
    for t in range(2):
        play_round(first, float(t))
    play_round(first, 2.0, close=False)  # the server checkpoints as round 3 aggregates
    resumed = coordinator(np.random.default_rng(999))  # its own seed is overwritten
    resumed.restore(3, 3, first.rng_state(), ["hmu-05"])
    assert resumed.excluded == {"hmu-05"}
    resumed.excluded.clear()  # compare selections over the same pool
    later = [play_round(resumed, float(t)) for t in range(3, 6)]
    assert later == expected[3:]
    assert resumed.completed_rounds == 6 and resumed.current.number == 7


def test_a_trust_ledger_is_found_behind_screening():
    agg = build_aggregator(DefenceConfig(aggregator="trust", screening={"enabled": True}))
    assert trust_ledger(agg) is not None
    assert trust_ledger(build_aggregator(DefenceConfig())) is None


def test_a_kill_between_the_two_files_leaves_a_pair_that_belongs_together(tmp_path):
    """The model of the next round is written before the state that names it: a state
    read at any moment names the model of its own round."""
    first = Checkpoint("r", {"w": np.ones(2, np.float32)}, 1, [{"round": 1}], rng={})
    write_checkpoint(tmp_path, first)
    folder = tmp_path / "checkpoints"
    np.savez(folder / "global-000002.npz", w=np.zeros(2, np.float32))  # killed right after
    back = read_checkpoint(tmp_path)
    assert back.version == 1
    np.testing.assert_array_equal(back.weights["w"], np.ones(2, np.float32))
    second = Checkpoint(
        "r", {"w": np.zeros(2, np.float32)}, 2, [{"round": 1}, {"round": 2}], rng={}
    )
    write_checkpoint(tmp_path, second)
    assert sorted(p.name for p in folder.iterdir()) == [
        "global-000002.npz",
        "global.npz",
        "state.json",
    ]
    assert read_checkpoint(tmp_path).version == 2


def test_a_run_without_a_checkpoint_cannot_resume(tmp_path):
    with pytest.raises(UsageError, match="no checkpoint"):
        read_checkpoint(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "state.json").write_text("{")
    with pytest.raises(UsageError, match="not a checkpoint"):
        read_checkpoint(tmp_path)
