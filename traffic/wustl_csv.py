"""Writing a flow table as a WUSTL-EHMS-2020 CSV, cell for cell as the published file prints it."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from iomt.errors import DataError
from iomt.traffic.dataset import ALL_COLUMNS, NUMERIC_COLUMNS, RawTable

log = logging.getLogger(__name__)


def _cell(value: float) -> str:
    """Shortest text that reads back as ``value``, never in exponent notation."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = repr(value)
    return np.format_float_positional(value, trim="-") if "e" in text else text


def _padded(name: str, values: Sequence[str]) -> list[str]:
    """Argus's padding: ``Dir`` right-aligned in 5, ``Flgs`` after a space in 10."""
    if name == "Dir":
        return [v.rjust(5) for v in values]
    if name == "Flgs":
        return [" " + v.ljust(9) for v in values]
    return list(values)


def write_csv(table: RawTable, path: str | os.PathLike[str]) -> Path:
    """Write ``table`` as a WUSTL-EHMS-2020 CSV (45 columns, LF endings); returns the path.

    The file appears atomically (written beside it, then renamed).  Raises
    ``DataError`` when the table lacks a column, a text cell holds a comma, quote or
    line break, or the file cannot be written.
    """
    path = Path(path)
    missing = [c for c in ALL_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"cannot write {path}: table lacks column(s) {', '.join(missing)}")
    cells: list[list[str]] = []
    for name in ALL_COLUMNS:
        values = table.column(name)
        if name in NUMERIC_COLUMNS:
            numbers = np.asarray(values, dtype=np.float64)
            if not np.isfinite(numbers).all():
                raise DataError(f"cannot write {path}: column {name!r} holds a non-finite value")
            cells.append([_cell(v) for v in numbers.tolist()])
            continue
        texts = _padded(name, [str(v) for v in values.tolist()])
        bad = next((t for t in texts if any(ch in t for ch in ',"\r\n')), None)
        if bad is not None:
            raise DataError(f"cannot write {path}: column {name!r} holds {bad!r}")
        cells.append(texts)
    lines = [",".join(ALL_COLUMNS)] + [",".join(row) for row in zip(*cells, strict=True)]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        try:
            with tmp.open("w", encoding="ascii", newline="\n") as handle:
                handle.write("\n".join(lines) + "\n")
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except (OSError, UnicodeEncodeError) as exc:
        raise DataError(f"cannot write {path}: {exc}") from exc
    log.info("wrote %d synthetic flows to %s", len(table), path)
    return path
