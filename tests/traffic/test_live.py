"""Live mode: a capture replayed in one network namespace, sniffed in another, same features.

The namespace tests need root (CI runs them as root): two namespaces joined by a veth
pair, link-local addresses on the pair only and no routes, so nothing leaves them.
The replayer runs in namespace A, the sniffer in namespace B (one subprocess each,
``ip netns exec``); both namespaces are deleted whatever happens.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from iomt.errors import DataError, UsageError
from iomt.fedlearn.scaling import Standardiser
from iomt.traffic.captures import BuildReport, build_capture
from iomt.traffic.dataset import FEATURE_COLUMNS, RawTable
from iomt.traffic.live import Captured, LiveCapture, capture_command, label_capture, rebase_truth
from iomt.traffic.replay import ReplayReport, read_frames, replay_pcap, send_offsets
from iomt.traffic.source import PcapSource, extract
from iomt.traffic.truth import read_truth
from iomt.traffic.veth_pair import NetnsPair, python_in
from tests.netns_replay import ready, replay_while_watching

ROOT = Path(__file__).resolve().parents[2]
TIMING = (
    "Dur", "SIntPkt", "DIntPkt", "SrcJitter", "DstJitter", "SrcLoad", "DstLoad", "Load",
    "Rate", "SIntPktAct", "DIntPktAct",
)  # fmt: skip
EXACT = tuple(c for c in FEATURE_COLUMNS if c not in TIMING)
MS = 1_000_000


@pytest.fixture(scope="module")
def flows50(raw: RawTable, dataset_path: Path, tmp_path_factory) -> BuildReport:
    """The first 50 records (350 packets), flows 20 ms apart on average (~1.1 s in all)."""
    from iomt.traffic.synthesis import SynthesisConfig

    out = tmp_path_factory.mktemp("live") / "first50.pcap"
    return build_capture(dataset_path, out, 50, SynthesisConfig(mean_gap_s=0.02), raw)


# -- the schedule and the ground truth, no privileges needed ---------------------------


def test_send_offsets_follow_the_capture_clock():
    t = np.array([5, 5 + MS, 5 + 3 * MS, 5 + 10_000 * MS, 5 + 10_001 * MS], dtype=np.int64)
    assert send_offsets(t).tolist() == [0, MS, 3 * MS, 10_000 * MS, 10_001 * MS]
    assert send_offsets(t, 2.0).tolist() == [0, MS // 2, 3 * MS // 2, 5_000 * MS, 10_001 * MS // 2]
    assert send_offsets(t, 1.0, max_gap_s=0.5).tolist() == [0, MS, 3 * MS, 503 * MS, 504 * MS]
    assert send_offsets(t, 4.0, max_gap_s=0.5)[-1] == 126 * MS  # capped first, then divided
    for top in (0.0, -1.0, float("inf")):
        assert not send_offsets(t, top).any()
    # a capture out of time order never sends a packet before its predecessor
    assert send_offsets(np.array([10, 4, 12]) * MS).tolist() == [0, 0, 2 * MS]
    with pytest.raises(ValueError):
        send_offsets(t, float("nan"))


def test_a_missing_capture_or_interface_is_a_one_line_error(flows50: BuildReport, tmp_path):
    with pytest.raises(DataError, match="capture not found") as missing:
        replay_pcap(tmp_path / "nothing.pcap", "lo")
    with pytest.raises(UsageError, match="no network interface 'iomt-nope0'") as no_iface:
        replay_pcap(flows50.pcap, "iomt-nope0")
    with pytest.raises(UsageError, match="no network interface"):
        LiveCapture("iomt-nope0").start()
    assert "\n" not in str(missing.value) + str(no_iface.value)
    not_pcap = tmp_path / "text.pcap"
    not_pcap.write_text("hello\n")
    with pytest.raises(DataError, match="not a readable"):
        replay_pcap(not_pcap, "lo")


def _shifted(flows: BuildReport, out: Path, drop_flow: int | None = None) -> Captured:
    """The capture as a live sniffer would see it: 1 h later, each packet up to 20 us
    late (seeded), optionally without one flow's packets."""
    times, frames = read_frames(flows.pcap)
    rng = np.random.default_rng(7)
    live = times + 3600 * 1_000_000_000 + rng.integers(0, 20_000, len(times))
    live = np.maximum.accumulate(live)  # late, never reordered
    keep = np.ones(len(frames), dtype=bool)
    if drop_flow is not None:
        port = read_truth(flows.truth)[drop_flow].sport.to_bytes(2, "big")
        keep = np.array([port not in (f[34:36], f[36:38]) for f in frames])
    return Captured(live[keep], [f for f, k in zip(frames, keep, strict=True) if k])


