"""The WUSTL-EHMS-2020 flow table: reading the CSV and turning it into IDS features.

WUSTL-EHMS-2020 (Hady et al., IEEE Access 8, 2020, doi:10.1109/ACCESS.2020.3000421)
has 45 columns: 35 Argus flow columns, 8 patient biometrics, ``Attack Category`` and
``Label``.  Every flow runs 10.0.1.172 -> 10.0.1.150:1111, so the flow *identifiers*
carry no behaviour, only leaks: all 2,046 attack rows share one source MAC,
``Packet_num`` and ``Sport`` follow capture order, which follows the attack
schedule, and ``Dir``/``Flgs`` are constant or near-constant padding.  Ten columns are
therefore set aside by default:

* the 9 ``IDENTIFIER_COLUMNS``: ``Dir``, ``Flgs``, ``SrcAddr``, ``DstAddr``, ``Sport``,
  ``Dport``, ``SrcMac``, ``DstMac``, ``Packet_num``;
* ``Attack Category``, which is the label spelled out (``normal`` exactly on Label 0).

With ``Label`` as the target that leaves the 34 numeric ``FEATURE_COLUMNS``: 26 flow
statistics and the 8 ``READING_COLUMNS``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from iomt.errors import DataError

ALL_COLUMNS: tuple[str, ...] = (
    "Dir", "Flgs", "SrcAddr", "DstAddr", "Sport", "Dport",
    "SrcBytes", "DstBytes", "SrcLoad", "DstLoad", "SrcGap", "DstGap",
    "SIntPkt", "DIntPkt", "SIntPktAct", "DIntPktAct", "SrcJitter", "DstJitter",
    "sMaxPktSz", "dMaxPktSz", "sMinPktSz", "dMinPktSz", "Dur", "Trans",
    "TotPkts", "TotBytes", "Load", "Loss", "pLoss", "pSrcLoss", "pDstLoss", "Rate",
    "SrcMac", "DstMac", "Packet_num",
    "Temp", "SpO2", "Pulse_Rate", "SYS", "DIA", "Heart_rate", "Resp_Rate", "ST",
    "Attack Category", "Label",
)  # fmt: skip
"""The 45 columns of the CSV, in file order."""

IDENTIFIER_COLUMNS: tuple[str, ...] = (
    "Dir", "Flgs", "SrcAddr", "DstAddr", "Sport", "Dport", "SrcMac", "DstMac", "Packet_num",
)  # fmt: skip
"""Flow identifiers that give the label away (see the module docstring)."""

READING_COLUMNS: tuple[str, ...] = (
    "Temp", "SpO2", "Pulse_Rate", "SYS", "DIA", "Heart_rate", "Resp_Rate", "ST",
)  # fmt: skip
"""Patient biometrics the sensors report alongside each flow."""

LABEL_COLUMN = "Label"
CATEGORY_COLUMN = "Attack Category"

STRING_COLUMNS: tuple[str, ...] = (
    "Dir", "Flgs", "SrcAddr", "DstAddr", "Sport", "SrcMac", "DstMac", CATEGORY_COLUMN,
)  # fmt: skip
"""Columns kept as text: ``Sport`` too, because Argus printed 3 ports as service names."""

NUMERIC_COLUMNS: tuple[str, ...] = tuple(c for c in ALL_COLUMNS if c not in STRING_COLUMNS)

FEATURE_COLUMNS: tuple[str, ...] = tuple(
    c
    for c in ALL_COLUMNS
    if c not in IDENTIFIER_COLUMNS and c not in (CATEGORY_COLUMN, LABEL_COLUMN)
)
"""The 34 numeric features an IDS may use without reading the label off an identifier."""

HOW_TO_GET = "set data.dataset in the scenario or IOMT_DATASET, or run `iomt data fetch`"


@dataclass(frozen=True)
class RawTable:
    """Every column of the CSV by name: numbers as float64 arrays, text as numpy str arrays."""

    columns: Mapping[str, np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def column(self, name: str) -> np.ndarray:
        """The column called ``name``; ``KeyError`` names the columns there are."""
        try:
            return self.columns[name]
        except KeyError:
            raise KeyError(f"no column {name!r}; have {', '.join(self.columns)}") from None


@dataclass(frozen=True)
class FlowTable:
    """What an IDS trains on: one row per flow.

    ``X`` is float32 ``(n, d)``, ``y`` int64 with 0 normal / 1 attack, ``category`` the
    attack category of each row (``normal``, ``Spoofing``, ``Data Alteration``) and
    ``feature_names`` the ``d`` column names of ``X``.
    """

    X: np.ndarray
    y: np.ndarray
    category: np.ndarray
    feature_names: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.X.ndim != 2 or self.X.dtype != np.float32:
            raise ValueError(f"X must be a 2-D float32 array, got {self.X.dtype} {self.X.shape}")
        n, d = self.X.shape
        if self.y.shape != (n,) or self.y.dtype != np.int64:
            raise ValueError(f"y must be int64 of shape ({n},), got {self.y.dtype} {self.y.shape}")
        if self.category.shape != (n,):
            raise ValueError(f"category must have shape ({n},), got {self.category.shape}")
        if len(self.feature_names) != d:
            raise ValueError(f"{len(self.feature_names)} feature names for {d} columns")

    def __len__(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        """Number of feature columns ``d``."""
        return int(self.X.shape[1])

    def subset(self, index: np.ndarray) -> FlowTable:
        """The rows at ``index`` (an integer or boolean array), in that order."""
        return FlowTable(self.X[index], self.y[index], self.category[index], self.feature_names)


@runtime_checkable
class FeatureSource(Protocol):
    """Anything that yields a flow table: the CSV today, replayed traffic later."""

    def load(self) -> FlowTable:
        """Produce the whole table (may raise ``DataError``)."""
        ...


def read_wustl_csv(path: str | os.PathLike[str]) -> RawTable:
    """Read all 45 columns of a WUSTL-EHMS-2020 CSV, validating as it goes.

    Raises ``DataError`` with a one-line message naming the file when it is missing,
    lacks a column, has a short row, holds a cell that is not a finite number in a
    numeric column, or has no data rows.  Extra columns are ignored.  Text cells are
    stripped of the padding Argus leaves around ``Dir`` and ``Flgs``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"dataset not found: {path}; {HOW_TO_GET}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text file ({exc.reason})") from exc
    if not lines:
        raise DataError(f"{path}: empty file, expected a WUSTL-EHMS-2020 CSV header")
    header = [name.strip() for name in next(csv.reader(lines[:1]))]
    missing = [c for c in ALL_COLUMNS if c not in header]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(repr(c) for c in missing)}"
            " (is this the WUSTL-EHMS-2020 CSV with attack categories?)"
        )
    body = [line for line in lines[1:] if line.strip()]  # blank lines hold no flow
    if not body:
        raise DataError(f"{path}: no data rows after the header")
    position = {name: i for i, name in enumerate(header)}
    numeric_at = [position[c] for c in NUMERIC_COLUMNS]
    string_at = [position[c] for c in STRING_COLUMNS]
    # numpy's C parser reads the file ~3x faster than csv + float(); when it refuses,
    # _diagnose re-reads with the csv module to name the line and column at fault.
    try:
        numbers = np.loadtxt(
            body, delimiter=",", quotechar='"', comments=None, usecols=numeric_at,
            dtype=np.float64, ndmin=2, encoding=None,
        )  # fmt: skip
        texts = np.loadtxt(
            body, delimiter=",", quotechar='"', comments=None, usecols=string_at,
            dtype=str, ndmin=2, encoding=None,
        )  # fmt: skip
    except ValueError as exc:
        _diagnose(path, lines, len(header), position)
        raise DataError(f"{path}: malformed CSV: {exc}") from exc
    if not np.isfinite(numbers).all():
        _diagnose(path, lines, len(header), position)
    columns: dict[str, np.ndarray] = {}
    for j, name in enumerate(NUMERIC_COLUMNS):
        columns[name] = np.ascontiguousarray(numbers[:, j])
    for j, name in enumerate(STRING_COLUMNS):
        columns[name] = np.char.strip(texts[:, j])
    return RawTable({name: columns[name] for name in ALL_COLUMNS})


