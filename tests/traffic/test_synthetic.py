"""Tests of the synthetic WUSTL-EHMS-2020 generator: schema, shares, consistency, learnability."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from iomt.errors import DataError
from iomt.traffic.dataset import (
    ALL_COLUMNS,
    CATEGORY_COLUMN,
    IDENTIFIER_COLUMNS,
    LABEL_COLUMN,
    NUMERIC_COLUMNS,
    STRING_COLUMNS,
    RawTable,
    flow_table,
    read_wustl_csv,
)
from iomt.traffic.fidelity import fidelity
from iomt.traffic.synthetic import DEFAULT_ATTACK_SHARE, RUN_LENGTHS, generate
from iomt.traffic.wustl_csv import write_csv

N_ROWS = 16318  # the real file's size


@pytest.fixture(scope="module")
def table() -> RawTable:
    return generate(N_ROWS, np.random.default_rng(2020))


@pytest.fixture(scope="module")
def written(table: RawTable, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_csv(table, tmp_path_factory.mktemp("synthetic") / "synthetic.csv")


def _relations(raw: RawTable) -> dict[str, np.ndarray]:
    """Per-row checks of the Argus relations that hold on every row of the real file.

    Tolerances cover Argus's printing: loads and rates rounded to units above 1000
    (relative 5e-4), loss percentages to 6 decimals.
    """
    c = raw.column
    load, rate, dur = c("Load"), c("Rate"), c("Dur")
    return {
        "TotBytes": c("TotBytes") == c("SrcBytes") + c("DstBytes"),
        "Load": np.abs(load - c("SrcLoad") - c("DstLoad")) <= 5e-4 * load + 1.0,
        "Rate": np.abs(rate - (c("TotPkts") - 1) / dur) <= 5e-4 * rate + 1e-3,
        "pLoss": np.abs(c("pLoss") - 100 * c("Loss") / (c("TotPkts") + c("Loss"))) <= 1e-5,
        "sizes": (c("sMinPktSz") <= c("sMaxPktSz"))
        & (c("dMinPktSz") <= c("dMaxPktSz"))
        & (c("SrcBytes") >= c("sMaxPktSz"))
        & (c("DstBytes") >= c("dMaxPktSz")),
        "TotPkts": c("TotPkts") >= 2,
    }


def test_header_is_the_real_header(written: Path, dataset_path: Path) -> None:
    with dataset_path.open() as real, written.open() as synthetic:
        assert synthetic.readline() == real.readline()


def test_schema_and_types(table: RawTable) -> None:
    assert tuple(table.columns) == ALL_COLUMNS and len(table) == N_ROWS
    for name in NUMERIC_COLUMNS:
        assert table.column(name).dtype == np.float64, name
        assert np.isfinite(table.column(name)).all(), name
    for name in STRING_COLUMNS:
        assert table.column(name).dtype.kind == "U", name
    assert set(table.column("SrcAddr")) == {"10.0.1.172"}
    assert set(table.column("DstAddr")) == {"10.0.1.150"}
    assert set(table.column("Dport")) == {1111.0}
    sport = table.column("Sport").astype(int)
    assert sport.min() >= 49152 and sport.max() <= 65535
    assert np.array_equal(table.column("Packet_num"), np.arange(1, N_ROWS + 1))


def test_csv_reads_back_exactly(table: RawTable, written: Path, raw: RawTable) -> None:
    back = read_wustl_csv(written)
    real = raw  # the real file, parsed once per session (tests/traffic/conftest.py)
    assert tuple(back.columns) == tuple(real.columns) == ALL_COLUMNS
    for name in ALL_COLUMNS:
        assert back.column(name).dtype.kind == real.column(name).dtype.kind, name
        assert np.array_equal(back.column(name), table.column(name)), name
    with written.open() as handle:
        first = handle.readlines()[1].split(",")
    assert first[0] == "   ->" and len(first[1]) == 10  # Argus's padding, as in the real file


def test_labels_follow_categories_and_share(table: RawTable) -> None:
    labels, category = table.column(LABEL_COLUMN), table.column(CATEGORY_COLUMN)
    assert set(category) == {"normal", "Spoofing", "Data Alteration"}
    assert np.array_equal(labels == 0, category == "normal")
    assert int(labels.sum()) == round(DEFAULT_ATTACK_SHARE * N_ROWS)  # 2,046 as in the file
    # About 85 runs, Spoofing with odds 0.549 each (sd ~0.055): 0.35-0.75 is 3.5 sd either side.
    spoofing = float(np.mean(category[labels == 1] == "Spoofing"))
    assert 0.35 < spoofing < 0.75
    starts = np.flatnonzero(np.diff(np.r_[0, labels, 0]) == 1)
    ends = np.flatnonzero(np.diff(np.r_[0, labels, 0]) == -1)
    lengths = ends - starts
    # A run may meet the next one; only the last run may be shorter than the minimum.
    assert (lengths[:-1] >= RUN_LENGTHS[0]).all()


@pytest.mark.parametrize("share", [0.0, 0.3, 1.0])
def test_attack_share_is_configurable(share: float) -> None:
    raw = generate(700, np.random.default_rng(1), attack_share=share)
    assert int(raw.column(LABEL_COLUMN).sum()) == round(share * 700)
    assert all(_relations(raw)[k].all() for k in _relations(raw))


def test_reproducible_by_seed() -> None:
    a = generate(800, np.random.default_rng(42))
    b = generate(800, np.random.default_rng(42))
    c = generate(800, np.random.default_rng(43))
    for name in ALL_COLUMNS:
        assert np.array_equal(a.column(name), b.column(name)), name
    assert not np.array_equal(a.column("Dur"), c.column("Dur"))
    assert not np.array_equal(a.column("Pulse_Rate"), c.column("Pulse_Rate"))


def test_flow_statistics_hold_the_real_relations(table: RawTable, raw: RawTable) -> None:
    for name, ok in _relations(raw).items():
        assert ok.all(), f"real file breaks {name}: the relation is wrong"
    for name, ok in _relations(table).items():
        assert ok.all(), f"{int((~ok).sum())} synthetic rows break {name}"


def test_flow_statistics_follow_one_packet_train(table: RawTable) -> None:
    c = table.column
    dur_ms = 1000 * c("Dur")
    n_src = np.round(dur_ms / c("SIntPkt")) + 1  # the gateway sends first and last
    n_dst = c("TotPkts") - n_src
    assert (n_dst >= 2).all()
    for side, n in (("s", n_src), ("d", n_dst)):
        total = c("SrcBytes" if side == "s" else "DstBytes")
        big, small = c(f"{side}MaxPktSz"), c(f"{side}MinPktSz")
        assert (big + (n - 1) * small <= total).all() and (total <= small + (n - 1) * big).all()
    src_load = 8 * c("SrcBytes") * (n_src - 1) / n_src / c("Dur")
    assert np.allclose(c("SrcLoad"), src_load, rtol=5e-4, atol=1.0)
    dst_load = 8 * c("DstBytes") * (n_dst - 1) / n_dst / c("Dur")
    assert np.allclose(c("DstLoad"), dst_load, rtol=5e-4, atol=1.0)
    # The destination's intervals lie within the flow; deviations within their bound.
    assert (c("DIntPkt") * (n_dst - 1) <= dur_ms + 1e-5).all()
    assert (c("SrcJitter") <= c("SIntPkt") * np.sqrt(n_src - 2) + 1e-5).all()
    assert (c("DstJitter") <= c("DIntPkt") * np.sqrt(n_dst - 2) + 1e-5).all()


def test_synthetic_records_rebuild_as_packets(table: RawTable) -> None:
    """The capture path (packets -> pcap -> flows -> features) reproduces the records."""
    report = fidelity(table, limit=400)
    assert report["flows"] == 400 and report["targets_met"], report["targets"]


def test_readings_are_plausible_with_sensor_zeros(table: RawTable) -> None:
    normal = table.column(LABEL_COLUMN) == 0
    ranges = {
        "Temp": (20, 35), "SpO2": (85, 100), "Pulse_Rate": (30, 200), "Heart_rate": (30, 130),
        "SYS": (80, 200), "DIA": (45, 120), "Resp_Rate": (4, 75), "ST": (-1, 1.5),
    }  # fmt: skip
    for name, (low, high) in ranges.items():
        values = table.column(name)[normal]
        live = values[values != 0]
        assert low <= live.min() and live.max() <= high, name
    zeros = {name: float(np.mean(table.column(name) == 0)) for name in ranges}
    assert zeros["Temp"] == 0.0
    assert 0.02 < zeros["Resp_Rate"] < 0.10 and 0.002 < zeros["ST"] < 0.03
    assert 0 < zeros["SYS"] == zeros["DIA"] < 0.05  # before the first cuff reading
    # Walks are smooth: consecutive flows of a stretch mostly repeat or step by one.
    temp = table.column("Temp")
    assert np.median(np.abs(np.diff(temp))) <= 1.0


def test_data_alteration_moves_readings(table: RawTable) -> None:
    category = table.column(CATEGORY_COLUMN)
    z = []
    for name in ("Temp", "SpO2", "Pulse_Rate", "Heart_rate", "SYS", "DIA", "Resp_Rate"):
        values = table.column(name)
        reference = values[(category == "normal") & (values != 0)]
        z.append(np.where(values != 0, np.abs(values - np.median(reference)) / reference.std(), 0))
    far = np.max(z, axis=0) > 3  # a live vital more than 3 sd from the normal median
    assert np.mean(far[category == "Data Alteration"]) > 0.3
    assert np.mean(far[category == "normal"]) < 0.05


def _logistic_regression(x: np.ndarray, y: np.ndarray, steps: int = 400) -> np.ndarray:
    """Weights (last one the bias) of an L2-regularised logistic regression, gradient descent."""
    a = np.c_[x, np.ones(len(x))]
    w = np.zeros(a.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(a @ w)))
        w -= 0.5 * (a.T @ (p - y) / len(y) + 1e-4 * w)
    return w


def _features(raw: RawTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    flows = flow_table(raw)  # identifiers set aside
    assert not set(flows.feature_names) & set(IDENTIFIER_COLUMNS)
    x = flows.X.astype(np.float64)
    return np.sign(x) * np.log1p(np.abs(x)), flows.y, flows.category


def test_attacks_are_learnable_without_identifiers() -> None:
    """Seeded: logistic regression beats the majority class by a wide margin."""
    x_train, y_train, _ = _features(generate(6000, np.random.default_rng(11)))
    x_test, y_test, category = _features(generate(3000, np.random.default_rng(12)))
    mean, sd = x_train.mean(axis=0), x_train.std(axis=0) + 1e-9
    w = _logistic_regression((x_train - mean) / sd, y_train)
    predicted = (np.c_[(x_test - mean) / sd, np.ones(len(x_test))] @ w > 0).astype(int)
    accuracy = float(np.mean(predicted == y_test))
    majority = float(np.mean(y_test == 0))
    assert accuracy >= majority + 0.04, (accuracy, majority)
    assert np.mean(predicted[category == "Data Alteration"]) >= 0.9
    assert np.mean(predicted[category == "Spoofing"]) >= 0.1
    assert np.mean(predicted[y_test == 0]) <= 0.02


def test_no_single_feature_gives_the_label_away(table: RawTable) -> None:
    x, y, _ = _features(table)
    n, positives = len(y), int(y.sum())
    best = 0.0
    for j in range(x.shape[1]):
        order = np.argsort(x[:, j], kind="stable")
        below = np.cumsum(y[order])  # attacks at or below each threshold
        k = np.arange(1, n + 1)
        correct = np.maximum(k - below + positives - below, below + n - k - (positives - below))
        best = max(best, float(correct.max()) / n)
    assert best < 0.97, best


def test_bad_arguments_and_tables() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="n_rows"):
        generate(0, rng)
    with pytest.raises(ValueError, match="attack_share"):
        generate(10, rng, attack_share=1.5)
    with pytest.raises(ValueError, match="patients"):
        generate(10, rng, patients=0)


def test_write_csv_refuses_what_it_cannot_write(tmp_path: Path) -> None:
    raw = generate(20, np.random.default_rng(0))
    short = RawTable({k: v for k, v in raw.columns.items() if k != "Dur"})
    with pytest.raises(DataError, match="lacks column"):
        write_csv(short, tmp_path / "a.csv")
    comma = RawTable({**raw.columns, "Flgs": np.full(len(raw), "e,s")})
    with pytest.raises(DataError, match="'Flgs'"):
        write_csv(comma, tmp_path / "b.csv")
    nan = RawTable({**raw.columns, "Dur": np.full(len(raw), np.nan)})
    with pytest.raises(DataError, match="non-finite"):
        write_csv(nan, tmp_path / "c.csv")
    assert list(tmp_path.iterdir()) == []
