"""Slow links over a real Mosquitto: an update's transfer time, measured where it
arrives, follows its HMU's bandwidth (tolerance: at least size / bandwidth, at most
0.5 s more; 100 kbps against 500 kbps: 4 to 5.5 times as long), whether the HMU's
transport paces it or, for HMU processes in network namespaces of their own, the
kernel's token bucket does (there the lower bound is 0.9 x size / bandwidth: the
bucket starts full with one frame and counts frames, not the message)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from iomt.hmu_agent.link_profile import LinkPlan
from tests.integration.test_run import iomt, only_run_dir

pytestmark = pytest.mark.integration

SCENARIO = """\
name: links-probe
seed: 2
federation: {{hmus: 2, clients_per_round: 2, rounds: 1, round_deadline_s: 30}}
training: {{epochs: 1}}
links: {{bandwidth_kbps: [{kbps}, {kbps}], compute_ghz: [1.0, 1.0], shaping: {shaping}}}
metrics: {{hmu_transport: mqtt}}
"""


def transfers(
    tmp_path: Path, dataset: Path, kbps: int, shaping: str = "pacer"
) -> list[tuple[float, float]]:
    """(measured transfer s, size / bandwidth s) of every update of a 1-round run."""
    path = tmp_path / f"links-{kbps}.yaml"
    text = SCENARIO.format(kbps=kbps, shaping=shaping) + f"data:\n  dataset: {dataset}\n"
    path.write_text(text)
    out = tmp_path / str(kbps)
    options = ["--processes"] if shaping == "tc" else []
    done = iomt("run", str(path), "--out", str(out), *options)
    assert done.returncode == 0, done.stderr
    results = json.loads((only_run_dir(out) / "results.json").read_text())
    (record,) = results["rounds"]
    pairs = []
    for hmu, measured in record["transfer_s"].items():
        report = results["hmus"][hmu]
        profile = report["links"]["1"]
        assert profile["kbps"] == kbps and profile["ghz"] == 1.0 and profile["compute_s"] > 0
        assert profile["shaping"] == shaping
        pairs.append((measured, report["bytes"]["1"]["up"] * 8 / (kbps * 1000)))
    return pairs


def test_an_update_takes_as_long_as_its_link_says(tmp_path: Path, dataset_path: Path):
    slow, fast = transfers(tmp_path, dataset_path, 100), transfers(tmp_path, dataset_path, 500)
    for measured, expected in slow + fast:
        assert expected <= measured <= expected + 0.5
    assert all(measured >= 2.0 for measured, _ in slow)  # a ~27 KB update at 100 kbps
    ratio = min(m for m, _ in slow) / max(m for m, _ in fast)
    assert 4.0 <= ratio <= 5.5


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
def test_the_kernel_shapes_hmu_processes_in_their_namespaces(tmp_path: Path, dataset_path: Path):
    slow = transfers(tmp_path, dataset_path, 100, "tc")
    fast = transfers(tmp_path, dataset_path, 500, "tc")
    for measured, expected in slow + fast:
        assert 0.9 * expected <= measured <= expected + 0.5
    assert all(measured >= 2.0 for measured, _ in slow)  # a ~27 KB update at 100 kbps
    ratio = min(m for m, _ in slow) / max(m for m, _ in fast)
    assert 4.0 <= ratio <= 5.5
    leftover = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "iomt-" not in leftover  # every namespace of the runs is gone


def test_profiles_are_seeded_and_within_their_ranges():
    plan = LinkPlan((100.0, 500.0), (10.0, 20.0), (0.5, 2.0), 2.0, seed=3)
    profiles = [plan.profile(f"hmu-{h:02d}", r) for h in range(1, 11) for r in range(1, 11)]
    assert all(100 <= p.kbps <= 500 and 10 <= p.latency_ms <= 20 for p in profiles)
    assert profiles == [plan.profile(f"hmu-{h:02d}", r) for h in range(1, 11) for r in range(1, 11)]
    one = profiles[0]
    assert one.transfer_s(1000) == pytest.approx(one.latency_ms / 1000 + 8000 / (one.kbps * 1000))
    slow = LinkPlan(None, (0.0, 0.0), (0.5, 0.5), 2.0, seed=3).profile("hmu-01", 1)
    assert slow.extra_compute_s(2.0) == pytest.approx(6.0) and slow.transfer_s(10**6) == 0.0
    kernel = LinkPlan((100.0, 100.0), (10.0, 10.0), None, 2.0, seed=3, kernel=True)
    assert kernel.profile("hmu-01", 1).transfer_s(10**6) == pytest.approx(0.01)  # latency only
    fast = LinkPlan(None, (0.0, 0.0), (3.0, 3.0), 2.0, seed=3).profile("hmu-01", 1)
    assert fast.extra_compute_s(2.0) == 0.0  # not sped up past this machine
