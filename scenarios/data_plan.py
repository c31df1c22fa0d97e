"""Turn a scenario's data and traffic sections into each HMU's rows and the server's test rows.

Every party derives the same plan from the scenario and its seed, so a standalone
``iomt hmu`` on a Raspberry Pi and the server agree on who holds which flows without
exchanging any. The held-out split is stratified; the rest is dealt to the HMUs by the
scenario's partitioner. Features come from the CSV itself (``traffic.source: csv``), or
are measured back from packets: rebuilt per HMU and replayed from pcap (``replay``), or
read from captures someone else made (``pcap``). Scaling statistics are pooled from the
HMUs' own fits (counts, means and variances only), exactly what ``Standardiser.fit`` on
their union would give; the held-out rows never influence them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iomt.errors import DataError
from iomt.fedlearn.partition import partition, stratified_split
from iomt.fedlearn.scaling import Standardiser
from iomt.scenarios.schema import Scenario
from iomt.traffic.dataset import FlowTable, flow_table, read_wustl_csv
from iomt.traffic.fetch import resolve_dataset
from iomt.wire.topics import hmu_ids

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FederatedData:
    """Scaled training rows per HMU and the server's held-out test rows."""

    dataset: Path
    source: str
    feature_names: tuple[str, ...]
    parts: dict[str, tuple[np.ndarray, np.ndarray]]
    x_test: np.ndarray
    y_test: np.ndarray
    rows: int
    scaler: Standardiser
    synthetic: bool = False
    x_val: np.ndarray | None = None
    """Held-out rows the server chooses its alarm threshold on (``validation_fraction``)."""
    y_val: np.ndarray | None = None

    @property
    def n_features(self) -> int:
        return len(self.feature_names)


def cache_dir(scenario: Scenario) -> Path:
    """Where built captures and synthetic datasets are kept between runs."""
    if scenario.traffic.cache_dir:
        return Path(scenario.traffic.cache_dir).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "iomt-testbed"


def dataset_path(scenario: Scenario) -> tuple[Path, bool]:
    """The dataset to use, and whether it is synthetic (``data.fallback: synthetic``)."""
    try:
        return resolve_dataset(scenario.data), False
    except DataError:
        if scenario.data.fallback != "synthetic":
            raise
    from iomt.traffic.synthetic import generate
    from iomt.traffic.wustl_csv import write_csv

    rows = scenario.data.limit or 16318
    path = cache_dir(scenario) / "synthetic" / f"synthetic-seed{scenario.seed}-{rows}.csv"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_csv(generate(rows, np.random.default_rng([scenario.seed, 0x5F7])), path)
    log.warning("no WUSTL-EHMS-2020 dataset found: using synthetic IoMT traffic (%s)", path)
    return path, True


