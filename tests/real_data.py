"""Which dataset the tests read, and the ``real_data`` marker.

The suite reads WUSTL-EHMS-2020 from ``IOMT_DATASET``, else ``../shared/data`` beside
the checkout.  Without it (a fresh clone), ``dataset_path`` is a synthetic file of the
same schema and size (``iomt.traffic.synthetic``), so every test that only needs
WUSTL-shaped data still runs.  Tests whose assertions hold only for the real file
(row counts, checksums, quality thresholds) carry ``@pytest.mark.real_data``: they are
skipped, with the reason printed, where the file is missing, and they fail instead
when ``CI`` is set, because CI always has the file and must never skip them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASET = ROOT.parent / "shared" / "data" / "wustl-ehms-2020.csv"
SYNTHETIC_ROWS = 16_318  # as many flows as the real file
MISSING = (
    "needs the real WUSTL-EHMS-2020 CSV: set IOMT_DATASET or run `iomt data fetch` "
    "(see README, Tests)"
)


def real_dataset() -> Path | None:
    """The real dataset if it is here: ``IOMT_DATASET``, else the shared copy."""
    path = Path(os.environ.get("IOMT_DATASET") or SHARED_DATASET)
    return path if path.is_file() else None


def gate(has_real_data: bool, ci: bool) -> Literal["run", "skip", "fail"]:
    """What becomes of a ``real_data`` test: run it, skip it, or fail (CI never skips)."""
    if has_real_data:
        return "run"
    return "fail" if ci else "skip"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "real_data: asserts facts of the real WUSTL-EHMS-2020 file, not its schema"
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("real_data") is None:
        return
    verdict = gate(real_dataset() is not None, bool(os.environ.get("CI")))
    if verdict == "skip":
        pytest.skip(MISSING)
    if verdict == "fail":
        pytest.fail(f"CI is set but the dataset is missing: {MISSING}", pytrace=False)


@pytest.fixture(scope="session")
def dataset_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real WUSTL-EHMS-2020 file, else a synthetic one of the same schema and size."""
    real = real_dataset()
    if real is not None:
        return real
    from iomt.traffic.synthetic import generate
    from iomt.traffic.wustl_csv import write_csv

    out = tmp_path_factory.mktemp("dataset") / "synthetic-wustl-ehms.csv"
    return write_csv(generate(SYNTHETIC_ROWS, np.random.default_rng(2020)), out)
