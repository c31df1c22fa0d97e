"""Flow features from a capture: the ``FeatureSource`` an HMU reads its pcap through.

``extract`` reads a pcap at full speed (``iomt.traffic.pcap.read_columns``), assembles its
flows (``iomt.traffic.batch``) and computes the 34 ``FEATURE_COLUMNS``
(``iomt.traffic.features``).  ``PcapSource`` joins the flows with the ground-truth sidecar
(``iomt.traffic.truth``) on 5-tuple and start time and returns a ``FlowTable`` in dataset
row order, interchangeable with ``CsvSource``.  ``write_features_csv`` is the
``traffic features PCAP --out CSV`` command.
"""

from __future__ import annotations

import csv
import ipaddress
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from iomt.errors import DataError
from iomt.traffic.batch import assemble
from iomt.traffic.dataset import FEATURE_COLUMNS, FlowTable
from iomt.traffic.features import FlowRecords, feature_matrix
from iomt.traffic.flow import Flow
from iomt.traffic.pcap import read_columns
from iomt.traffic.truth import FlowKey, TruthEntry, read_truth, sidecar_path

log = logging.getLogger(__name__)


@dataclass
class Extracted:
    """The flows of one capture (by start time) and their ``(n, 34)`` float64 features."""

    flows: FlowRecords
    X: np.ndarray

    def keys(self) -> list[FlowKey]:
        """(src, dst, sport, dport, proto, start_ns) of every flow."""
        f = self.flows
        return list(
            zip(
                [_text(a) for a in f.src], [_text(a) for a in f.dst], f.sport.tolist(),
                f.dport.tolist(), f.proto.tolist(), f.start_ns.tolist(), strict=True,
            )
        )  # fmt: skip


@lru_cache(maxsize=4096)
def _text(address: bytes) -> str:
    return str(ipaddress.ip_address(address))


def flow_text(flow: Flow) -> dict[str, Any]:
    """A flow's identity as JSON-ready fields (the keys of a ``TruthEntry``)."""
    return {
        "src": _text(flow.src), "dst": _text(flow.dst), "sport": flow.sport,
        "dport": flow.dport, "proto": flow.proto, "start_ns": flow.start_ns,
    }  # fmt: skip


def extract(
    path: str | os.PathLike[str],
    idle_timeout_s: float = 60.0,
    active_timeout_s: float | None = None,
) -> Extracted:
    """Flows and features of the capture at ``path`` (``DataError`` if it is damaged)."""
    flows = assemble(read_columns(path), idle_timeout_s, active_timeout_s)
    return Extracted(flows, feature_matrix(flows))


def join_truth(
    extracted: Extracted, truth: list[TruthEntry], where: str, strict: bool = True
) -> tuple[np.ndarray, list[TruthEntry]]:
    """Rows of ``extracted`` matched to ``truth`` entries, ordered by dataset record.

    Returns the flow indices and their entries.  With ``strict`` a flow without an
    entry, or an entry without a flow, is a ``DataError``; otherwise they are dropped
    with a warning.
    """
    by_key = {e.key: e for e in truth}
    matched: list[tuple[int, TruthEntry]] = []
    unknown = 0
    for i, key in enumerate(extracted.keys()):
        entry = by_key.pop(key, None)
        if entry is None:
            unknown += 1
        else:
            matched.append((i, entry))
    if unknown or by_key:
        message = (
            f"{where}: {unknown} of {len(extracted.flows)} flows have no ground truth and"
            f" {len(by_key)} of {len(truth)} truth entries no flow"
        )
        if strict:
            raise DataError(message + " (capture and sidecar do not belong together)")
        log.warning("%s; dropped", message)
    matched.sort(key=lambda m: (m[1].record, m[1].start_ns))
    return np.array([i for i, _ in matched], dtype=np.int64), [e for _, e in matched]


@dataclass(frozen=True)
class PcapSource:
    """A ``FeatureSource`` over a capture and its ground-truth sidecar.

    ``truth`` defaults to the sidecar beside the pcap (``x.pcap`` -> ``x.flows.jsonl``).
    Rows come out in dataset record order, so a capture of rows ``r`` lines up with
    ``CsvSource`` rows ``r``.
    """

    path: Path
    truth: Path | None = None
    strict: bool = True
    idle_timeout_s: float = 60.0

    def load(self) -> FlowTable:
        """Read, assemble, extract and label the capture's flows."""
        return self.load_with_records()[0]

    def load_with_records(self) -> tuple[FlowTable, np.ndarray]:
        """The table and, per row, the dataset record the flow was built from."""
        extracted = extract(self.path, self.idle_timeout_s)
        truth_path = self.truth or sidecar_path(self.path)
        index, entries = join_truth(extracted, read_truth(truth_path), str(self.path), self.strict)
        table = FlowTable(
            extracted.X[index].astype(np.float32),
            np.array([e.label for e in entries], dtype=np.int64),
            np.array([e.category for e in entries], dtype=str),
            FEATURE_COLUMNS,
        )
        return table, np.array([e.record for e in entries], dtype=np.int64)


IDENTITY_COLUMNS = ("src", "dst", "sport", "dport", "proto", "start_ns")
TRUTH_COLUMNS = ("Label", "Attack Category", "record")


def write_features_csv(
    pcap: str | os.PathLike[str],
    out: str | os.PathLike[str],
    truth: str | os.PathLike[str] | None = None,
) -> int:
    """Write one CSV row per flow of ``pcap``: identity, 34 features, and ground truth.

    The ground-truth columns (``Label``, ``Attack Category``, ``record``) are added
    when a sidecar exists (``truth`` or the one beside the pcap); flows are then in
    record order, otherwise in start order.  Numbers are written so they read back
    exactly.  Returns the number of flows.
    """
    extracted = extract(pcap)
    truth_path = Path(truth) if truth else sidecar_path(pcap)
    keys = extracted.keys()
    entries: list[TruthEntry | None]
    if truth_path.is_file():
        index, found = join_truth(extracted, read_truth(truth_path), str(pcap), strict=False)
        rows, entries = index.tolist(), list(found)
    else:
        rows, entries = list(range(len(keys))), [None] * len(keys)
    out = Path(out)
    tmp = out.with_name(out.name + ".part")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        header = [*IDENTITY_COLUMNS, *FEATURE_COLUMNS]
        if truth_path.is_file():
            header += TRUTH_COLUMNS
        writer.writerow(header)
        X = extracted.X.tolist()
        for i, entry in zip(rows, entries, strict=True):
            row: list[object] = [*keys[i], *(repr(v) for v in X[i])]
            if entry is not None:
                row += [entry.label, entry.category, entry.record]
            writer.writerow(row)
    os.replace(tmp, out)
    return len(rows)
