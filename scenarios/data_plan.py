"""Turn a scenario's data section into each HMU's training rows and the server's test rows.

Every party derives the same plan from the scenario and its seed, so a standalone
``iomt hmu`` on a Raspberry Pi and the server agree on who holds which rows without
exchanging any.  Scaling statistics are pooled from the HMUs' own fits (counts, means
and variances only), exactly what ``Standardiser.fit`` on their union would give; the
held-out test rows never influence them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedlearn.partition import partition, stratified_split
from fedlearn.scaling import Standardiser
from iomt_testbed.errors import DataError
from scenarios.schema import Scenario
from traffic.dataset import CsvSource, FlowTable, resolve_dataset
from wire.topics import hmu_id


@dataclass(frozen=True)
class FederatedData:
    """Scaled training rows per HMU and the server's held-out test rows."""

    dataset: Path
    feature_names: tuple[str, ...]
    parts: dict[str, tuple[np.ndarray, np.ndarray]]
    x_test: np.ndarray
    y_test: np.ndarray
    rows: int

    @property
    def n_features(self) -> int:
        return len(self.feature_names)


def load_table(scenario: Scenario) -> tuple[Path, FlowTable]:
    """The scenario's flow table and where it came from (raises ``DataError``)."""
    data = scenario.data
    path = resolve_dataset(data)
    return path, CsvSource(path, data.keep_identifiers, data.limit).load()


def plan_data(scenario: Scenario, table: FlowTable, dataset: Path) -> FederatedData:
    """Split, partition and scale ``table`` as ``scenario`` says, reproducibly from its seed."""
    fed = scenario.federation
    rng = np.random.default_rng([scenario.seed, 0xDA7A])
    train_idx, test_idx = stratified_split(table.y, fed.test_fraction, rng)
    try:
        shares = partition(train_idx, table.y[train_idx], fed.partition, fed.hmus, rng)
    except ValueError as exc:
        raise DataError(f"cannot partition {len(train_idx)} training rows: {exc}") from None
    scaler = Standardiser.pooled([Standardiser.fit(table.X[share]) for share in shares])
    parts = {
        hmu_id(i): (scaler.transform(table.X[share]), table.y[share])
        for i, share in enumerate(shares)
    }
    return FederatedData(
        dataset=dataset,
        feature_names=table.feature_names,
        parts=parts,
        x_test=scaler.transform(table.X[test_idx]),
        y_test=table.y[test_idx],
        rows=len(table),
    )


def prepare_data(scenario: Scenario) -> FederatedData:
    """Load and plan in one step."""
    path, table = load_table(scenario)
    return plan_data(scenario, table, path)
