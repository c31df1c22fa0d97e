"""The file backend of the sink: line protocol appended to ``metrics.lp`` in the run directory.

Each batch is one ``write(2)`` on a file opened with ``O_APPEND``, so several agent
processes of one run can append to the same file without tearing each other's lines.
The file can be replayed into any InfluxDB-compatible server with
``curl --data-binary @metrics.lp "$URL/api/v2/write?org=...&bucket=...&precision=ns"``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.lp"


class LineProtocolFile:
    """Appends batches of lines to one file; never drops a line it was given unless I/O fails."""

    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.lines = 0
        self.errors = 0

    def write(self, lines: list[str]) -> None:
        if not lines or self._fd is None:
            return
        data = ("\n".join(lines) + "\n").encode("utf-8")
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as exc:
            self.errors += len(lines)
            log.error("metrics: cannot append to %s: %s", self.path, exc)
            return
        self.lines += len(lines)

    def flush(self, timeout: float) -> bool:
        return True  # every write already reached the kernel

    def close(self, timeout: float) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
