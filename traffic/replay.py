"""Replaying a capture onto a network interface with its original timing.

``replay_pcap`` sends every frame of an Ethernet pcap (or pcapng) out of an interface,
packet ``k`` at ``(t_k - t_0) / speed`` after the first, where the gaps ``t_{k+1} -
t_k`` may first be capped at ``max_gap_s`` (idle time between flows compressed, flows
themselves untouched as long as no gap inside a flow exceeds the cap).  A speed of
zero or less, or infinity, sends as fast as possible.

Two senders, one schedule (``send_offsets``):

* scapy: one ``L2Socket`` (the socket ``sendp`` opens) and a timing loop on an
  absolute schedule: it sleeps until shortly before each deadline and spins the rest
  (sleep overshoots by ~50 us of timer slack, more on a busy host).  A packet whose
  deadline has passed goes at once, so after a stall the late packets leave back to
  back and the schedule is caught up, never shifted.  Stalls come from CPU contention:
  where allowed (root, ``CAP_SYS_NICE``) a timed replay runs the loop at ``SCHED_FIFO``
  priority 10, which it mostly sleeps through (the kernel's real-time throttling
  keeps 5 % of each CPU for everything else); refused, it runs at normal priority.
* ``tcpreplay``: ``--multiplier`` or ``--topspeed``, the capture preloaded into memory
  (``-K``).  With ``max_gap_s`` a re-timed copy of the capture is replayed, so the cap
  means the same for both senders.

``backend="auto"`` takes tcpreplay for top-speed replays and scapy for timed ones.
Measured on a veth pair on a shared 2-core VM: at top speed tcpreplay sends 85-100 k
packets/s, the scapy loop 80-125 k.  Timed, tcpreplay 4.4.3 comes out late on every
gap (by 5-350 us), as if it slept relative to the previous packet, and the lateness
adds up (0.7-1.1 s behind after 7.5 s and 1,428 packets; median ``Dur`` error 5-28 % on
flows of ~12 ms), while the scapy loop at real-time priority keeps the median ``Dur``
error at 6-10 us (< 0.1 %).

Sending needs ``CAP_NET_RAW`` (root).  A missing capture is a ``DataError``, a missing
interface a ``UsageError``, a sender that cannot run a ``RunError``; each one line.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import scapy.layers.l2  # noqa: F401  (registers Ethernet, so sockets know their link type)
from scapy.arch.linux import L2Socket
from scapy.error import Scapy_Exception
from scapy.utils import RawPcapNgReader, RawPcapReader

from iomt.errors import DataError, RunError, UsageError
from iomt.traffic.pcap import write_pcap

log = logging.getLogger(__name__)

Backend = Literal["auto", "tcpreplay", "scapy"]
DLT_EN10MB = 1
SPIN_NS = 200_000
RT_PRIORITY = 10
"""The last stretch before a deadline is spun rather than slept (sleep overshoots)."""
_ACTUAL = re.compile(r"Actual:\s+(\d+)\s+packets.*?sent in\s+([0-9.]+)\s+seconds")


@dataclass(frozen=True)
class ReplayReport:
    """What one replay sent: packets, wall seconds, the sender, and the planned span."""

    packets: int
    seconds: float
    backend: str = "scapy"
    span_s: float = 0.0  # the schedule's first-to-last packet time (0 at top speed)
    realtime: bool = False  # whether the sender ran at SCHED_FIFO priority

    @property
    def rate_pps(self) -> float:
        """Packets per second achieved."""
        return self.packets / self.seconds if self.seconds > 0 else math.inf


def top_speed(speed: float) -> bool:
    """Whether ``speed`` asks for no timing at all (``<= 0`` or infinite)."""
    return speed <= 0 or math.isinf(speed)


def send_offsets(
    times_ns: np.ndarray, speed: float = 1.0, max_gap_s: float | None = None
) -> np.ndarray:
    """Send time of each packet in ns after the first (see the module docstring).

    Gaps are capped at ``max_gap_s`` first, then divided by ``speed``.  In a capture out
    of time order a packet stamped earlier than one ahead of it in the file goes right
    after that one, and later packets keep to the clock of the file's latest stamp.
    """
    if math.isnan(speed):
        raise ValueError("speed must be a number")
    if max_gap_s is not None and not max_gap_s >= 0:
        raise ValueError(f"max_gap_s must be >= 0, got {max_gap_s}")
    t = np.asarray(times_ns, dtype=np.int64)
    if len(t) == 0 or top_speed(speed):
        return np.zeros(len(t), dtype=np.int64)
    gaps = np.diff(np.maximum.accumulate(t))  # a packet stamped too early goes at once
    if max_gap_s is not None:
        gaps = np.minimum(gaps, int(round(max_gap_s * 1e9)))
    offsets = np.concatenate([[0], np.cumsum(gaps)])
    return np.rint(offsets / speed).astype(np.int64)


def read_frames(path: str | os.PathLike[str]) -> tuple[np.ndarray, list[bytes]]:
    """Times (ns since the epoch) and bytes of every frame of an Ethernet capture."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"capture not found: {path}")
    times: list[int] = []
    frames: list[bytes] = []
    try:
        f = open(path, "rb")  # opened here so it is closed when scapy refuses it
    except OSError as exc:
        raise DataError(f"{path}: cannot read capture ({exc.strerror or exc})") from None
    try:
        reader = RawPcapReader(f)
        if isinstance(reader, RawPcapNgReader):
            for frame, meta in reader:
                if meta.linktype != DLT_EN10MB:
                    raise DataError(_not_ethernet(path, meta.linktype))
                ticks = (meta.tshigh << 32) | meta.tslow
                times.append(ticks * 1_000_000_000 // meta.tsresol)
                frames.append(frame)
        else:
            if reader.linktype != DLT_EN10MB:
                raise DataError(_not_ethernet(path, reader.linktype))
            scale = 1 if reader.nano else 1000
            for frame, meta in reader:
                times.append(meta.sec * 1_000_000_000 + meta.usec * scale)
                frames.append(frame)
    except Scapy_Exception as exc:
        raise DataError(f"{path}: not a readable pcap/pcapng capture ({exc})") from None
    except (OSError, EOFError, struct.error) as exc:
        raise DataError(f"{path}: cannot read capture ({exc})") from None
    finally:
        f.close()
    return np.asarray(times, dtype=np.int64), frames


def _not_ethernet(path: Path, linktype: int) -> str:
    return f"{path}: link type {linktype} is not Ethernet; only Ethernet captures replay"


def check_interface(iface: str) -> None:
    """A one-line ``UsageError`` unless ``iface`` exists in this network namespace."""
    try:
        socket.if_nametoindex(iface)
    except OSError:
        raise UsageError(
            f"no network interface {iface!r} here (see `ip link`; interfaces belong to a"
            " network namespace)"
        ) from None


def replay_pcap(
    pcap: str | os.PathLike[str],
    iface: str,
    *,
    speed: float = 1.0,
    max_gap_s: float | None = None,
    backend: Backend = "auto",
    realtime: bool = True,
) -> ReplayReport:
    """Send the frames of ``pcap`` out of ``iface`` on their original schedule.

    ``speed`` divides every gap (2.0 replays twice as fast; ``<= 0`` or ``inf`` as fast
    as possible); ``max_gap_s`` caps each gap before that.  ``backend`` ``auto`` uses
    tcpreplay for top speed when it is installed, scapy otherwise (module docstring).
    ``realtime`` lets the scapy loop of a timed replay ask for ``SCHED_FIFO``.
    """
    times, frames = read_frames(pcap)
    check_interface(iface)
    offsets = send_offsets(times, speed, max_gap_s)
    span_s = float(offsets[-1]) / 1e9 if len(offsets) else 0.0
    tool = shutil.which("tcpreplay")
    if backend == "auto":
        backend = "tcpreplay" if tool and top_speed(speed) else "scapy"
    if not frames:
        return ReplayReport(0, 0.0, backend, 0.0)
    rt = False
    if backend == "tcpreplay":
        if tool is None:
            raise RunError("tcpreplay is not installed (apt-get install tcpreplay)")
        if max_gap_s is None or top_speed(speed):
            packets, seconds = _tcpreplay(tool, Path(pcap), iface, speed)
        else:  # replay a copy whose gaps are already capped
            with tempfile.TemporaryDirectory(prefix="iomt-replay-") as tmp:
                capped = Path(tmp) / "capped.pcap"
                write_pcap(capped, times[0] + send_offsets(times, 1.0, max_gap_s), frames)
                packets, seconds = _tcpreplay(tool, capped, iface, speed)
    elif backend == "scapy":
        with _priority(realtime and not top_speed(speed)) as rt:
            packets, seconds = _scapy(frames, offsets, iface)
    else:
        raise UsageError(f"unknown replay backend {backend!r} (auto, tcpreplay or scapy)")
    log.info(
        "replayed %d packets on %s in %.3f s (%s%s, planned %.3f s)",
        packets, iface, seconds, backend, ", real-time" if rt else "", span_s,
    )  # fmt: skip
    return ReplayReport(packets, seconds, backend, span_s, rt)


@contextmanager
def _priority(realtime: bool) -> Iterator[bool]:
    """Run the calling thread at ``SCHED_FIFO`` priority ``RT_PRIORITY`` if allowed."""
    if not realtime or not hasattr(os, "sched_setscheduler"):
        yield False
        return
    try:
        policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(RT_PRIORITY))
    except OSError as exc:  # no CAP_SYS_NICE, or no real-time budget in this cgroup
        log.info("replay without real-time priority (%s); timing suffers on a busy host", exc)
        yield False
        return
    try:
        yield True
    finally:
        os.sched_setscheduler(0, policy, param)


