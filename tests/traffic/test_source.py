"""Captures as a FeatureSource: ground truth joins back to the dataset rows."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from iomt.errors import DataError
from iomt.traffic.captures import BuildReport, build_capture
from iomt.traffic.dataset import FEATURE_COLUMNS, FeatureSource, RawTable, flow_table
from iomt.traffic.source import PcapSource, write_features_csv
from iomt.traffic.synthesis import SynthesisConfig, Synthesizer
from iomt.traffic.truth import read_truth


def test_sidecar_maps_every_flow_to_its_record(small_capture: BuildReport, raw: RawTable):
    truth = read_truth(small_capture.truth)
    assert [e.record for e in truth] == list(range(300))
    labels = raw.column("Label")[:300].astype(int).tolist()
    categories = raw.column("Attack Category")[:300].tolist()
    assert [e.label for e in truth] == labels and [e.category for e in truth] == categories
    assert len({e.key for e in truth}) == 300  # 5-tuple + start is unique
    assert {(e.src, e.dst, e.dport, e.proto) for e in truth} == {
        ("10.0.1.172", "10.0.1.150", 1111, 6)
    }


def test_pcap_source_gives_the_csv_table_back(small_capture: BuildReport, raw: RawTable):
    source = PcapSource(small_capture.pcap)
    assert isinstance(source, FeatureSource)
    table, records = source.load_with_records()
    csv_table = flow_table(raw).subset(np.arange(300))
    assert table.feature_names == FEATURE_COLUMNS == csv_table.feature_names
    assert records.tolist() == list(range(300))
    assert np.array_equal(table.y, csv_table.y) and np.array_equal(
        table.category, csv_table.category
    )
    exact = [FEATURE_COLUMNS.index(c) for c in ("SrcBytes", "DstBytes", "TotPkts", "Temp", "ST")]
    assert np.array_equal(table.X[:, exact], csv_table.X[:, exact])
    close = np.abs(table.X - csv_table.X) <= 0.01 * np.abs(csv_table.X) + 1e-6
    assert close.mean() > 0.99


@pytest.mark.real_data
def test_identifiers_are_uniform_unless_kept(raw: RawTable):
    attacks = np.flatnonzero(raw.column("Label") == 1)[:20]
    normals = np.flatnonzero(raw.column("Label") == 0)[:20]
    rows = np.concatenate([normals, attacks])
    plain = Synthesizer().build(raw, rows)
    macs = {f[6:12] for f in plain.frames} | {f[0:6] for f in plain.frames}
    assert len(macs) == 2  # one sensor, one gateway, whatever the label
    kept = Synthesizer(SynthesisConfig(keep_identifiers=True)).build(raw, rows)
    sensor_macs = {f[6:12].hex(":") for f in kept.frames if f[34:36] != (1111).to_bytes(2, "big")}
    assert sensor_macs == {"84:3a:4b:0f:5b:94", "d8:9e:f3:95:02:75"}
    ports = {e.sport for e in kept.truth}
    assert ports == {int(p) for p in raw.column("Sport")[rows]}


def test_a_foreign_sidecar_is_refused(
    small_capture: BuildReport, tmp_path: Path, raw: RawTable, dataset_path
):
    config = SynthesisConfig(seed=99)
    other = build_capture(dataset_path, tmp_path / "other.pcap", 100, config, raw)
    with pytest.raises(DataError, match="do not belong together"):
        PcapSource(small_capture.pcap, truth=other.truth).load()
    loose = PcapSource(small_capture.pcap, truth=other.truth, strict=False).load()
    assert len(loose) == 0
    broken = tmp_path / "broken.flows.jsonl"
    broken.write_text(json.dumps({"src": "x"}) + "\n")
    with pytest.raises(DataError, match="line 1"):
        PcapSource(small_capture.pcap, truth=broken).load()


def test_features_csv_reads_back_exactly(small_capture: BuildReport, tmp_path: Path):
    out = tmp_path / "features.csv"
    assert write_features_csv(small_capture.pcap, out) == 300
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    table = PcapSource(small_capture.pcap).load()
    got = np.array([[float(r[c]) for c in FEATURE_COLUMNS] for r in rows], dtype=np.float32)
    assert np.array_equal(got, table.X)
    assert [int(r["Label"]) for r in rows] == table.y.tolist()
    assert rows[0]["src"] == "10.0.1.172" and rows[0]["dport"] == "1111"
