"""Session fixtures shared by the test packages: the real dataset and the project root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.broker_fixtures"]

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASET = ROOT.parent / "shared" / "data" / "wustl-ehms-2020.csv"


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def dataset_path() -> Path:
    """WUSTL-EHMS-2020: ``IOMT_DATASET`` if set, else the copy in ../shared/data."""
    path = Path(os.environ.get("IOMT_DATASET") or SHARED_DATASET)
    if not path.is_file():
        pytest.fail(f"dataset not found at {path}; set IOMT_DATASET", pytrace=False)
    return path
