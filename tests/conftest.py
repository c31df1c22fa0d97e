"""Session fixtures shared by the test packages: the dataset, a real broker, the project root."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

pytest_plugins = ["tests.broker_fixtures", "tests.real_data", "pytester"]

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    # A suite started as a background job of a non-interactive shell (`cmd &`) inherits
    # SIGINT ignored, and so would every process it starts; the Ctrl-C tests need it live.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT
