"""Session fixtures shared by the test packages: the dataset, a real broker, the project root."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from iomt.traffic.veth_pair import NetnsPair, NetnsUnavailable, veth_pair

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


@pytest.fixture(scope="module")
def netns() -> Iterator[NetnsPair]:
    """Two fresh network namespaces joined by a veth pair (live-traffic tests); deleted
    afterwards.  Skipped, with the reason, where namespaces cannot be made (not root)."""
    try:
        with veth_pair() as pair:
            yield pair
    except NetnsUnavailable as exc:
        pytest.skip(f"network namespaces cannot be made here: {exc}")
