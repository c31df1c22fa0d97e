"""The server's validation rows: carved from the held-out split, the HMUs' shares unchanged."""

import numpy as np

from iomt.scenarios.data_plan import prepare_data
from iomt.scenarios.schema import validate_scenario


def test_validation_rows_come_out_of_the_held_out_split_stratified(dataset_path):
    base = {"name": "v", "seed": 2, "data": {"dataset": str(dataset_path)},
            "federation": {"hmus": 4, "clients_per_round": 4}}  # fmt: skip
    plain = prepare_data(validate_scenario(base))
    base["federation"]["validation_fraction"] = 0.5
    split = prepare_data(validate_scenario(base))
    assert plain.x_val is None
    for hmu, (x, y) in plain.parts.items():  # the HMUs train on exactly the same rows
        np.testing.assert_array_equal(split.parts[hmu][0], x)
        np.testing.assert_array_equal(split.parts[hmu][1], y)
    assert split.y_val is not None and split.x_val is not None
    assert len(split.y_val) + len(split.y_test) == len(plain.y_test)
    assert abs(len(split.y_val) - len(split.y_test)) <= 2
    joined = np.concatenate([split.x_val, split.x_test])
    assert sorted(map(tuple, joined.tolist())) == sorted(map(tuple, plain.x_test.tolist()))
    assert abs(split.y_val.mean() - split.y_test.mean()) < 0.01  # stratified
