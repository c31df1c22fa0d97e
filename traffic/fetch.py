"""Downloading WUSTL-EHMS-2020 and checking it is the published file (``iomt data fetch``).

The data set is published by Washington University in St. Louis (Hady et al., IEEE
Access 8, 2020, doi:10.1109/ACCESS.2020.3000421) as one CSV, ``WUSTL_URL``.
``fetch_dataset`` streams it with ``urllib`` to a temporary file beside the
destination, converting CRLF line endings to LF on the way (the published facts are
for LF; a copy that went through a Windows checkout still verifies), checks it, and
only then renames it into place, so a failed or interrupted download never leaves a
file where the testbed looks for the data.  The checks are the published facts:
16,318 rows, 45 columns, 14,272 normal and 2,046 attack labels, and the SHA-256 of
the LF content, ``EXPECTED_SHA256``.

``default_dataset_locations`` lists where a fetched copy is looked for: the user's
data directory first (``$XDG_DATA_HOME/iomt-testbed``, else
``~/.local/share/iomt-testbed``), then the same name under each ``$XDG_DATA_DIRS``
entry (XDG Base Directory Specification 0.8).
"""

from __future__ import annotations

import csv
import hashlib
import http.client
import io
import logging
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from iomt.errors import DataError
from iomt.traffic.config import DataConfig
from iomt.traffic.dataset import ALL_COLUMNS, HOW_TO_GET, LABEL_COLUMN

log = logging.getLogger(__name__)

WUSTL_URL = "https://www.cse.wustl.edu/~jain/ehms/ftp/wustl-ehms-2020_with_attacks_categories.csv"
DATASET_NAME = "wustl-ehms-2020.csv"
APP_DIR = "iomt-testbed"
EXPECTED_SHA256 = "246e46eefd37f6ba98ba10efbdecebc0c5a08c299aa4457e26ac44eed2ee07a1"
"""SHA-256 of the CSV with LF line endings (3,930,571 bytes)."""
EXPECTED_ROWS, EXPECTED_COLUMNS = 16318, 45
EXPECTED_NORMAL, EXPECTED_ATTACK = 14272, 2046
MAX_BYTES = 64 * 1024 * 1024
"""A download larger than this is not the data set (the CSV is 3.9 MB)."""
CHUNK = 1 << 16


@dataclass(frozen=True)
class DatasetFacts:
    """What a CSV holds, to compare with the published facts."""

    rows: int
    columns: int
    normal: int
    attack: int
    sha256: str
    """Of the content with CRLF converted to LF."""
    bad_rows: int = 0
    """Rows whose cell count differs from the header's."""
    header_matches: bool = True
    """The header names the 45 WUSTL-EHMS-2020 columns in their order."""

    def mismatches(self) -> list[str]:
        """What differs from WUSTL-EHMS-2020, one phrase each (empty: it is the file)."""
        out = []
        for what, got, want in (
            ("columns", self.columns, EXPECTED_COLUMNS),
            ("rows", self.rows, EXPECTED_ROWS),
            ("normal labels", self.normal, EXPECTED_NORMAL),
            ("attack labels", self.attack, EXPECTED_ATTACK),
        ):
            if got != want:
                out.append(f"{got:,} {what} instead of {want:,}")
        if self.columns == EXPECTED_COLUMNS and not self.header_matches:
            out.append("columns named or ordered differently")
        if self.bad_rows:
            out.append(f"{self.bad_rows:,} rows without {self.columns} cells")
        if self.sha256 != EXPECTED_SHA256:
            out.append(f"sha256 {self.sha256[:12]}... instead of {EXPECTED_SHA256[:12]}...")
        return out


@dataclass(frozen=True)
class FetchReport:
    """A verified download: where it went and what it holds."""

    url: str
    path: Path
    bytes_received: int
    crlf_converted: bool
    facts: DatasetFacts
    seconds: float


class _LineEndings:
    """CRLF -> LF over a stream of chunks (a CR at a chunk's end waits for the next)."""

    def __init__(self) -> None:
        self.pending = b""
        self.converted = False

    def feed(self, chunk: bytes) -> bytes:
        data = self.pending + chunk
        self.pending = b""
        if data.endswith(b"\r"):
            data, self.pending = data[:-1], b"\r"
        if b"\r\n" in data:
            self.converted = True
            data = data.replace(b"\r\n", b"\n")
        return data

    def flush(self) -> bytes:
        data, self.pending = self.pending, b""
        return data


