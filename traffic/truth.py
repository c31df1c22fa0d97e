"""Ground truth beside a capture: which flow is which record, label and attack category.

Each pcap ``name.pcap`` gets a sidecar ``name.flows.jsonl`` with one JSON object per
flow: the 5-tuple, the flow's first packet time in integer nanoseconds since the epoch
(``start_ns``, exact in a nanosecond pcap), ``label`` (0 normal, 1 attack),
``category`` and the dataset row it was built from (``record``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from iomt.errors import DataError

SIDECAR_SUFFIX = ".flows.jsonl"

FlowKey = tuple[str, str, int, int, int, int]
"""(src, dst, sport, dport, proto, start_ns) of a flow."""


@dataclass(frozen=True, slots=True)
class TruthEntry:
    """The ground truth of one flow."""

    src: str
    dst: str
    sport: int
    dport: int
    proto: int
    start_ns: int
    label: int
    category: str
    record: int

    @property
    def key(self) -> FlowKey:
        """The flow's 5-tuple and start time."""
        return (self.src, self.dst, self.sport, self.dport, self.proto, self.start_ns)


def sidecar_path(pcap: str | os.PathLike[str]) -> Path:
    """``x.pcap`` -> ``x.flows.jsonl`` (any other name gets the suffix appended)."""
    pcap = Path(pcap)
    stem = pcap.name[: -len(".pcap")] if pcap.name.endswith(".pcap") else pcap.name
    return pcap.with_name(stem + SIDECAR_SUFFIX)


def write_truth(path: str | os.PathLike[str], entries: Iterable[TruthEntry]) -> int:
    """Write one JSON line per entry; returns how many were written."""
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for entry in entries:
            f.write(json.dumps(asdict(entry), separators=(",", ":")) + "\n")
            n += 1
    return n


def read_truth(path: str | os.PathLike[str]) -> list[TruthEntry]:
    """Read a sidecar; a missing file or a bad line is a one-line ``DataError``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"ground truth not found: {path} (build the capture with traffic build)")
    out = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                out.append(
                    TruthEntry(
                        str(obj["src"]), str(obj["dst"]), int(obj["sport"]), int(obj["dport"]),
                        int(obj["proto"]), int(obj["start_ns"]), int(obj["label"]),
                        str(obj["category"]), int(obj["record"]),
                    )
                )  # fmt: skip
            except (ValueError, KeyError, TypeError) as exc:
                raise DataError(f"{path}: line {number} is not a flow entry ({exc})") from None
    return out
