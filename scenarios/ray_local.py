"""A Ray cluster of several nodes on this machine, to try ``--executor ray`` and to test it.

``local_cluster(nodes=2)`` runs ``ray start --head --block`` and ``nodes - 1`` times
``ray start --address HEAD --block`` from this environment's Ray, each node with
``cpus_per_node`` CPUs of Ray's books and its own temporary directory, waits until
every node is alive and yields a ``LocalCluster``: the head's ``HOST:PORT`` (what
``--address`` takes) and ``kill(i)``, which ends node ``i`` at once as a crashed host
would.  Leaving stops every node: SIGTERM to each ``ray start``, which stops its
node's processes.  Nothing else on the machine is touched (no ``ray stop``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from iomt.broker.ports import free_port
from iomt.errors import RunError

READY_TIMEOUT_S = 120.0

_ALIVE = """
import sys, time, ray
ray.init(address=sys.argv[1], log_to_driver=False, configure_logging=False)
deadline = time.monotonic() + float(sys.argv[3])
while sum(n["Alive"] for n in ray.nodes()) < int(sys.argv[2]):
    if time.monotonic() > deadline:
        sys.exit(f"{sum(n['Alive'] for n in ray.nodes())} of {sys.argv[2]} Ray nodes alive")
    time.sleep(0.2)
"""


def _ray_command() -> str:
    ray = Path(sys.executable).with_name("ray")
    if not ray.is_file():
        raise RunError(f"no `ray` beside {sys.executable}: pip install 'iomt-testbed[ray]'")
    return str(ray)


@dataclass(frozen=True)
class LocalCluster:
    address: str
    """``HOST:PORT`` of the head."""
    nodes: list[subprocess.Popen[bytes]]
    """Each node's ``ray start --block``, the head first; each leads its process group."""

    def kill(self, i: int) -> None:
        """SIGKILL node ``i`` and every process it started, as if its host lost power."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.nodes[i].pid, signal.SIGKILL)


@contextlib.contextmanager
def local_cluster(nodes: int = 2, cpus_per_node: int = 1) -> Iterator[LocalCluster]:
    """A head and ``nodes - 1`` more nodes on this machine, all alive."""
    ray, port = _ray_command(), free_port()
    address = f"127.0.0.1:{port}"
    common = [f"--num-cpus={cpus_per_node}", "--disable-usage-stats", "--block"]
    head = [ray, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
            "--include-dashboard=false"]  # fmt: skip
    more = [ray, "start", f"--address={address}", "--node-ip-address=127.0.0.1"]
    root = Path(tempfile.mkdtemp(prefix="iomt-ray-"))  # short: Ray's socket paths must fit
    started: list[subprocess.Popen[bytes]] = []
    try:
        for i, command in enumerate([head] + [more] * (nodes - 1)):
            with (root / f"node-{i}.log").open("wb") as log:  # the node keeps its own copy
                started.append(subprocess.Popen(
                    [*command, *common, f"--temp-dir={root / f'n{i}'}"],
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                ))  # fmt: skip
            if i == 0:
                _wait_listening(port, started[0], root)
        waited = subprocess.run(
            [sys.executable, "-c", _ALIVE, address, str(nodes), str(READY_TIMEOUT_S)],
            capture_output=True, text=True, timeout=READY_TIMEOUT_S + 30,
        )  # fmt: skip
        if waited.returncode != 0:
            raise RunError(f"local Ray cluster not ready: {waited.stderr.strip()[-300:]}")
        yield LocalCluster(address, started)
    finally:
        for proc in reversed(started):
            _stop(proc)
        shutil.rmtree(root, ignore_errors=True)


def _wait_listening(port: int, head: subprocess.Popen[bytes], root: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if head.poll() is not None:
            tail = (root / "node-0.log").read_text(errors="replace")[-300:]
            raise RunError(f"ray start --head exited ({head.returncode}): {tail}")
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        time.sleep(0.2)
    raise RunError(f"the Ray head did not listen on port {port} in {READY_TIMEOUT_S:.0f} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to ``ray start --block`` stops its node; SIGKILL its group if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