def split_and_partition(scenario: Scenario, y: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Row indices of each HMU's share and of the server's test split."""
    fed = scenario.federation
    rng = np.random.default_rng([scenario.seed, 0xDA7A])
    train_idx, test_idx = stratified_split(y, fed.test_fraction, rng)
    try:
        shares = partition(train_idx, y[train_idx], fed.partition, fed.hmus, rng)
    except ValueError as exc:
        raise DataError(f"cannot partition {len(train_idx)} training rows: {exc}") from None
    return shares, test_idx


def _scaled(
    scenario: Scenario,
    path: Path,
    train: list[FlowTable],
    test: FlowTable,
    rows: int,
    synthetic: bool,
) -> FederatedData:
    scaler = Standardiser.pooled([Standardiser.fit(t.X) for t in train])
    return FederatedData(
        dataset=path,
        source=scenario.traffic.source,
        feature_names=test.feature_names,
        parts={
            h: (scaler.transform(t.X), t.y) for h, t in zip(hmu_ids(len(train)), train, strict=True)
        },
        x_test=scaler.transform(test.X),
        y_test=test.y,
        rows=rows,
        scaler=scaler,
        synthetic=synthetic,
    )


def prepare_data(scenario: Scenario) -> FederatedData:
    """Load, split, partition and scale as the scenario says (raises ``DataError``); with
    ``federation.validation_fraction`` the held-out rows are split, stratified, into the
    server's validation and test rows (the HMUs' shares do not change)."""
    data = _prepare(scenario)
    share = scenario.federation.validation_fraction
    if not share:
        return data
    rng = np.random.default_rng([scenario.seed, 0x7A1])
    test_idx, val_idx = stratified_split(data.y_test, share, rng)
    return dataclasses.replace(
        data, x_test=data.x_test[test_idx], y_test=data.y_test[test_idx],
        x_val=data.x_test[val_idx], y_val=data.y_test[val_idx],
    )  # fmt: skip


def _prepare(scenario: Scenario) -> FederatedData:
    source = scenario.traffic.source
    if source == "pcap":
        return _from_pcaps(scenario)
    if source == "live":
        source = "replay"  # the plan, test split and scaling a live HMU agrees with
    path, synthetic = dataset_path(scenario)
    raw = read_wustl_csv(path)
    table = flow_table(raw, scenario.data.keep_identifiers)
    if scenario.data.limit is not None:
        table = table.subset(np.arange(min(scenario.data.limit, len(table))))
    shares, test_idx = split_and_partition(scenario, table.y)
    if source == "csv":
        train = [table.subset(share) for share in shares]
        return _scaled(scenario, path, train, table.subset(test_idx), len(table), synthetic)
    from iomt.traffic.captures import build_captures
    from iomt.traffic.source import PcapSource
    from iomt.traffic.synthesis import SynthesisConfig

    names = [*hmu_ids(len(shares)), "test"]
    captures = build_captures(
        path,
        [*shares, test_idx],
        cache_dir(scenario) / "captures",
        SynthesisConfig(seed=scenario.seed),
        names,
    )
    log.info(
        "replay: %d pcaps in %s (%s)",
        len(captures.pcaps),
        captures.root,
        "cached" if captures.cache_hit else f"built in {captures.seconds:.1f} s",
    )
    tables = [PcapSource(p).load() for p in captures.pcaps]
    return _scaled(scenario, path, tables[:-1], tables[-1], len(table), synthetic)


def capture_share(
    scenario: Scenario, data: FederatedData, out: Path
) -> tuple[np.ndarray, np.ndarray]:
    """``traffic.source: live``: capture, label and scale this HMU's training rows.

    Captures ``traffic.capture_s`` seconds on ``traffic.iface`` into ``out`` (a pcap),
    labels the flows from ``iomt.traffic.truth`` and scales them with the plan's statistics,
    so the HMU's model sees features on the same scale as everyone else's.
    """
    from iomt.traffic.live import LiveCapture
    from iomt.traffic.source import PcapSource

    traffic = scenario.traffic
    if not traffic.iface or not traffic.truth:
        raise DataError("traffic.source live needs traffic.iface and traffic.truth")
    capture = LiveCapture(traffic.iface)
    capture.start()
    try:
        capture.wait(traffic.capture_s)
    finally:
        captured = capture.stop()
    if not len(captured):
        raise DataError(f"no traffic captured on {traffic.iface} in {traffic.capture_s:g} s")
    pcap = captured.save(out, traffic.truth, strict=False)
    table = PcapSource(pcap, strict=False).load()
    log.info("live: %d flows captured on %s", len(table), traffic.iface)
    return data.scaler.transform(table.X), table.y


def _from_pcaps(scenario: Scenario) -> FederatedData:
    from iomt.traffic.source import PcapSource

    if not scenario.traffic.pcap_dir:
        raise DataError("traffic.source is pcap but traffic.pcap_dir is not set")
    root = Path(scenario.traffic.pcap_dir).expanduser()
    names = [f"{h}.pcap" for h in scenario.hmu_ids] + ["test.pcap"]
    missing = [n for n in names if not (root / n).is_file()]
    if missing:
        raise DataError(f"traffic.pcap_dir {root} lacks {', '.join(missing[:3])}")
    tables = [PcapSource(root / n).load() for n in names]
    return _scaled(scenario, root, tables[:-1], tables[-1], sum(len(t) for t in tables), False)
