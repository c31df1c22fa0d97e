"""A man-in-the-middle on one HMU's MQTT path: undetected on plaintext, caught under AEAD."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from iomt.scenarios.launcher import launch
from iomt.scenarios.schema import validate_scenario

pytestmark = pytest.mark.integration

EVE_ON = "hmu-02"


def run(dataset: Path, out: Path, **sections) -> dict:
    raw = {
        "name": "mitm",
        "seed": 6,
        "federation": {"hmus": 3, "clients_per_round": 3, "rounds": 2, "round_deadline_s": 6},
        "training": {"epochs": 1},
        "data": {"dataset": str(dataset)},
        "metrics": {"resources_interval_s": 0},
        "mitm": {"enabled": True, "hmus": [EVE_ON], "action": "scale", "scale": -10},
        **sections,
    }
    return asyncio.run(launch(validate_scenario(raw), out)).results


def test_plaintext_updates_are_read_and_altered_unnoticed(dataset_path: Path, tmp_path: Path):
    results = run(dataset_path, tmp_path)
    eve = results["mitm"][EVE_ON]
    assert eve["read"] == eve["altered"] == 2  # both rounds' updates
    assert results["rejected"] == {}  # the server accepted the altered updates
    assert all(EVE_ON in r["received"] for r in results["rounds"])


def test_sealed_updates_cannot_be_altered_unnoticed(dataset_path: Path, tmp_path: Path):
    qkd = {"enabled": True, "qubits": 131072, "depolarising": 0.005}
    results = run(dataset_path, tmp_path, qkd=qkd)
    eve = results["mitm"][EVE_ON]
    assert eve["read"] == 0 and eve["tampered_sealed"] == 2
    assert results["rejected"].get("AuthenticationError") == eve["tampered_sealed"]
    for record in results["rounds"]:
        assert EVE_ON not in record["received"] and len(record["received"]) == 2
    assert results["completed"]