def test_ground_truth_follows_the_flows_onto_live_times(flows50: BuildReport, tmp_path):
    offline, records = PcapSource(flows50.pcap).load_with_records()
    source = _shifted(flows50, tmp_path).source(tmp_path / "live.pcap", flows50.truth)
    live, live_records = source.load_with_records()
    assert live_records.tolist() == records.tolist() == list(range(50))
    assert live.y.tolist() == offline.y.tolist()
    exact = [FEATURE_COLUMNS.index(c) for c in EXACT]
    assert np.array_equal(live.X[:, exact], offline.X[:, exact])
    dur = FEATURE_COLUMNS.index("Dur")
    assert np.abs(live.X[:, dur] - offline.X[:, dur]).max() <= 20e-6 + 1e-7  # the jitter
    # every rebased start is a live flow start, one hour after the replayed one
    moved = read_truth(tmp_path / "live.flows.jsonl")
    before = {e.record: e.start_ns for e in read_truth(flows50.truth)}
    shift = [e.start_ns - before[e.record] - 3600 * 1_000_000_000 for e in moved]
    assert all(0 <= s < 20_000 for s in shift)
    # the sidecar of the replayed capture is never overwritten by its own "live" copy
    with pytest.raises(UsageError, match="overwrite"):
        label_capture(flows50.pcap, flows50.truth)
    before_bytes = flows50.pcap.read_bytes()
    with pytest.raises(UsageError, match="overwrite"):
        _shifted(flows50, tmp_path).save(flows50.pcap, flows50.truth)
    assert flows50.pcap.read_bytes() == before_bytes


def test_a_lost_flow_is_reported_or_left_out(flows50: BuildReport, tmp_path):
    lossy = _shifted(flows50, tmp_path, drop_flow=10)
    with pytest.raises(DataError, match="1 of 50 replayed flows were not captured"):
        lossy.save(tmp_path / "lossy.pcap", flows50.truth)
    table, records = lossy.source(
        tmp_path / "lossy.pcap", flows50.truth, strict=False
    ).load_with_records()
    assert len(table) == 49 and 10 not in records.tolist()


def test_rebasing_pairs_repeated_five_tuples_in_start_order(flows50: BuildReport):
    truth = read_truth(flows50.truth)[:3]
    same = [replace(e, sport=50000) for e in truth]
    keys = [(e.src, e.dst, e.sport, e.dport, e.proto, 10**12 + 7 * i) for i, e in enumerate(same)]
    keys.append(("10.9.9.9", "10.0.1.150", 1, 1111, 6, 5))  # captured, never replayed
    rebased = rebase_truth(same, keys[::-1])
    assert [e.record for e in rebased] == [0, 1, 2]
    assert [e.start_ns for e in rebased] == [10**12, 10**12 + 7, 10**12 + 14]


# -- live replay and capture in a pair of network namespaces (root) ---------------------

CAPTURE = """
import json, sys
from iomt.traffic.live import LiveCapture
iface, count, timeout, out, truth = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), *sys.argv[4:]
capture = LiveCapture(iface, count=count)
capture.start()
print("ready", flush=True)
finished = capture.wait(timeout)
got = capture.stop()
got.save(out, truth, strict=False)
print(json.dumps({"finished": finished, "packets": len(got), "dropped": got.dropped}))
"""

REPLAY = """
import json, sys
from dataclasses import asdict
from iomt.traffic.replay import replay_pcap
pcap, iface, speed, gap, backend = sys.argv[1:]
report = replay_pcap(pcap, iface, speed=float(speed), max_gap_s=float(gap) if gap else None,
                     backend=backend)
print(json.dumps(asdict(report)))
"""


def _in_netns(ns: str, script: str, *args: object, **popen) -> subprocess.Popen:
    return python_in(ns, script, args, ROOT, **popen)


