"""Tests of the WUSTL-EHMS-2020 reader and feature table, on the real CSV and broken copies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from iomt.errors import DataError
from iomt.traffic.config import DataConfig
from iomt.traffic.dataset import (
    ALL_COLUMNS,
    CATEGORY_COLUMN,
    FEATURE_COLUMNS,
    IDENTIFIER_COLUMNS,
    LABEL_COLUMN,
    READING_COLUMNS,
    CsvSource,
    FeatureSource,
    FlowTable,
    read_wustl_csv,
)
from iomt.traffic.fetch import resolve_dataset

# `dataset_path` (tests/conftest.py) and `raw` (tests/traffic/conftest.py) are shared fixtures.


@pytest.fixture
def small_csv(dataset_path: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    """Header plus the first 5 rows of the real file, as lines to break."""
    with dataset_path.open() as handle:
        lines = [next(handle).rstrip("\n") for _ in range(6)]
    return tmp_path / "small.csv", lines


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_column_sets_partition_the_file() -> None:
    assert len(ALL_COLUMNS) == 45 and len(set(ALL_COLUMNS)) == 45
    assert len(IDENTIFIER_COLUMNS) == 9
    assert len(FEATURE_COLUMNS) == 34
    set_aside = set(ALL_COLUMNS) - set(FEATURE_COLUMNS) - {LABEL_COLUMN}
    assert set_aside == set(IDENTIFIER_COLUMNS) | {CATEGORY_COLUMN}
    assert set(READING_COLUMNS) <= set(FEATURE_COLUMNS)


def test_real_file_counts(raw) -> None:
    assert len(raw) == 16318
    labels = raw.column(LABEL_COLUMN)
    assert int((labels == 0).sum()) == 14272 and int((labels == 1).sum()) == 2046
    assert set(raw.columns) == set(ALL_COLUMNS)
    assert raw.column("SrcBytes").dtype == np.float64


@pytest.mark.real_data
def test_real_file_text_columns(raw) -> None:
    assert set(raw.column("Dir")) == {"->"}  # padding stripped
    assert all(f == f.strip() and f for f in raw.column("Flgs"))
    assert {"dircproxy", "fido", "tfido"} <= set(raw.column("Sport"))
    categories = raw.column(CATEGORY_COLUMN)
    assert dict(zip(*np.unique(categories, return_counts=True), strict=True)) == {
        "normal": 14272,
        "Spoofing": 1124,
        "Data Alteration": 922,
    }
    with pytest.raises(KeyError, match="no column 'nope'"):
        raw.column("nope")


def test_feature_table_default(dataset_path: Path) -> None:
    table = CsvSource(dataset_path).load()
    assert isinstance(table, FlowTable)
    assert table.X.shape == (16318, 34) and table.X.dtype == np.float32
    assert table.y.dtype == np.int64 and int(table.y.sum()) == 2046
    assert table.feature_names == FEATURE_COLUMNS
    assert not set(table.feature_names) & set(IDENTIFIER_COLUMNS)
    assert np.isfinite(table.X).all()
    assert ((table.category == "normal") == (table.y == 0)).all()


@pytest.mark.real_data
def test_feature_table_with_identifiers(dataset_path: Path) -> None:
    table = CsvSource(dataset_path, keep_identifiers=True, limit=500).load()
    assert table.X.shape == (500, 43)
    names = table.feature_names
    assert names[:6] == ("Dir", "Flgs", "SrcAddr", "DstAddr", "Sport", "Dport")
    sport = table.X[:, names.index("Sport")]
    assert sport[0] == 58059.0
    mac = table.X[:, names.index("SrcMac")]
    assert set(np.unique(mac)) <= {0.0, 1.0}


def test_is_a_feature_source(dataset_path: Path) -> None:
    assert isinstance(CsvSource(dataset_path), FeatureSource)


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.csv"
    with pytest.raises(DataError) as info:
        read_wustl_csv(missing)
    message = str(info.value)
    assert "\n" not in message
    assert str(missing) in message and "IOMT_DATASET" in message


def test_missing_column(small_csv) -> None:
    path, lines = small_csv
    cut = ALL_COLUMNS.index("SpO2")
    broken = [",".join(c for i, c in enumerate(line.split(",")) if i != cut) for line in lines]
    with pytest.raises(DataError, match="missing column.*'SpO2'") as info:
        read_wustl_csv(_write(path, broken))
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_bad_number(small_csv) -> None:
    path, lines = small_csv
    cells = lines[3].split(",")
    cells[ALL_COLUMNS.index("Dur")] = "fast"
    lines[3] = ",".join(cells)
    with pytest.raises(DataError, match=r"line 4, column 'Dur': 'fast' is not a number") as info:
        read_wustl_csv(_write(path, lines))
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_non_finite_number(small_csv) -> None:
    path, lines = small_csv
    cells = lines[2].split(",")
    cells[ALL_COLUMNS.index("Rate")] = "nan"
    lines[2] = ",".join(cells)
    with pytest.raises(DataError, match=r"line 3, column 'Rate': 'nan' is not finite"):
        read_wustl_csv(_write(path, lines))


def test_short_row(small_csv) -> None:
    path, lines = small_csv
    lines[5] = lines[5].rsplit(",", 1)[0]
    with pytest.raises(DataError, match="line 6 has 44 cells, the header has 45"):
        read_wustl_csv(_write(path, lines))


def test_header_only_and_empty(small_csv) -> None:
    path, lines = small_csv
    with pytest.raises(DataError, match="no data rows"):
        read_wustl_csv(_write(path, lines[:1]))
    path.write_text("")
    with pytest.raises(DataError, match="empty file"):
        read_wustl_csv(path)


def test_label_must_be_binary(small_csv) -> None:
    path, lines = small_csv
    lines[1] = lines[1].rsplit(",", 1)[0] + ",2"
    with pytest.raises(DataError, match="must hold 0 or 1"):
        CsvSource(_write(path, lines)).load()


def test_small_file_reads(small_csv) -> None:
    path, lines = small_csv
    table = CsvSource(_write(path, lines + [""])).load()  # a trailing blank line is fine
    assert len(table) == 5


def test_resolve_dataset(dataset_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IOMT_DATASET", raising=False)
    assert resolve_dataset(DataConfig(dataset=str(dataset_path))) == dataset_path
    with pytest.raises(DataError, match="no dataset given.*IOMT_DATASET") as info:
        resolve_dataset(DataConfig())
    assert "\n" not in str(info.value)
    monkeypatch.setenv("IOMT_DATASET", str(dataset_path))
    assert resolve_dataset(DataConfig()) == dataset_path
    monkeypatch.setenv("IOMT_DATASET", "/nonexistent/wustl.csv")
    with pytest.raises(DataError, match="dataset not found: /nonexistent/wustl.csv"):
        resolve_dataset(DataConfig())
