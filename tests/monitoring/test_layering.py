"""The sink loads influxdb-client only when it is used (cores: tests/test_layering.py)."""

from __future__ import annotations

import subprocess
import sys

IO_MODULES = ["asyncio", "aiomqtt", "paho", "subprocess", "influxdb_client", "psutil", "matplotlib"]


def imported_after(module: str) -> list[str]:
    probe = (
        f"import sys, importlib; importlib.import_module({module!r}); "
        f"print(','.join(m for m in {IO_MODULES!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return [name for name in out.stdout.strip().split(",") if name]


def test_a_file_only_sink_does_not_load_influxdb_client() -> None:
    assert "influxdb_client" not in imported_after("iomt.monitoring.sink")
