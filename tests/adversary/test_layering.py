"""Eve's codec, policy and config are pure: only the proxy module does I/O."""

import subprocess
import sys

CORES = ["adversary", "adversary.mqtt_codec", "adversary.policy", "adversary.config"]
FORBIDDEN = ["asyncio", "aiomqtt", "paho", "subprocess"]


def test_cores_import_no_io():
    probe = (
        "import sys, importlib\n"
        f"for m in {CORES!r}: importlib.import_module(m)\n"
        f"print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"adversary cores pull in {out.stdout.strip()}"
