"""A field trial from nothing to its first finished round, on loopback.

Writes a kit (``iomt.scenarios.field_kit.write_kit``: CA and broker certificate,
credentials, ACL, units) for a server and 3 HMUs, starts Mosquitto with the kit's
``mosquitto.conf`` (TLS only), then the server and the HMUs with the units' own
``ExecStart`` lines, and times until the server's first round is written down (its
checkpoint). Target (issue 16): <= 30 s.

Run: ``.venv/bin/python -m bench.field_kit``
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.inprocess import default_dataset
from iomt.broker.mosquitto import find_mosquitto
from iomt.broker.ports import free_port
from iomt.scenarios.field_kit import KitSettings, unit_command, write_kit
from iomt.scenarios.schema import validate_scenario

HMUS = ["hmu-01", "hmu-02", "hmu-03"]


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        scenario = validate_scenario({
            "name": "kit", "seed": 1, "data": {"dataset": str(default_dataset())},
            "federation": {"hmus": 3, "clients_per_round": 3, "rounds": 3},
        })  # fmt: skip
        started = time.perf_counter()
        settings = KitSettings(
            "bench", "127.0.0.1", free_port(), listen="127.0.0.1", prefix=root / "kit",
            python=sys.executable, broker_user="root", runs_dir=root / "runs",
        )  # fmt: skip
        kit = write_kit(scenario, HMUS, root / "kit", settings)
        written = time.perf_counter() - started
        conf = str(kit / "broker/mosquitto.conf")
        procs = [subprocess.Popen([find_mosquitto() or "mosquitto", "-c", conf],
                                  stderr=subprocess.DEVNULL)]  # fmt: skip
        commands = [unit_command(kit / "server/iomt-server.service")] + [
            unit_command(kit / "hmus" / h / "iomt-hmu@.service", h) for h in HMUS
        ]
        procs += [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                  for c in commands]  # fmt: skip
        state = root / "runs" / "bench" / "checkpoints" / "state.json"
        try:
            while not state.is_file() and time.perf_counter() - started < 120:
                time.sleep(0.05)
            first = time.perf_counter() - started
            procs[1].wait(timeout=120)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        print(f"kit written in {written:.2f} s (CA, broker certificate, 5 credentials, units)")
        print(f"kit -> first finished round over mqtts, 3 HMUs: {first:.1f} s (target <= 30 s)")
        print(f"server exit code {procs[1].returncode}")


if __name__ == "__main__":
    main()