def _replay_live(
    pair: NetnsPair, flows: BuildReport, out: Path, speed: float, max_gap_s: float | None,
    backend: str,
) -> tuple[ReplayReport, dict]:  # fmt: skip
    """Sniff in B, replay in A; the live pcap and its sidecar are written to ``out``."""
    capture = _in_netns(pair.b, CAPTURE, pair.iface_b, flows.packets, 15, out, flows.truth)
    sent, last = replay_while_watching(
        capture,
        lambda: _in_netns(
            pair.a,
            REPLAY,
            flows.pcap,
            pair.iface_a,
            speed,
            "" if max_gap_s is None else max_gap_s,
            backend,
        ),  # fmt: skip
        timeout=30,
    )
    return ReplayReport(**json.loads(sent)), json.loads(last)


def _timing_match(live: np.ndarray, offline: np.ndarray) -> np.ndarray:
    """Per flow: every timing feature within 5 % (ms-valued ones also within 0.05 ms,
    ``Dur`` within 50 us, which covers jitters near zero)."""
    ok = np.ones(len(live), dtype=bool)
    for name in TIMING:
        j = FEATURE_COLUMNS.index(name)
        floor = {"Dur": 50e-6}.get(name, 0.05 if "Int" in name or "Jitter" in name else 0.0)
        ok &= np.abs(live[:, j] - offline[:, j]) <= 0.05 * np.abs(offline[:, j]) + floor
    return ok


def test_live_capture_yields_the_offline_features(netns: NetnsPair, flows50: BuildReport, tmp_path):
    """Timed replay (scapy sender, speed 1) captured live: same flows, same features.

    Sizes, counts and readings must be equal.  Timing features carry the replay's
    scheduling error.  Measured on this shared 2-core VM (load 3-4): with the sender at
    SCHED_FIFO, |Dur error| median 9-15 us (~0.1 % of these ~12 ms flows), 90th
    percentile 20-95 us, and 96-100 % of flows have every timing feature within 5 %;
    at normal priority the median holds (~15 us) but CPU contention stalls spoil
    15-50 % of flows by up to a few ms.  So: median Dur error < 1 % always and, with
    real-time priority, at least 90 % of flows with every timing feature within 5 %.
    Both are clock measurements on a shared machine, and a burst of contention on the
    host (the VM's CPUs stolen) spoils one run now and then: timing gets one more run.
    Sizes and counts get none.
    """
    offline, records = PcapSource(flows50.pcap).load_with_records()
    exact = [FEATURE_COLUMNS.index(c) for c in EXACT]
    dur = FEATURE_COLUMNS.index("Dur")
    for attempt in (1, 2):
        out = tmp_path / f"live-{attempt}.pcap"
        report, got = _replay_live(netns, flows50, out, 1.0, None, "auto")
        assert report.packets == flows50.packets == got["packets"] and got["dropped"] == 0
        assert got["finished"]
        assert report.backend == "scapy"  # auto: timed replays go through the scapy loop
        assert report.span_s == pytest.approx(1.1, abs=0.3)
        assert report.seconds >= report.span_s  # an absolute schedule: never early
        live, live_records = PcapSource(out).load_with_records()
        assert live_records.tolist() == records.tolist() and live.y.tolist() == offline.y.tolist()
        assert np.array_equal(live.X[:, exact], offline.X[:, exact])
        X, X0 = live.X.astype(np.float64), offline.X.astype(np.float64)
        match = _timing_match(X, X0).mean()
        median = np.median(np.abs(X[:, dur] - X0[:, dur]) / X0[:, dur])
        late = report.seconds - report.span_s
        if median < 0.01 and late < 0.25 and (match >= 0.9 or not report.realtime):
            break
    assert median < 0.01, f"median Dur error {median:.2%} in two runs"
    assert late < 0.25, f"the replay ended {late:.3f} s late in two runs"
    assert match >= 0.9 or not report.realtime, f"{match:.0%} of flows on time in two runs"


@pytest.mark.parametrize(("speed", "max_gap_s", "backend"),
                         [(0.0, None, "auto"), (1.0, 0.002, "tcpreplay")],
                         ids=["top-speed", "gaps-capped"])  # fmt: skip
