"""What an HMU carries between rounds: kept per round, written, read back."""

import numpy as np

from iomt.fedlearn.defence_config import AttackConfig, CompressionConfig, PrivacyConfig
from iomt.fedlearn.pipeline import build_pipeline
from iomt.hmu_agent.carry import KEEP, Carried, CarriedStates, pack_arrays, unpack_arrays


def state(round_: int) -> Carried:
    return Carried(
        round_, {"0.exp_avg": np.full(3, round_, np.float32)}, {"0.residual": np.ones(2)}
    )


def test_a_round_trains_from_the_newest_earlier_round():
    states = CarriedStates()
    assert states.before(1).round == 0 and states.before(1).optimiser is None
    for r in (2, 5):
        states.after(state(r))
    assert states.before(5).round == 2  # redoing round 5 after a resume: not from itself
    assert states.before(6).round == 5
    states.after(state(6))
    assert sorted(states.kept) == [5, 6] and len(states.kept) == KEEP


def test_states_are_written_and_read_back(tmp_path):
    folder = tmp_path / "hmu-01"
    states = CarriedStates(folder)
    for r in (1, 3, 4):
        states.after(state(r))
    assert sorted(p.name for p in folder.iterdir()) == ["round-000003.state", "round-000004.state"]
    back = CarriedStates(folder).before(4)
    assert back.round == 3
    np.testing.assert_array_equal(back.optimiser["0.exp_avg"], np.full(3, 3, np.float32))
    np.testing.assert_array_equal(back.pipeline["0.residual"], np.ones(2))


def test_an_unreadable_state_file_is_skipped(tmp_path):
    whole = pack_arrays({"optimiser:0.exp_avg": np.ones(3, np.float32)})
    tmp_path.joinpath("round-000002.state").write_bytes(b"garbage")
    tmp_path.joinpath("round-000003.state").write_bytes(whole[:-1])
    tmp_path.joinpath("round-000004.state").write_bytes(whole + b"x")
    tmp_path.joinpath("round-000005.state").write_bytes(whole)
    assert list(CarriedStates(tmp_path).kept) == [5]


def test_packed_arrays_keep_names_dtypes_and_shapes():
    arrays = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3),
        "b": np.array(2.5),
        "c": np.ones(0),
    }
    back = unpack_arrays(pack_arrays(arrays))
    assert list(back) == ["a", "b", "c"]
    for name, array in arrays.items():
        assert back[name].dtype == array.dtype and back[name].shape == array.shape
        np.testing.assert_array_equal(back[name], array)


def test_compression_residual_survives_a_state_round_trip():
    pipeline = build_pipeline(
        attacks=AttackConfig(), privacy=PrivacyConfig(),
        compression=CompressionConfig(kind="topk"), hmus=["hmu-01"], seed=1,
    )  # fmt: skip
    (step,) = pipeline.steps
    step.compressor.residual = np.arange(4.0)
    saved = pipeline.state()
    assert list(saved) == ["0.residual"]
    step.compressor.residual = None
    pipeline.restore(saved)
    np.testing.assert_array_equal(step.compressor.residual, np.arange(4.0))
    pipeline.restore({})
    assert step.compressor.residual is None
