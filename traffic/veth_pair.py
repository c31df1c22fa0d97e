"""Two network namespaces joined by a veth pair: a wire of its own for live traffic.

The live-traffic tests and benchmarks replay a capture in namespace ``a`` and sniff it
in namespace ``b``.  ``veth_pair()`` makes both (``ip netns add``), joins them with a
veth pair carrying link-local addresses and no routes, so nothing leaves them, turns
GRO off where ethtool exists (a sniffer must see frames as sent), IPv6 off on both ends
(no router or neighbour solicitations among the frames under test), and deletes both
namespaces whatever happens.  Needs root; ``NetnsUnavailable`` says why it cannot run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


class NetnsUnavailable(RuntimeError):
    """This machine or user cannot make network namespaces (not root, no iproute2)."""


@dataclass(frozen=True)
class NetnsPair:
    """Namespace ``a`` and ``b`` (``None``: this process's own) and their veth ends."""

    a: str
    b: str | None
    iface_a: str = "iomt-va"
    iface_b: str = "iomt-vb"


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode:
        raise NetnsUnavailable(f"ip {' '.join(args)}: {done.stderr.strip()}")


@contextmanager
def veth_pair(*, b_here: bool = False) -> Iterator[NetnsPair]:
    """Fresh namespaces ``a`` and ``b`` joined by ``iomt-va`` <-> ``iomt-vb``; with
    ``b_here`` the ``b`` end stays in this namespace (named ``iomt-vb-<tag>``, no
    address), so a process here can sniff it and still reach 127.0.0.1."""
    if os.geteuid() != 0:
        raise NetnsUnavailable("network namespaces and raw sockets need root")
    if shutil.which("ip") is None:
        raise NetnsUnavailable("iproute2's `ip` is not installed (apt-get install iproute2)")
    tag = uuid.uuid4().hex[:6]
    if b_here:
        pair = NetnsPair(f"iomt-a-{tag}", None, iface_b=f"iomt-vb-{tag}")
    else:
        pair = NetnsPair(f"iomt-a-{tag}", f"iomt-b-{tag}")
    created = []
    try:
        for name in filter(None, (pair.a, pair.b)):
            _ip("netns", "add", name)
            created.append(name)
        here = ("netns", str(os.getpid())) if pair.b is None else ("netns", pair.b)
        _ip("-n", pair.a, "link", "add", pair.iface_a, "type", "veth",
            "peer", "name", pair.iface_b, *here)  # fmt: skip
        _ip("-n", pair.a, "addr", "add", "169.254.77.1/30", "dev", pair.iface_a)
        _up(pair.a, pair.iface_a)
        if pair.b is not None:
            _ip("-n", pair.b, "addr", "add", "169.254.77.2/30", "dev", pair.iface_b)
        _up(pair.b, pair.iface_b)
        yield pair
    finally:
        for name in created:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)


def _up(ns: str | None, iface: str) -> None:
    """Bring ``iface`` up in ``ns`` (``None``: here) without IPv6, GRO off where ethtool
    exists (veth does no GRO by default; make sure).  Both are best effort: a kernel
    without IPv6 has nothing to turn off."""
    run = ("ip", "netns", "exec", ns) if ns else ()
    if shutil.which("sysctl"):
        subprocess.run([*run, "sysctl", "-qw", f"net.ipv6.conf.{iface}.disable_ipv6=1"],
                       capture_output=True, check=False)  # fmt: skip
    _ip(*(("-n", ns) if ns else ()), "link", "set", iface, "up")
    if shutil.which("ethtool"):
        subprocess.run([*run, "ethtool", "-K", iface, "gro", "off"], capture_output=True,
                       check=False)  # fmt: skip


def python_in(ns: str, script: str, args: Sequence[object], cwd: Path, **popen) -> subprocess.Popen:
    """``python -c script args`` in namespace ``ns`` (this interpreter, text pipes),
    with ``cwd`` on its ``PYTHONPATH``."""
    path = os.pathsep.join(filter(None, [str(cwd), os.environ.get("PYTHONPATH")]))
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-c", script, *map(str, args)],
        cwd=cwd, env=dict(os.environ, PYTHONPATH=path), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen,
    )  # fmt: skip
