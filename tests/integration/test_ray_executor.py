"""``iomt run --executor ray`` on a real two-node Ray cluster started on this machine."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from iomt.broker.ports import free_port
from iomt.scenarios.ray_local import LocalCluster, local_cluster
from tests.integration.test_run import iomt, only_run_dir

pytestmark = pytest.mark.integration

SIX = """\
name: six
seed: 5
federation:
  hmus: 6
  clients_per_round: 6
  rounds: {rounds}
  round_deadline_s: 20
training:
  epochs: 1
data:
  dataset: {dataset}
{extra}"""


SLOW = "links: {latency_ms: [500, 500]}\n"  # each round takes over a second: time to lose a node


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with local_cluster(nodes=2) as running:
        yield running


def scenario(tmp_path: Path, dataset: Path, rounds: int, extra: str = "") -> Path:
    path = tmp_path / "six.yaml"
    path.write_text(SIX.format(rounds=rounds, dataset=dataset, extra=extra))
    return path


def test_hmus_run_in_groups_on_both_nodes(
    cluster: LocalCluster, tmp_path: Path, dataset_path: Path
) -> None:
    out = tmp_path / "runs"
    proc = iomt("run", str(scenario(tmp_path, dataset_path, 2)), "--executor", "ray",
                "--address", cluster.address, "--out", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    results = json.loads((only_run_dir(out) / "results.json").read_text())
    assert results["mode"] == "ray" and results["completed"] is True
    assert [len(r["received"]) for r in results["rounds"]] == [6, 6]
    hmus = results["hmus"]
    assert sorted(hmus) == [f"hmu-{i:02d}" for i in range(1, 7)]
    assert all(h["state"] == "done" for h in hmus.values())
    by_node: dict[str, list[str]] = {}
    for hmu, report in sorted(hmus.items()):
        by_node.setdefault(report["ray_node"], []).append(hmu)
    assert sorted(by_node.values()) == [["hmu-01", "hmu-03", "hmu-05"],
                                        ["hmu-02", "hmu-04", "hmu-06"]]  # fmt: skip


def test_a_node_lost_mid_run_fails_its_hmus_and_the_run_says_so(
    tmp_path: Path, dataset_path: Path
) -> None:
    out = tmp_path / "runs"
    path = scenario(tmp_path, dataset_path, 4, SLOW)
    command = [sys.executable, "-m", "iomt.scenarios.cli", "run", str(path), "--out", str(out)]
    with local_cluster(nodes=2) as doomed:
        proc = subprocess.Popen(
            [*command, "--executor", "ray", "--address", doomed.address],
            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # the progress lines: kill the second node after round 1
            seen.append(line)
            if "round 1/4" in line:
                doomed.kill(1)
                break
        stdout, rest = proc.communicate(timeout=240)
    stderr = "".join(seen) + rest
    assert proc.returncode != 0, stderr
    assert "Traceback" not in stderr
    results = json.loads((only_run_dir(out) / "results.json").read_text())
    assert results["completed"] is False and results["mode"] == "ray"
    hmus = results["hmus"]
    lost = {h for h, r in hmus.items() if r["state"] == "failed"}
    assert lost in ({"hmu-01", "hmu-03", "hmu-05"}, {"hmu-02", "hmu-04", "hmu-06"}), hmus
    assert len({hmus[h]["ray_node"] for h in lost}) == 1  # one node's group, the whole of it
    assert all("host on Ray node" in hmus[h]["error"] for h in lost)
    assert len(results["rounds"][0]["received"]) == 6
    assert set(results["rounds"][-1]["received"]) == set(hmus) - lost


def test_no_cluster_at_the_address_is_a_one_line_error(tmp_path: Path, dataset_path: Path) -> None:
    out = tmp_path / "runs"
    started = time.monotonic()
    proc = iomt("run", str(scenario(tmp_path, dataset_path, 1)), "--executor", "ray",
                "--address", f"127.0.0.1:{free_port()}", "--out", str(out))  # fmt: skip
    assert proc.returncode != 0 and time.monotonic() - started < 30
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: --address 127.0.0.1:") and "no Ray cluster there" in line
    assert not out.exists()  # refused before any run directory was made


def test_ray_is_imported_only_for_the_ray_executor() -> None:
    probe = ("import sys, iomt.scenarios.cli, iomt.scenarios.launcher, iomt.scenarios.ray_hosts;"
             " print('ray' in sys.modules)")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