def user_data_dir() -> Path:
    """``$XDG_DATA_HOME/iomt-testbed`` (an absolute path only), else ``~/.local/share/...``."""
    base = os.environ.get("XDG_DATA_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "share"
    return root / APP_DIR


def default_dataset_path() -> Path:
    """Where ``iomt data fetch`` puts the data set unless told otherwise."""
    return user_data_dir() / DATASET_NAME


def default_dataset_locations() -> list[Path]:
    """Where the testbed looks for a fetched data set, in order (see the module doc)."""
    dirs = os.environ.get("XDG_DATA_DIRS", "") or "/usr/local/share:/usr/share"
    found = [default_dataset_path()]
    for entry in dirs.split(os.pathsep):
        if entry and Path(entry).is_absolute():
            candidate = Path(entry) / APP_DIR / DATASET_NAME
            if candidate not in found:
                found.append(candidate)
    return found


def dataset_facts(path: str | os.PathLike[str]) -> DatasetFacts:
    """Count rows, columns and labels of a CSV and hash its LF-normalised content.

    Raises ``DataError`` when the file cannot be read or is not text.
    """
    path = Path(path)
    digest = hashlib.sha256()
    endings = _LineEndings()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(endings.feed(chunk))
            digest.update(endings.flush())
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text file ({exc.reason})") from exc
    reader = csv.reader(io.StringIO(text))
    header = [name.strip() for name in next(reader, [])]
    label_at = header.index(LABEL_COLUMN) if LABEL_COLUMN in header else None
    rows = normal = attack = bad = 0
    for row in reader:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line holds no flow
        rows += 1
        if len(row) != len(header):
            bad += 1
            continue
        if label_at is not None:
            label = row[label_at].strip()
            normal += label == "0"
            attack += label == "1"
    return DatasetFacts(
        rows, len(header), normal, attack, digest.hexdigest(), bad, tuple(header) == ALL_COLUMNS
    )


def verify_dataset(path: str | os.PathLike[str]) -> DatasetFacts:
    """The facts of ``path`` if it is WUSTL-EHMS-2020, else a one-line ``DataError``.

    The error names every fact that differs; the file is left alone either way.
    """
    facts = dataset_facts(path)
    wrong = facts.mismatches()
    if wrong:
        raise DataError(f"{path} is not WUSTL-EHMS-2020: {'; '.join(wrong)}")
    return facts


def _download(url: str, out: Path, timeout_s: float) -> tuple[int, bool]:
    """Stream ``url`` into ``out`` with CRLF -> LF; bytes received and whether CRLF was seen."""
    request = urllib.request.Request(url, headers={"User-Agent": "iomt-testbed (data fetch)"})
    endings = _LineEndings()
    received = 0
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response, out.open("wb") as sink:
            while chunk := response.read(CHUNK):
                received += len(chunk)
                if received > MAX_BYTES:
                    raise DataError(
                        f"{url}: more than {MAX_BYTES // 2**20} MiB, this is not the data set"
                    )
                sink.write(endings.feed(chunk))
            sink.write(endings.flush())
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the response's socket
        raise DataError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise DataError(f"cannot reach {url}: {exc.reason}") from exc
    except TimeoutError as exc:
        raise DataError(f"cannot download {url}: no data for {timeout_s:g} s") from exc
    except (OSError, http.client.HTTPException) as exc:  # cut off mid-body, disk full, ...
        raise DataError(f"cannot download {url} to {out.parent}: {exc}") from exc
    except ValueError as exc:  # urllib's "unknown url type"
        raise DataError(f"cannot download {url!r}: {exc}") from exc
    return received, endings.converted


def fetch_dataset(
    url: str = WUSTL_URL, dest: Path | None = None, *, timeout_s: float = 60
) -> FetchReport:
    """Download WUSTL-EHMS-2020 from ``url`` to ``dest`` and verify it (see the module doc).

    ``dest`` is the file to create (default ``default_dataset_path()``) or an existing
    directory to put ``wustl-ehms-2020.csv`` in; missing parent directories are made.
    A file already at ``dest`` is replaced only by a download that verifies.  Raises a
    one-line ``DataError`` when the download fails or differs from the published file;
    nothing is left behind then.
    """
    started = time.perf_counter()
    dest = Path(dest) if dest is not None else default_dataset_path()
    if dest.is_dir():
        dest = dest / DATASET_NAME
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {dest.parent}: {exc.strerror or exc}") from exc
    part = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    log.info("downloading %s to %s", url, dest)
    try:
        received, converted = _download(url, part, timeout_s)
        facts = dataset_facts(part)
        wrong = facts.mismatches()
        if wrong:
            raise DataError(f"{url} is not WUSTL-EHMS-2020: {'; '.join(wrong)}; nothing installed")
        os.replace(part, dest)
    except OSError as exc:
        raise DataError(f"cannot move the download to {dest}: {exc.strerror or exc}") from exc
    finally:
        part.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    log.info("verified %s: %d rows, %d bytes in %.1f s", dest, facts.rows, received, seconds)
    return FetchReport(url, dest, received, converted, facts, seconds)


def import_dataset(source: Path, dest: Path | None = None) -> FetchReport:
    """Install a copy of WUSTL-EHMS-2020 obtained by hand (``iomt data import``): read
    from ``source`` exactly as a download is (CRLF to LF, verified, renamed into place
    only when it is the published file), so a file that differs installs nothing."""
    source = Path(source).expanduser()
    if not source.is_file():
        raise DataError(f"{source}: no such file; give the CSV you downloaded")
    return fetch_dataset(source.resolve().as_uri(), dest)


def resolve_dataset(config: DataConfig) -> Path:
    """Where the dataset is: the scenario's ``data.dataset``, else ``IOMT_DATASET``, else
    where ``iomt data fetch`` saves it (``default_dataset_locations``).

    Raises ``DataError`` (one line, saying how to get the data) when none of them holds it.
    """
    named = config.dataset or os.environ.get("IOMT_DATASET") or None
    if named is None:
        for candidate in default_dataset_locations():
            if candidate.is_file():
                return candidate
        raise DataError(f"no dataset given; {HOW_TO_GET}")
    path = Path(named).expanduser()
    if not path.is_file():
        raise DataError(f"dataset not found: {path}; {HOW_TO_GET}")
    return path