def _tcpreplay(tool: str, pcap: Path, iface: str, speed: float) -> tuple[int, float]:
    timing = ["--topspeed"] if top_speed(speed) else [f"--multiplier={speed:.9g}"]
    cmd = [tool, f"--intf1={iface}", "--preload-pcap", *timing, str(pcap)]
    started = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise RunError(f"cannot run tcpreplay: {exc}") from None
    wall = time.perf_counter() - started
    if done.returncode != 0:
        lines = [ln.strip() for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        reasons = [ln for ln in lines if "Fatal" not in ln and "Warning" not in ln]
        reason = (reasons or lines or [f"exit code {done.returncode}"])[-1]
        raise RunError(f"tcpreplay failed on {iface}: {reason}")
    found = _ACTUAL.search(done.stdout)
    if found is None:
        log.warning("tcpreplay printed no summary; counting wall time")
        return 0, wall
    return int(found.group(1)), float(found.group(2))


def _scapy(frames: list[bytes], offsets: np.ndarray, iface: str) -> tuple[int, float]:
    try:
        sock = L2Socket(iface=iface)
    except PermissionError:
        raise RunError(f"sending on {iface} needs root or CAP_NET_RAW") from None
    except OSError as exc:
        raise RunError(f"cannot open {iface} for sending: {exc}") from None
    send = sock.outs.send
    clock = time.perf_counter_ns
    sleep = time.sleep
    sent = 0
    try:
        start = clock()
        for offset, frame in zip(offsets.tolist(), frames, strict=True):
            deadline = start + offset
            left = deadline - clock()
            if left > SPIN_NS:
                sleep((left - SPIN_NS) / 1e9)
            while clock() < deadline:
                pass
            send(frame)
            sent += 1
        seconds = (clock() - start) / 1e9
    except OSError as exc:
        raise RunError(f"sending on {iface} failed after {sent} packets: {exc}") from None
    finally:
        sock.close()
    return sent, seconds


def replay_command(
    pcap: str | os.PathLike[str], iface: str, speed: float = 1.0, max_gap_s: float | None = None
) -> ReplayReport:
    """``iomt traffic replay PCAP --iface IFACE [--speed X] [--max-gap S]``."""
    return replay_pcap(pcap, iface, speed=speed, max_gap_s=max_gap_s)
