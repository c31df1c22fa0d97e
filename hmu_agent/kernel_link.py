"""An HMU process's link shaped by the kernel (``links.shaping: tc``).

The launcher gives each HMU process a network namespace of its own, joined to the
broker by a veth pair (``iomt.scenarios.hmu_netns``).  The process enters that
namespace before it opens any socket (``enter``), so every byte it sends or receives
crosses the pair, and a token bucket filter (``tbf``) on the pair's two ends holds
those bytes to the round's bandwidth: the namespace end's egress is the uplink
(updates), the launcher end's egress the downlink (invitations and global models).
The bucket holds one full-size frame (``BURST``) and queues up to ``LIMIT`` bytes, so
TCP meets a slow link, not a lossy one.  ``tbf`` has no delay: the one-way latency of a
profile is still held back in the HMU's transport (``RoundProfile.transfer_s``).  A
link without a bandwidth limit gets a plain FIFO.

When: the uplink must hold round r's rate before r's update goes out, and the
downlink must hold the next round's before the server invites for it, which it does
only after this update has arrived.  So before publishing its round r update the
HMU sets the uplink to round r's profile and the downlink to round r + 1's (round 1's
both at the start).  An HMU not selected for a while keeps the downlink of the round
after its last update: a deviation from per-round sampling, stated.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from dataclasses import dataclass

from iomt.errors import RunError
from iomt.hmu_agent.link_profile import LinkPlan, RoundProfile

CLONE_NEWNET = 0x40000000
NS_DEV = "eth0"
"""The pair's end inside an HMU's namespace."""
BURST = 1600
"""Bytes the bucket holds: one Ethernet frame (larger GSO packets are cut to fit)."""
LIMIT = 1_000_000
"""Bytes queued behind the bucket before it drops."""


def qdisc(profile: RoundProfile) -> list[str]:
    """The root qdisc of one direction of ``profile``: its bandwidth, or a plain FIFO."""
    if profile.kbps is None:
        return ["pfifo", "limit", "1000"]
    return ["tbf", "rate", f"{profile.kbps:g}kbit", "burst", str(BURST), "limit", str(LIMIT)]


@dataclass(frozen=True)
class KernelLink:
    """One HMU's namespace and veth pair; called with a round before that round's update."""

    hmu_id: str
    netns: str
    """The HMU's namespace (``/run/netns/<netns>``)."""
    host_dev: str
    """The pair's end in the launcher's namespace."""
    host_ns: str
    """The launcher's namespace, ``/proc/<pid>/ns/net``."""
    plan: LinkPlan

    def enter(self) -> None:
        """Move this (single-threaded) process into the HMU's namespace."""
        fd = os.open(f"/run/netns/{self.netns}", os.O_RDONLY)
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.setns(fd, CLONE_NEWNET) != 0:
                errno = ctypes.get_errno()
                raise RunError(f"{self.hmu_id}: cannot enter {self.netns}: {os.strerror(errno)}")
        finally:
            os.close(fd)

    def shape(self, up_round: int, down_round: int) -> None:
        """The uplink at ``up_round``'s profile, the downlink at ``down_round``'s."""
        up = self.plan.profile(self.hmu_id, up_round)
        down = self.plan.profile(self.hmu_id, down_round)
        _run(["tc", "-n", self.netns, "qdisc", "replace", "dev", NS_DEV, "root", *qdisc(up)])
        _run(["nsenter", f"--net={self.host_ns}", "tc", "qdisc", "replace", "dev",
              self.host_dev, "root", *qdisc(down)])  # fmt: skip

    def __call__(self, round_: int) -> None:
        self.shape(round_, round_ + 1)


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RunError(f"{' '.join(command[:6])}...: {done.stderr.strip()[:200]}")
