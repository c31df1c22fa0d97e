"""Fixtures of the traffic tests: the parsed dataset and a small built capture."""

from __future__ import annotations

from pathlib import Path

import pytest

from iomt.traffic.captures import BuildReport, build_capture
from iomt.traffic.dataset import RawTable, read_wustl_csv


@pytest.fixture(scope="session")
def raw(dataset_path: Path) -> RawTable:
    """All 16,318 rows of WUSTL-EHMS-2020."""
    return read_wustl_csv(dataset_path)


@pytest.fixture(scope="session")
def small_capture(raw: RawTable, dataset_path: Path, tmp_path_factory) -> BuildReport:
    """The first 300 rows as a pcap with its sidecar."""
    out = tmp_path_factory.mktemp("capture") / "first300.pcap"
    return build_capture(dataset_path, out, limit=300, raw=raw)
