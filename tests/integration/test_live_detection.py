"""A field HMU detecting live: `iomt hmu` trains with the server over MQTT while it
scores the flows replayed onto its interface with the global model it was last sent.

The HMU's interface is one end of a veth pair left in this namespace (so the HMU also
reaches the broker on 127.0.0.1); the other end is in a namespace of its own, where a
capture of 300 WUSTL-EHMS flows is replayed over and over at its own pace.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from iomt.broker import start_broker
from iomt.scenarios.agent_commands import agent_command, write_credentials
from iomt.scenarios.schema import scenario_yaml, validate_scenario
from iomt.traffic.captures import build_captures
from iomt.traffic.synthesis import SynthesisConfig
from iomt.traffic.veth_pair import NetnsPair, NetnsUnavailable, python_in, veth_pair
from iomt.wire.topics import SERVER_ID

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

REPLAY_FOREVER = """
import sys
from iomt.traffic.replay import replay_pcap
while True:
    replay_pcap(sys.argv[1], sys.argv[2], speed=1.0, max_gap_s=0.01)
"""


@pytest.fixture
def pair() -> Iterator[NetnsPair]:
    try:
        with veth_pair(b_here=True) as made:
            yield made
    except NetnsUnavailable as exc:
        pytest.skip(f"live detection cannot run here: {exc}")


async def test_a_field_hmu_scores_live_flows_with_the_current_global_model(
    tmp_path: Path, dataset_path: Path, pair: NetnsPair
):
    capture = build_captures(dataset_path, [list(range(300))], tmp_path / "cache",
                             SynthesisConfig(mean_gap_s=0.005), names=["live"])  # fmt: skip
    alerts = tmp_path / "alerts.jsonl"
    rounds = 6
    scenario = validate_scenario({
        "name": "detect", "seed": 3,
        "federation": {"hmus": 1, "clients_per_round": 1, "rounds": rounds,
                       "round_deadline_s": 30},
        "training": {"epochs": 2},
        "data": {"dataset": str(dataset_path)},
        "metrics": {"resources_interval_s": 0, "hmu_transport": "mqtt"},
        "traffic": {"detect": {"enabled": True, "iface": pair.iface_b, "idle_timeout_s": 2,
                               "report_s": 0.5, "alerts_file": str(alerts)}},
    })  # fmt: skip
    scenario_file = tmp_path / "detect.yaml"
    scenario_file.write_text(scenario_yaml(scenario))
    procs: list[subprocess.Popen] = []
    try:
        replay = python_in(pair.a, REPLAY_FOREVER, [capture.pcaps[0], pair.iface_a], ROOT)
        procs.append(replay)
        async with start_broker(scenario.broker, tmp_path, "detect-1", ["hmu-01"]) as handle:
            creds = write_credentials(tmp_path, handle, SERVER_ID)
            server = subprocess.Popen(
                [*agent_command("server", scenario_file, "detect-1", handle, creds), "--out",
                 str(tmp_path / "runs")], stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            procs.append(server)
            hmu_creds = write_credentials(tmp_path, handle, "hmu-01")
            hmu = subprocess.Popen(
                [*agent_command("hmu", scenario_file, "detect-1", handle, hmu_creds),
                 "--id", "hmu-01"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            procs.append(hmu)
            _, err = server.communicate(timeout=180)
            assert server.returncode == 0, err
            out, err = hmu.communicate(timeout=60)
            assert hmu.returncode == 0, err
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()  # also closes its pipes
    assert replay.returncode is not None  # the replay ran until it was stopped
    line = next(x for x in out.splitlines() if "detection on" in x)
    scored = int(line.split(": ")[2].split(" flows scored")[0])
    assert scored > 0, line
    results = json.loads((tmp_path / "runs" / "detect-1" / "results.json").read_text())
    assert results["completed"]
    # alerts carry the version of the invitation's model; the last is the last round's
    versions = [json.loads(x)["model_version"] for x in alerts.read_text().splitlines()]
    assert versions and versions == sorted(versions) and max(versions) <= rounds - 1
    # windows of counts and latency reach the server's metrics over MQTT, the last one
    # too (emitted when the run ends, before the HMU's MQTT session does): every flow
    # the HMU counted is in one window the server wrote
    windows = [x for x in (tmp_path / "runs" / "detect-1" / "metrics.lp").read_text().splitlines()
               if x.startswith("detection,")]  # fmt: skip
    assert any("latency_ms_p50=" in x for x in windows)
    flows = sum(int(x.split("flows=")[1].split("i")[0]) for x in windows)
    assert flows == scored + int(line.split(", ")[2].split(" before")[0])
