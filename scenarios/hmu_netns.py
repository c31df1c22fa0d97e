"""A network namespace per HMU process, bridged to the run's broker (``links.shaping: tc``).

``hmu_network(hmus, plan)`` makes a Linux bridge ``ib<tag>`` holding ``10.N.0.1/16``
(``N`` chosen among the subnets no route of this machine uses), and for each HMU a
namespace ``iomt-<tag>-<n>`` joined to the bridge by a veth pair: ``eth0`` inside,
with its own address, ``iv<tag><n>`` here.  The run's Mosquitto also listens on the
bridge's address (``start_broker(also_on=...)``); an HMU process enters its namespace
before it connects (``KernelLink.enter``), so its every byte crosses its pair, where
``tbf`` shapes it.  Everything is deleted on the way out, whatever happens.  Needs
root and iproute2 (``ip``, ``tc``) and util-linux's ``nsenter``; a one-line
``UsageError`` says what is missing.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from iomt.errors import UsageError
from iomt.hmu_agent.kernel_link import KernelLink
from iomt.hmu_agent.link_profile import LinkPlan
from iomt.scenarios.schema import Scenario
from iomt.scenarios.setups import link_plan


@dataclass(frozen=True)
class HmuNetwork:
    """The bridge's address (where HMUs reach the broker) and each HMU's kernel link."""

    address: str
    links: dict[str, KernelLink]


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode:
        raise UsageError(f"links.shaping tc: ip {' '.join(args)}: {done.stderr.strip()}")


def _free_subnet() -> int:
    """``N`` of a ``10.N.0.0/16`` that no route here overlaps."""
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True,
                            text=True, check=False).stdout  # fmt: skip
    taken = []
    for line in routes.splitlines():
        with contextlib.suppress(ValueError, IndexError):
            taken.append(ipaddress.ip_network(line.split()[0], strict=False))
    for n in range(213, 256):
        net = ipaddress.ip_network(f"10.{n}.0.0/16")
        if not any(net.overlaps(t) for t in taken if t.prefixlen):
            return n
    raise UsageError("links.shaping tc: no free 10.N.0.0/16 subnet for the HMUs' bridge")


def check_can_shape() -> None:
    """``UsageError`` unless this process can make namespaces and shape them."""
    if os.geteuid() != 0:
        raise UsageError("links.shaping tc needs root (network namespaces); use pacer")
    for tool, package in (("ip", "iproute2"), ("tc", "iproute2"), ("nsenter", "util-linux")):
        if shutil.which(tool) is None:
            raise UsageError(f"links.shaping tc needs `{tool}` (apt-get install {package})")


def kernel_shaped(scenario: Scenario) -> bool:
    """Whether ``scenario``'s links are shaped by the kernel."""
    return scenario.links.enabled and scenario.links.shaping == "tc"


def refuse_unshapeable(scenario: Scenario, *, processes: bool) -> None:
    """``UsageError`` for a run whose HMUs cannot each sit in a namespace of their own."""
    if not processes:
        raise UsageError("links.shaping tc shapes HMU processes: run with --processes"
                         " (or set links.shaping: pacer)")  # fmt: skip
    unsupported = [name for name, used in (
        ("topology.fog_nodes", scenario.topology.fog_nodes), ("mitm", scenario.mitm.enabled),
        ("broker.url", scenario.broker.url), ("broker.tls", scenario.broker.tls),
    ) if used]  # fmt: skip
    if unsupported:
        raise UsageError(f"links.shaping tc does not combine with {', '.join(unsupported)}"
                         " (yet); use links.shaping: pacer")  # fmt: skip
    if scenario.metrics.enabled and scenario.metrics.hmu_transport != "mqtt":
        raise UsageError("links.shaping tc: an HMU in its namespace reaches only the broker;"
                         " set metrics.hmu_transport: mqtt")  # fmt: skip
    check_can_shape()


def kernel_network(scenario: Scenario) -> contextlib.AbstractContextManager[HmuNetwork | None]:
    """``hmu_network`` of ``scenario``'s HMUs when the kernel shapes its links, else None."""
    plan = link_plan(scenario)
    if not kernel_shaped(scenario) or plan is None:
        return contextlib.nullcontext()
    return hmu_network(scenario.hmu_ids, plan)


@contextlib.contextmanager
def hmu_network(hmus: Sequence[str], plan: LinkPlan) -> Iterator[HmuNetwork]:
    """A bridge and one namespace per HMU; ``KernelLink`` of each HMU, its link unshaped
    until its process shapes it."""
    check_can_shape()
    tag = uuid.uuid4().hex[:5]
    bridge, subnet = f"ib{tag}", _free_subnet()
    address = f"10.{subnet}.0.1"
    made: list[str] = []
    try:
        _ip("link", "add", bridge, "type", "bridge")
        made.append(bridge)
        _ip("addr", "add", f"{address}/16", "dev", bridge)
        _ip("link", "set", bridge, "up")
        links = {}
        for n, hmu in enumerate(hmus, start=1):
            ns, host_dev = f"iomt-{tag}-{n}", f"iv{tag}{n}"
            _ip("netns", "add", ns)
            made.append(ns)
            _ip("link", "add", host_dev, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("-n", ns, "addr", "add", f"10.{subnet}.{n // 250}.{n % 250 + 2}/16", "dev", "eth0")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("link", "set", host_dev, "master", bridge, "up")
            if n == 1:  # a kernel without tbf is found here, not in an HMU process
                tc = ["tc", "qdisc", "replace", "dev", host_dev, "root", "tbf", "rate", "1mbit",
                      "burst", "1600", "limit", "100000"]  # fmt: skip
                if subprocess.run(tc, capture_output=True, check=False).returncode:
                    raise UsageError("links.shaping tc: this kernel has no tbf qdisc"
                                     " (modprobe sch_tbf); use pacer")  # fmt: skip
            links[hmu] = KernelLink(hmu, ns, host_dev, f"/proc/{os.getpid()}/ns/net", plan)
        yield HmuNetwork(address, links)
    finally:
        for name in reversed(made):
            command = ["ip", "link", "delete", name] if name == bridge else [
                "ip", "netns", "delete", name]  # fmt: skip
            subprocess.run(command, capture_output=True, check=False)