def _diagnose(path: Path, lines: list[str], width: int, position: dict[str, int]) -> None:
    """Raise a ``DataError`` naming the first short row or non-numeric/non-finite cell."""
    reader = csv.reader(lines[1:])
    for row in reader:
        line = reader.line_num + 1  # the header is line 1
        if not row:
            continue
        if len(row) != width:
            raise DataError(f"{path}: line {line} has {len(row)} cells, the header has {width}")
        for name in NUMERIC_COLUMNS:
            cell = row[position[name]]
            try:
                value = float(cell)
            except ValueError:
                raise DataError(
                    f"{path}: line {line}, column {name!r}: {cell.strip()!r} is not a number"
                ) from None
            if not np.isfinite(value):
                raise DataError(
                    f"{path}: line {line}, column {name!r}: {cell.strip()!r} is not finite"
                )


def _codes(values: np.ndarray) -> np.ndarray:
    """Integer codes of text values, by sorted distinct value (stable for one file)."""
    _, inverse = np.unique(values.astype(str), return_inverse=True)
    return inverse.astype(np.float64)


def _port_numbers(values: np.ndarray) -> np.ndarray:
    """Numeric ports; the service names Argus printed instead of a number become -1."""
    out = np.empty(len(values), dtype=np.float64)
    for i, text in enumerate(values):
        out[i] = float(text) if text.isdigit() else -1.0
    return out


