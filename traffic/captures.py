"""Building captures on disk: one pcap for the ``traffic build`` command, one per HMU.

``build_capture`` writes the packets of dataset rows as one pcap with its ground-truth
sidecar.  ``build_captures`` writes one pcap per HMU from row-index partitions (from
``iomt.fedlearn.partition``) into a cache directory keyed by the SHA-256 of the dataset
file, the synthesis settings and the partitions: the first build writes the files
and a ``manifest.json`` last; a later build with the same inputs finds the manifest
and returns at once.  Builds go to a temporary directory renamed into place, so an
interrupted build never looks complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from iomt.errors import DataError
from iomt.traffic.dataset import RawTable, read_wustl_csv
from iomt.traffic.pcap import write_pcap
from iomt.traffic.synthesis import SynthesisConfig, Synthesizer
from iomt.traffic.truth import sidecar_path, write_truth
from iomt.wire.topics import hmu_ids

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Bump when the packets built for the same inputs change, to invalidate caches."""
MANIFEST = "manifest.json"


@dataclass
class BuildReport:
    """What one capture build wrote."""

    pcap: Path
    truth: Path
    flows: int
    packets: int
    seconds: float


@dataclass
class CaptureSet:
    """Per-HMU captures in one cache directory."""

    root: Path
    pcaps: list[Path]
    cache_hit: bool
    key: str
    packets: int = 0
    seconds: float = 0.0
    flows: list[int] = field(default_factory=list)

    def truth(self, hmu: int) -> Path:
        """Ground-truth sidecar of HMU ``hmu``'s capture."""
        return sidecar_path(self.pcaps[hmu])


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, hex."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    return h.hexdigest()


def _complete(root: Path, names: list[str]) -> bool:
    files = [root / MANIFEST] + [root / n for n in names] + [sidecar_path(root / n) for n in names]
    return all(f.is_file() for f in files)


def _write(
    synth: Synthesizer, raw: RawTable, rows: np.ndarray, pcap: Path, stream: int | None
) -> BuildReport:
    started = time.perf_counter()
    capture = synth.build(raw, rows, stream=stream)
    write_pcap(pcap, capture.times, capture.frames)
    truth = sidecar_path(pcap)
    write_truth(truth, capture.truth)
    if capture.unread:
        log.warning("%s: %d flows too small to carry their readings", pcap, capture.unread)
    return BuildReport(pcap, truth, len(capture.truth), len(capture), time.perf_counter() - started)


def build_capture(
    dataset: str | os.PathLike[str],
    out: str | os.PathLike[str],
    limit: int | None = None,
    config: SynthesisConfig | None = None,
    raw: RawTable | None = None,
) -> BuildReport:
    """Write the first ``limit`` rows (all if ``None``) of ``dataset`` to the pcap ``out``.

    The sidecar goes beside it (``out`` with ``.flows.jsonl`` for ``.pcap``).  ``raw``
    skips reading the CSV when the caller already has it.
    """
    raw = raw if raw is not None else read_wustl_csv(dataset)
    n = len(raw) if limit is None else max(0, min(int(limit), len(raw)))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return _write(Synthesizer(config), raw, np.arange(n), out, None)


def capture_key(digest: str, parts: Sequence[np.ndarray], config: SynthesisConfig) -> str:
    """Cache key of a per-HMU build: dataset digest, settings and partitions."""
    h = hashlib.sha256()
    h.update(f"iomt-traffic-captures/{FORMAT_VERSION}/{digest}/".encode())
    h.update(config.model_dump_json().encode())
    for part in parts:
        h.update(b"/part/")
        h.update(np.asarray(part, dtype="<i8").tobytes())
    return h.hexdigest()


def build_captures(
    dataset: str | os.PathLike[str],
    parts: Sequence[np.ndarray],
    cache_dir: str | os.PathLike[str],
    config: SynthesisConfig | None = None,
    names: Sequence[str] | None = None,
) -> CaptureSet:
    """One pcap (``<name>.pcap`` + sidecar) per partition, cached (module docstring).

    ``parts[i]`` holds the dataset row indices of capture ``i``, named ``names[i]``
    (default ``hmu-01``, ``hmu-02``, ...); each gets its own random stream of
    ``config.seed``.
    """
    config = config or SynthesisConfig()
    dataset = Path(dataset)
    if not dataset.is_file():
        raise DataError(f"dataset not found: {dataset}")
    parts = [np.asarray(p, dtype=np.int64) for p in parts]
    key = capture_key(file_digest(dataset), parts, config)
    root = Path(cache_dir) / key[:24]
    stems = list(names) if names is not None else hmu_ids(len(parts))
    if len(stems) != len(parts) or len(set(stems)) != len(stems):
        raise ValueError("names must give each part its own name")
    names = [f"{stem}.pcap" for stem in stems]
    manifest = root / MANIFEST
    if _complete(root, names):
        log.info("captures cache hit: %s", root)
        info = json.loads(manifest.read_text(encoding="utf-8"))
        return CaptureSet(root, [root / n for n in names], True, key, int(info.get("packets", 0)),
                          0.0, [int(x) for x in info.get("flows", [])])  # fmt: skip
    started = time.perf_counter()
    raw = read_wustl_csv(dataset)
    for part in parts:
        if len(part) and (part.min() < 0 or part.max() >= len(raw)):
            raise DataError(f"partition row index out of range 0..{len(raw) - 1}")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.with_name(f"{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        synth = Synthesizer(config)
        reports = [
            _write(synth, raw, part, tmp / name, stream=i)
            for i, (part, name) in enumerate(zip(parts, names, strict=True))
        ]
        packets = sum(r.packets for r in reports)
        flows = [r.flows for r in reports]
        (tmp / MANIFEST).write_text(
            json.dumps({"key": key, "dataset": dataset.name, "config": config.model_dump(),
                        "hmus": len(parts), "flows": flows, "packets": packets}, indent=1),
            encoding="utf-8",
        )  # fmt: skip
        if _complete(root, names):  # a concurrent build finished first: keep its files
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            shutil.rmtree(root, ignore_errors=True)  # a damaged cache entry
            os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    seconds = time.perf_counter() - started
    log.info("built %d captures (%d packets) in %.2f s: %s", len(parts), packets, seconds, root)
    return CaptureSet(root, [root / n for n in names], False, key, packets, seconds, flows)
