"""End to end over a real Mosquitto: scenarios run through the CLI, agents survive failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from iomt.scenarios.results import FINAL_FIELDS, ROUND_FIELDS

pytestmark = pytest.mark.integration

TINY = """\
name: tiny
seed: 3
federation:
  hmus: 3
  clients_per_round: 3
  rounds: 2
  round_deadline_s: 20
training:
  epochs: 1
"""


def iomt(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 180
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "iomt.scenarios.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def tiny(tmp_path: Path, dataset_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY + f"data:\n  dataset: {dataset_path}\n")
    return path


def only_run_dir(out: Path) -> Path:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir


def check_results(results: dict, rounds: int, hmus: int) -> None:
    for key in ("scenario", "seed", "broker", "rounds", "final"):
        assert key in results
    assert results["broker"]["kind"] == "mosquitto"
    assert results["broker"]["url"].startswith("mqtt://127.0.0.1:")
    assert results["completed"] is True
    assert [r["round"] for r in results["rounds"]] == list(range(1, rounds + 1))
    for record in results["rounds"]:
        assert set(ROUND_FIELDS) <= set(record)
        assert len(record["received"]) == hmus
        assert record["bytes_up"] > 0 and record["bytes_down"] > 0
    assert set(FINAL_FIELDS) <= set(results["final"])
    assert 0.5 < results["final"]["accuracy"] <= 1.0


def test_cli_run_completes_and_writes_results(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    proc = iomt("run", str(tiny), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    run_dir = only_run_dir(out)
    results = json.loads((run_dir / "results.json").read_text())
    check_results(results, rounds=2, hmus=3)
    assert results["seed"] == 3 and results["scenario"] == "tiny"
    assert (run_dir / "scenario.yaml").is_file() and (run_dir / "run.log").is_file()
    assert (run_dir / "checkpoints" / "global.npz").is_file()
    state = json.loads((run_dir / "checkpoints" / "state.json").read_text())
    assert state["round"] == 2
    assert state["version"] == 2  # one new global model version per aggregation
    assert [r["version"] for r in results["rounds"]] == [1, 2]
    assert "accuracy" in proc.stdout
    check_bytes(results, run_dir)


def check_bytes(results: dict, run_dir: Path) -> None:
    """Only what is used is sent, and bytes are counted where they leave and enter agents:
    an invitation or an update is the model plus a small header; the round's broadcast
    carries no weights; each HMU's own count adds up to the server's."""
    with np.load(run_dir / "checkpoints" / "global.npz") as saved:
        model = sum(saved[k].nbytes for k in saved.files)
    header = 2048  # envelope, message and tensor index
    for record in results["rounds"]:
        rnd, k = str(record["round"]), len(record["selected"])
        per_hmu = [results["hmus"][h]["bytes"][rnd] for h in record["selected"]]
        assert all(model < b["up"] < model + header for b in per_hmu)
        assert all(model < b["down"] < model + header for b in per_hmu)
        assert record["bytes_up"] == sum(b["up"] for b in per_hmu)
        broadcast = record["bytes_down"] - sum(b["down"] for b in per_hmu)
        assert 0 < broadcast < header  # the round-closed broadcast: version and accuracy only
        assert record["bytes_down"] < k * (model + header) + header


def test_cli_run_with_separate_processes(tiny: Path, tmp_path: Path) -> None:
    """Each HMU its own process, sending its metrics over MQTT as a field HMU would."""
    out = tmp_path / "runs"
    field = ["--set", "metrics.hmu_transport=mqtt", "--set", "metrics.resources_interval_s=0.2"]
    proc = iomt("run", str(tiny), "--out", str(out), "--processes", *field)
    assert proc.returncode == 0, proc.stderr
    run_dir = only_run_dir(out)
    results = json.loads((run_dir / "results.json").read_text())
    check_results(results, rounds=2, hmus=3)
    assert results["mode"] == "processes"
    # each HMU process got its own password through the fork server's pipe: no file in
    # the run directory holds one in clear but the broker's own, owner-only
    passwords = yaml.safe_load((run_dir / "broker" / "credentials.yaml").read_text())
    assert (run_dir / "broker" / "credentials.yaml").stat().st_mode & 0o077 == 0
    for path in run_dir.rglob("*"):
        if path.is_file() and path.name != "credentials.yaml":
            data = path.read_bytes()
            assert not any(pw.encode() in data for pw in passwords.values()), path
    assert all(h["state"] == "done" and h["exit"] == 0 for h in results["hmus"].values())
    assert all(h["rounds_trained"] == 2 for h in results["hmus"].values())
    # the server forwarded what the HMU processes measured of themselves
    lines = (run_dir / "metrics.lp").read_text().splitlines()
    forwarded = {
        line.split(",hmu=")[1].split(",")[0] for line in lines if line.startswith("resources,")
    }
    assert {"hmu-01", "hmu-02", "hmu-03"} <= forwarded


def test_misspelt_key_fails_validate_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("name: typo\nfederation:\n  hmus: 3\n  rouns: 2\n")
    proc = iomt("validate", str(path))
    assert proc.returncode == 2
    assert "federation.rouns" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_missing_dataset_says_how_to_get_it(tmp_path: Path) -> None:
    path = tmp_path / "nodata.yaml"
    path.write_text("name: nodata\n")
    env = {"IOMT_DATASET": ""}
    proc = iomt("run", str(path), "--out", str(tmp_path / "runs"), env=env, cwd=tmp_path)
    assert proc.returncode == 1
    assert "iomt data fetch" in proc.stderr or "IOMT_DATASET" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_a_two_point_sweep_file_runs_through_compare(tiny: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(tiny.read_text() + "sweep:\n  epochs:\n    '1': {training.epochs: 1,"
                     " privacy.mechanism: gaussian, privacy.epsilon: 50, privacy.delta: 1.0e-5}\n"
                     "    '2': {training.epochs: 2, measure_leakage: false}\n")  # fmt: skip
    out = tmp_path / "cmp"
    proc = iomt("compare", str(sweep), "--seeds", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = (out / "compare.csv").read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["tiny-1", "tiny-2"]
    leakage = {}
    for name, epochs in (("tiny-1", 1), ("tiny-2", 2)):
        results = json.loads((only_run_dir(out / name) / "results.json").read_text())
        assert results["completed"] is True and results["scenario"] == name
        assert yaml.safe_load((only_run_dir(out / name) / "scenario.yaml").read_text())[
            "training"]["epochs"] == epochs  # fmt: skip
        leakage[name] = results["leakage"]
    # the point that skips the leakage measurement says so; the other's was measured in
    # compare's own worker while tiny-2 ran, and is what `iomt run` measures in a thread
    assert leakage["tiny-2"] == {"headline": None, "note": "not measured (measure_leakage: false)"}
    assert 0 < leakage["tiny-1"]["headline"] < 100
    alone = iomt("run", str(only_run_dir(out / "tiny-1") / "scenario.yaml"), "--out",
                 str(tmp_path / "alone"))  # fmt: skip
    assert alone.returncode == 0, alone.stderr
    results = json.loads((only_run_dir(tmp_path / "alone") / "results.json").read_text())
    assert results["leakage"] == leakage["tiny-1"]
    # the same command again: both runs are found finished and read, none runs again
    before = {p: p.stat().st_mtime_ns for p in out.rglob("results.json")}
    proc = iomt("compare", str(sweep), "--seeds", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("finished before, kept") == 2
    assert {p: p.stat().st_mtime_ns for p in out.rglob("results.json")} == before
    assert (out / "compare.csv").read_text().splitlines()[1:] == rows
    bad = tmp_path / "bad.yaml"
    bad.write_text(tiny.read_text() + "sweep:\n  training.epochz: [1, 2]\n")
    proc = iomt("compare", str(bad), "--seeds", "1", "--out", str(tmp_path / "bad"))
    assert proc.returncode != 0 and "training.epochz: unknown key" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()


def test_compare_stopped_by_ctrl_c_keeps_finished_runs_and_resumes(
    tiny: Path, tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(tiny.read_text() + "sweep:\n  training.epochs: [1, 2]\n")
    out = tmp_path / "cmp"
    command = [sys.executable, "-m", "iomt.scenarios.cli", "compare", str(sweep), "--seeds", "1",
               "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(out.glob("tiny-1/*/results.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    first = only_run_dir(out / "tiny-1")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and not (out / "compare.csv").exists()
    assert "run the same command again" in stderr.strip().splitlines()[-1]
    kept = (first / "results.json").read_text()
    again = iomt("compare", str(sweep), "--seeds", "1", "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert "compare: run 1/2 tiny-1 seed 1: finished before, kept" in again.stderr
    assert (first / "results.json").read_text() == kept
    finished = [p for p in (out / "tiny-2").iterdir() if (p / "results.json").is_file()]
    assert len(finished) == 1  # a run cut short by the Ctrl-C was set aside, not counted
    assert all(p.name.endswith(".interrupted") for p in (out / "tiny-2").iterdir()
               if p not in finished)  # fmt: skip
    assert json.loads((finished[0] / "results.json").read_text())["completed"] is True
