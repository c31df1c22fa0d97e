"""The QKD cores import no I/O and no qiskit (qiskit is loaded only for its backend)."""

import subprocess
import sys

CORES = [
    "qkd_channel.channel",
    "qkd_channel.alice",
    "qkd_channel.bob",
    "qkd_channel.driver",
    "qkd_channel.simulation",
    "qkd_channel.config",
    "wire.aead",
]
FORBIDDEN = ["asyncio", "aiomqtt", "paho", "subprocess", "qiskit", "qiskit_aer"]


def test_cores_import_no_io_and_no_qiskit():
    probe = (
        "import sys, importlib\n"
        f"for m in {CORES!r}: importlib.import_module(m)\n"
        f"print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"QKD cores pull in {out.stdout.strip()}"
