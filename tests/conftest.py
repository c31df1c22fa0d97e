"""Session fixtures shared by the test packages: the dataset, a real broker, the project root."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.broker_fixtures", "tests.real_data", "pytester"]

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT
