"""Churn over a real Mosquitto: HMUs really drop off (their last will fires) and come
back; rounds close without them, never later than their deadline; the run completes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_run import iomt, only_run_dir

pytestmark = pytest.mark.integration

SCENARIO = """\
name: churn-probe
seed: 5
federation:
  hmus: 6
  clients_per_round: 6
  rounds: 5
  round_deadline_s: 10
  min_updates: 0
  churn: 0.3
  churn_offline_s: [0.5, 1.5]
training:
  epochs: 1
"""


def test_churned_hmus_leave_their_round_and_come_back(tmp_path: Path, dataset_path: Path):
    path = tmp_path / "churn.yaml"
    path.write_text(SCENARIO + f"data:\n  dataset: {dataset_path}\n")
    done = iomt("run", str(path), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    results = json.loads((only_run_dir(tmp_path / "out") / "results.json").read_text())
    assert results["completed"] and len(results["rounds"]) == 5
    events = results["churn"]["events"]
    assert results["churn"]["share"] == 0.3 and events  # seed 5 churns some
    rounds = {r["round"]: r for r in results["rounds"]}
    for event in events:
        record = rounds[event["round"]]
        assert event["hmu"] in record["selected"] and event["hmu"] not in record["received"]
        assert not record["timed_out"]  # its last will closed the round, not the deadline
        assert 0.5 <= event["offline_s"] <= 1.5
    assert all(r["duration_s"] <= 10 + 1 for r in results["rounds"])
    # every HMU came back: it read the run's end and left on its own
    assert {h: r["state"] for h, r in results["hmus"].items()} == dict.fromkeys(
        [f"hmu-0{i}" for i in range(1, 7)], "done"
    )
