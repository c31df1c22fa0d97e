"""Traffic synthesis and capture parsing throughput on WUSTL-EHMS-2020.

Prints three figures (targets from the issue):

1. packets built per second by the synthesiser, all 16,318 records (>= 100 k/s), and
   with the pcap written as well;
2. packets parsed into flow features per second from that pcap (>= 300 k/s), and the
   streaming assembler's rate for comparison;
3. seconds from the CSV to per-HMU feature tables for 20 HMUs: read, partition (iid),
   build 20 pcaps with sidecars, then read each back as a labelled ``FlowTable``
   (<= 15 s).

Wall-clock figures come with CPU seconds of this process: the machine is shared, so
when others are busy the CPU-based rate is the fairer one.

Run: ``.venv/bin/python -m bench.traffic [--dataset CSV] [--hmus 20] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from iomt.fedlearn.config import PartitionConfig
from iomt.fedlearn.partition import partition
from iomt.traffic.captures import build_captures
from iomt.traffic.dataset import LABEL_COLUMN, read_wustl_csv
from iomt.traffic.flow import FlowAssembler
from iomt.traffic.pcap import read_packets, write_pcap
from iomt.traffic.source import PcapSource, extract
from iomt.traffic.synthesis import Synthesizer

ROOT = Path(__file__).resolve().parents[1]


def default_dataset() -> Path:
    named = os.environ.get("IOMT_DATASET")
    return Path(named) if named else ROOT.parent / "shared" / "data" / "wustl-ehms-2020.csv"


def timed(fn, repeat: int):
    """Best wall and CPU seconds over ``repeat`` runs, and the last result."""
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return min(walls), min(cpus), result


def rate(n: int, wall: float, cpu: float) -> str:
    return f"{n / wall:>10,.0f}/s wall  {n / cpu:>10,.0f}/s cpu"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=default_dataset())
    parser.add_argument("--hmus", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    raw = read_wustl_csv(args.dataset)
    synth = Synthesizer()
    synth.build(raw, np.arange(200))  # warm the shape caches and imports
    print(f"WUSTL-EHMS-2020: {len(raw):,} records; best of {args.repeat} (machine may be shared)")

    wall, cpu, capture = timed(lambda: synth.build(raw), args.repeat)
    n = len(capture)
    print(f"1. packets built        {n:>8,} pkts  {rate(n, wall, cpu)}   target >= 100,000/s")
    with tempfile.TemporaryDirectory(prefix="iomt-bench-traffic-") as tmp:
        pcap = Path(tmp) / "all.pcap"

        def build_and_write() -> None:
            c = synth.build(raw)
            write_pcap(pcap, c.times, c.frames)

        wall, cpu, _ = timed(build_and_write, args.repeat)
        print(f"   built + pcap written {n:>8,} pkts  {rate(n, wall, cpu)}")

        wall, cpu, ext = timed(lambda: extract(pcap), args.repeat)
        print(
            f"2. parsed into features {n:>8,} pkts  {rate(n, wall, cpu)}   target >= 300,000/s"
            f"  ({len(ext.flows):,} flows)"
        )

        def streaming() -> int:
            asm = FlowAssembler()
            return len(asm.feed_many(read_packets(pcap)) + asm.flush())

        wall, cpu, _ = timed(streaming, 1)
        print(f"   streaming assembler  {n:>8,} pkts  {rate(n, wall, cpu)}  (no features)")

        def per_hmu(cache: Path) -> int:
            table = read_wustl_csv(args.dataset)
            rows = np.arange(len(table))
            labels = table.column(LABEL_COLUMN).astype(np.int64)
            parts = partition(rows, labels, PartitionConfig(kind="iid"), args.hmus,
                              np.random.default_rng(0))  # fmt: skip
            captures = build_captures(args.dataset, parts, cache)
            return sum(len(PcapSource(p).load()) for p in captures.pcaps)

        w, c = time.perf_counter(), time.process_time()
        flows = per_hmu(Path(tmp) / "cache")
        wall, cpu = time.perf_counter() - w, time.process_time() - c
        print(
            f"3. CSV -> {args.hmus} HMU feature tables: {flows:,} flows in {wall:.2f} s wall"
            f" ({cpu:.2f} s cpu)   target <= 15 s"
        )
        w = time.perf_counter()
        per_hmu(Path(tmp) / "cache")
        print(f"   again, captures from the cache: {time.perf_counter() - w:.2f} s wall")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
