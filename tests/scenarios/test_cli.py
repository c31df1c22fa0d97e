"""The ``iomt`` subcommands: JSON outputs with the documented keys, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from iomt.scenarios.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_qkd_simulate_prints_the_documented_keys():
    result = run("qkd", "simulate", "--qubits", "200000", "--seed", "3", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out) == {
        "qubits",
        "conclusive_rate",
        "qber",
        "qber_upper",
        "sifted_bits",
        "leaked_bits",
        "final_key_bits",
        "aborted",
        "reason",
    }
    assert out["qubits"] == 200000 and not out["aborted"] and out["final_key_bits"] > 256


def test_qkd_simulate_with_eve_aborts_as_a_result_not_an_error():
    result = run(
        "qkd",
        "simulate",
        "--qubits",
        "100000",
        "--seed",
        "3",
        "--eve",
        "intercept-resend",
        "--json",
    )
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    assert out["aborted"] and out["final_key_bits"] == 0 and out["qber"] > 0.2


def test_qkd_simulate_refuses_an_unknown_model():
    result = run("qkd", "simulate", "--qubits", "1000", "--seed", "1", "--eve", "bogus")
    assert result.exit_code == 2
    assert "intercept-resend" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_traffic_fidelity_json_meets_targets(dataset_path: Path):
    result = run("traffic", "fidelity", "--dataset", str(dataset_path), "--limit", "300", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["records"] == 300 and report["targets_met"] is True
    assert report["readings_exact"] == 1.0


def test_traffic_build_then_features(dataset_path: Path, tmp_path: Path):
    result = run(
        "traffic",
        "build",
        "--dataset",
        str(dataset_path),
        "--hmus",
        "2",
        "--partition",
        "time",
        "--out",
        str(tmp_path),
    )
    assert result.exit_code == 0, result.output
    (pcap,) = tmp_path.glob("*/hmu-02.pcap")
    assert pcap.with_suffix(".flows.jsonl").is_file()
    out = tmp_path / "f.csv"
    result = run("traffic", "features", str(pcap), "--out", str(out))
    assert result.exit_code == 0, result.output
    header, *rows = out.read_text().splitlines()
    assert "SrcBytes" in header and "Label" in header and len(rows) > 1000


def test_a_truncated_pcap_is_a_one_line_error(tmp_path: Path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"\xd4\xc3\xb2\xa1" + b"\x00" * 10)
    result = run("traffic", "features", str(bad), "--out", str(tmp_path / "x.csv"))
    assert result.exit_code == 1
    assert str(bad) in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_local_run_refuses_live_detection_in_one_line(tmp_path: Path):
    scenario = tmp_path / "detect.yaml"
    scenario.write_text("name: detect\ntraffic: {detect: {enabled: true, iface: eth0}}\n")
    result = run("run", str(scenario), "--out", str(tmp_path / "runs"))
    assert result.exit_code != 0 and "iomt hmu --id" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()
