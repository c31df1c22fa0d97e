"""Fixtures of the monitoring tests: one real VictoriaMetrics for the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.monitoring.victoria import VictoriaMetrics, find_victoria_metrics


@pytest.fixture(scope="session")
def victoria() -> Iterator[VictoriaMetrics]:
    binary = find_victoria_metrics()
    if binary is None:
        pytest.fail(
            "monitoring tests need victoria-metrics: apt-get install victoria-metrics",
            pytrace=False,
        )
    vm = VictoriaMetrics(binary).start()
    try:
        yield vm
    finally:
        vm.stop()