def test_tcpreplay_replays_every_packet(
    netns: NetnsPair, flows50: BuildReport, tmp_path, speed: float, max_gap_s: float | None,
    backend: str,
):  # fmt: skip
    """tcpreplay at top speed, and timed with gaps capped at 2 ms: every packet arrives,
    so every size and count feature is exact (its timing drifts, see traffic.replay).

    A top-speed burst of 350 frames in about 10 ms can overrun the sniffer (a Python
    thread) on a loaded machine; the kernel then counts the frames it dropped.  That is
    the observer failing, not tcpreplay, so a run with kernel drops gets one more run;
    the second must be whole.  Wall-clock speed is bench/'s business, not asserted here.
    """
    if shutil.which("tcpreplay") is None:
        pytest.skip("tcpreplay is not installed (apt-get install tcpreplay)")
    live_pcap = tmp_path / "live.pcap"
    for _ in (1, 2):
        report, got = _replay_live(netns, flows50, live_pcap, speed, max_gap_s, backend)
        if got["dropped"] == 0:
            break
    assert got["dropped"] == 0, f"the sniffer's kernel buffer dropped {got['dropped']} frames twice"
    assert report.packets == flows50.packets == got["packets"]
    times, _ = read_frames(flows50.pcap)
    assert report.backend == "tcpreplay"
    if max_gap_s is None:
        assert report.span_s == 0.0  # no schedule: as fast as the link takes them
    else:  # a re-timed copy: ~0.3 s of gaps <= 2 ms instead of 1.1 s
        assert report.span_s == pytest.approx(send_offsets(times, 1.0, max_gap_s)[-1] / 1e9)
        assert report.span_s < 0.5 * (times[-1] - times[0]) / 1e9
        assert report.seconds >= report.span_s  # an absolute schedule: never early
    extracted = extract(live_pcap)
    assert len(extracted.flows) == 50
    live = PcapSource(live_pcap).load()
    offline = PcapSource(flows50.pcap).load()
    exact = [FEATURE_COLUMNS.index(c) for c in EXACT]
    assert np.array_equal(live.X[:, exact], offline.X[:, exact])


def test_capture_command_writes_what_it_caught(tmp_path):
    """The CLI's capture: a timeout ends it and the pcap holds exactly what was caught."""
    if os.geteuid() != 0:
        pytest.skip("live capture needs root: it opens a raw packet socket")
    out = tmp_path / "idle.pcap"
    captured = capture_command("lo", out, timeout_s=0.2, bpf="tcp port 1")
    assert out.is_file() and captured.dropped == 0
    assert len(read_frames(out)[1]) == len(captured)


LIVE_SHARE = """
import sys
import numpy as np
from iomt.scenarios.data_plan import capture_share, prepare_data
from iomt.scenarios.schema import validate_scenario
dataset, iface, truth, out, cache = sys.argv[1:]
traffic = {"source": "live", "iface": iface, "capture_s": 8, "truth": truth, "cache_dir": cache}
scenario = validate_scenario({
    "name": "live", "federation": {"hmus": 2, "clients_per_round": 2},
    "data": {"dataset": dataset, "limit": 2000}, "traffic": traffic,
})
data = prepare_data(scenario)
print("ready", flush=True)
x, y = capture_share(scenario, data, out)
np.savez(out + ".npz", x=x, y=y, mean=data.scaler.mean, std=data.scaler.std)
"""


def test_a_live_hmu_trains_on_what_it_captured(
    netns: NetnsPair, flows50: BuildReport, dataset_path: Path, tmp_path
):
    """``traffic.source: live``: an HMU's rows are the flows it sniffed, labelled and
    scaled exactly like the replayed capture's (sizes and counts compared exactly)."""
    out = tmp_path / "hmu.pcap"
    hmu = _in_netns(netns.b, LIVE_SHARE, dataset_path, netns.iface_b, flows50.truth, out,
                    tmp_path / "cache")  # fmt: skip
    replay = None
    try:
        assert ready(hmu, 60), hmu.stderr.read() if hmu.poll() is not None else ""
        time.sleep(1.0)  # the capture opens right after "ready"
        replay = _in_netns(netns.a, REPLAY, flows50.pcap, netns.iface_a, 1.0, "", "auto")
        _, err = replay.communicate(timeout=30)
        assert replay.returncode == 0, err
        _, err = hmu.communicate(timeout=60)
        assert hmu.returncode == 0, err
    finally:
        for proc in (hmu, replay):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    got = np.load(str(out) + ".npz")
    offline = PcapSource(flows50.pcap).load()
    assert got["y"].tolist() == offline.y.tolist()
    exact = [FEATURE_COLUMNS.index(c) for c in EXACT]
    scaled = Standardiser(got["mean"], got["std"], 1).transform(offline.X)
    np.testing.assert_allclose(got["x"][:, exact], scaled[:, exact], rtol=1e-5, atol=1e-5)
