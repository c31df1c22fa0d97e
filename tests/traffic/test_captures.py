"""Per-HMU captures from partitions: written once, then served from the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from iomt.fedlearn.config import PartitionConfig
from iomt.fedlearn.partition import partition
from iomt.traffic.captures import build_captures
from iomt.traffic.dataset import RawTable
from iomt.traffic.source import PcapSource
from iomt.traffic.synthesis import SynthesisConfig
from iomt.traffic.truth import read_truth


def test_per_hmu_captures_are_cached_and_carry_their_rows(
    dataset_path: Path, raw: RawTable, tmp_path: Path
):
    rows = np.arange(400)
    labels = raw.column("Label")[rows].astype(int)
    parts = partition(
        rows, labels, PartitionConfig(kind="iid", min_samples=10), 4, np.random.default_rng(3)
    )
    first = build_captures(dataset_path, parts, tmp_path)
    assert not first.cache_hit and len(first.pcaps) == 4 and first.flows == [len(p) for p in parts]
    stamp = [p.stat().st_mtime_ns for p in first.pcaps]
    again = build_captures(dataset_path, parts, tmp_path)
    assert again.cache_hit and again.root == first.root
    assert [p.stat().st_mtime_ns for p in again.pcaps] == stamp  # not rewritten
    for i, part in enumerate(parts):
        assert sorted(e.record for e in read_truth(first.truth(i))) == sorted(part.tolist())
        table, records = PcapSource(first.pcaps[i]).load_with_records()
        assert records.tolist() == sorted(part.tolist())
        assert table.y.tolist() == raw.column("Label")[records].astype(int).tolist()
    # HMUs draw their own ports: no two captures share a source port sequence
    ports = [[e.sport for e in read_truth(first.truth(i))][:5] for i in range(4)]
    assert len({tuple(p) for p in ports}) == 4
    # other settings or other partitions are another cache entry
    other = build_captures(dataset_path, parts, tmp_path, SynthesisConfig(seed=1))
    assert not other.cache_hit and other.root != first.root
    # a damaged entry is rebuilt
    first.pcaps[0].unlink()
    rebuilt = build_captures(dataset_path, parts, tmp_path)
    assert not rebuilt.cache_hit and rebuilt.pcaps[0].is_file()
