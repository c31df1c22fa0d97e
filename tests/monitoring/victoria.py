"""A real VictoriaMetrics for tests and benchmarks: start, write through, read back.

VictoriaMetrics (Debian ``victoria-metrics``) accepts the InfluxDB v2 write API at
``/api/v2/write``; each field becomes a series ``<measurement>_<field>`` whose labels
are the tags.  ``/internal/force_flush`` makes fresh samples readable by
``/api/v1/export`` (with ``-search.latencyOffset=1s`` the newest samples are not hidden
for long).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from iomt.broker.ports import accepts_connections, free_port


def find_victoria_metrics() -> str | None:
    return shutil.which("victoria-metrics")


class VictoriaMetrics:
    """One VictoriaMetrics process on 127.0.0.1 at a free port, with a temporary store."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._dir = Path(tempfile.mkdtemp(prefix="vm-"))
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> VictoriaMetrics:
        log = (self._dir / "vm.log").open("wb")
        self._proc = subprocess.Popen(
            [
                self.binary,
                f"-storageDataPath={self._dir / 'data'}",
                f"-httpListenAddr=127.0.0.1:{self.port}",
                "-search.latencyOffset=1s",
                "-loggerLevel=ERROR",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"victoria-metrics exited: {(self._dir / 'vm.log').read_text()}")
            if accepts_connections("127.0.0.1", self.port) and self._get("/health") == b"OK":
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("victoria-metrics did not start in time")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _get(self, path: str) -> bytes:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as resp:
                return bytes(resp.read())
        except OSError:
            return b""

    def export(self, match: str) -> list[dict[str, Any]]:
        """Every series matching the selector ``match``, after a forced flush."""
        self._get("/internal/force_flush")
        query = urllib.parse.urlencode({"match[]": match, "start": "0"})
        body = self._get(f"/api/v1/export?{query}")
        return [json.loads(line) for line in body.splitlines() if line.strip()]

    def wait_for(self, match: str, samples: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """``export(match)`` once it holds at least ``samples`` values (or at the timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            series = self.export(match)
            if sum(len(s["values"]) for s in series) >= samples or time.monotonic() > deadline:
                return series
            time.sleep(0.2)


def by_name(series: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Series grouped by ``__name__``."""
    out: dict[str, list[dict[str, Any]]] = {}
    for s in series:
        out.setdefault(s["metric"]["__name__"], []).append(s)
    return out