def flow_table(raw: RawTable, keep_identifiers: bool = False) -> FlowTable:
    """Turn a raw table into IDS features (``FEATURE_COLUMNS``, in file order).

    With ``keep_identifiers`` the 9 identifier columns are added, still in file order,
    as numbers: ``Sport`` as its port (-1 for a service name), ``Dport`` and
    ``Packet_num`` as they are, and the text columns (``Dir``, ``Flgs``, addresses, MACs)
    as integer codes of their sorted distinct values.  Addresses are coded rather than
    converted to integers because float32 cannot hold a 32-bit address exactly.
    """
    labels = raw.column(LABEL_COLUMN)
    if not np.isin(labels, (0.0, 1.0)).all():
        bad = sorted({float(v) for v in labels[~np.isin(labels, (0.0, 1.0))]})[:3]
        raise DataError(f"column {LABEL_COLUMN!r} must hold 0 or 1, found {bad}")
    names = [
        c
        for c in ALL_COLUMNS
        if c in FEATURE_COLUMNS or (keep_identifiers and c in IDENTIFIER_COLUMNS)
    ]
    blocks = []
    for name in names:
        values = raw.column(name)
        if name == "Sport":
            values = _port_numbers(values)
        elif name in STRING_COLUMNS:
            values = _codes(values)
        blocks.append(values)
    X = np.stack(blocks, axis=1).astype(np.float32)
    category = raw.column(CATEGORY_COLUMN).astype(str)
    return FlowTable(X, labels.astype(np.int64), category, tuple(names))


@dataclass(frozen=True)
class CsvSource:
    """A ``FeatureSource`` over the WUSTL-EHMS-2020 CSV (first ``limit`` rows if set)."""

    path: Path
    keep_identifiers: bool = False
    limit: int | None = None

    def load(self) -> FlowTable:
        """Read the file and build the feature table."""
        table = flow_table(read_wustl_csv(self.path), self.keep_identifiers)
        if self.limit is not None:
            table = table.subset(np.arange(min(self.limit, len(table))))
        return table
