"""Gradient leakage in results.json: what the server reads of an update under DP falls
with epsilon; plaintext is all of it and CKKS none of a single update."""

from pathlib import Path

from iomt.fedlearn.model import init_weights
from iomt.scenarios.accounting import update_leakage
from iomt.scenarios.data_plan import prepare_data
from iomt.scenarios.schema import validate_scenario


def scenario(dataset: Path, **extra):
    return validate_scenario({
        "name": "l", "seed": 2, "data": {"dataset": str(dataset), "limit": 1500},
        "federation": {"hmus": 3, "clients_per_round": 3}, "training": {"epochs": 1}, **extra,
    })  # fmt: skip


def test_dp_leakage_is_measured_and_falls_with_epsilon(dataset_path: Path) -> None:
    figures = []
    for epsilon in (10_000, 1):
        s = scenario(dataset_path, privacy={"mechanism": "laplace", "epsilon": epsilon})
        data = prepare_data(s)
        report = update_leakage(s, data, None, init_weights(data.n_features, s.training.hidden, 2))
        assert report["headline"] == report["to_server"]
        figures.append(report["headline"])
    assert 0 <= figures[1] < 5 < figures[0] <= 100


def test_plaintext_leaks_everything_and_ckks_no_single_update(dataset_path: Path) -> None:
    for extra, expected in (({}, 100.0), ({"update_encryption": {"kind": "ckks"}}, 0.0)):
        s = scenario(dataset_path, **extra)
        assert update_leakage(s, None, None, {})["headline"] == expected  # type: ignore[arg-type]
