"""Live capture on an HMU's interface: a scapy AsyncSniffer whose packets become flow features.

``LiveCapture`` opens scapy's Linux packet socket (``L2ListenSocket``) with a BPF
filter (default ``tcp port 1111``, the gateway port of the replayed flows), hands
frames over undissected and runs it under ``AsyncSniffer(store=False, prn=...)``; the
callback appends ``(kernel timestamp in ns, frame bytes)`` to a locked buffer.
``stop`` returns them as ``Captured``, in kernel-timestamp order, with the kernel's
drop count (``PACKET_STATISTICS``).

Captured packets go the offline way (the simplest route that reuses everything):
``Captured.save`` writes a nanosecond pcap with ``iomt.traffic.pcap.write_pcap`` and,
given the sidecar of the capture that was replayed, a sidecar for the live capture,
so ``iomt.traffic.source.PcapSource`` reads it into the same ``FlowTable`` as the
replayed file.  The live flows start at other times than the replayed ones, so
``rebase_truth`` pairs them by 5-tuple and start order (the n-th flow of a 5-tuple
is the n-th flow of that 5-tuple in the replayed capture; synthesised captures draw
each flow's source port from a permutation of the ephemeral range, so a 5-tuple
repeats only after 16,384 flows) and moves each ground-truth entry to its live start.

Timing: the features use the receiving kernel's timestamps (``SO_TIMESTAMPNS``,
which scapy hands over as float seconds, so ~0.24 us resolution); on a veth pair
the kernel stamps a frame as the sender hands it over, so the features measure the
replay as it happened.  Sizes, counts, retransmissions and readings come out exact;
the timing features (``Dur``, ``SIntPkt``, ``DIntPkt``, jitters, loads, ``Rate``)
carry the replayer's scheduling error.  Measured with ``iomt.traffic.replay``'s scapy loop
at real-time priority on a shared 2-core VM: ``Dur`` error median 6-10 us and 90th
percentile 20-40 us on WUSTL-EHMS flows of ~12 ms (< 0.1 % and ~0.3 %), 96-100 % of
flows with every timing feature within 5 %, and now and then one flow of 50 off by
a few ms when the VM loses its CPU; see ``tests/traffic/test_live.py``.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import scapy.layers.l2  # noqa: F401  (registers Ethernet, so sockets know their link type)
from scapy.arch.linux import L2ListenSocket
from scapy.config import conf
from scapy.data import MTU, SOL_PACKET
from scapy.error import Scapy_Exception
from scapy.sendrecv import AsyncSniffer

from iomt.errors import DataError, RunError, UsageError
from iomt.traffic.pcap import write_pcap
from iomt.traffic.replay import check_interface
from iomt.traffic.source import PcapSource, extract
from iomt.traffic.truth import FlowKey, TruthEntry, read_truth, sidecar_path, write_truth

log = logging.getLogger(__name__)

DEFAULT_BPF = "tcp port 1111"
RECEIVE_BUFFER = 8 << 20
"""Socket receive buffer (bytes): a top-speed burst waits here for the Python thread."""
PACKET_STATISTICS = 6  # getsockopt(SOL_PACKET, ...): struct tpacket_stats {packets, drops}
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)


class RawListenSocket(L2ListenSocket):
    """scapy's listening packet socket with a deep buffer, handing frames over as ``Raw``.

    Dissecting every frame as Ether/IP/TCP costs far more than the capture needs.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        try:  # root may exceed net.core.rmem_max
            self.ins.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
        except OSError:
            self.ins.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)

    def recv_raw(self, x: int = MTU) -> tuple[Any, bytes | None, float | None]:
        cls, data, ts = super().recv_raw(x)
        return (conf.raw_layer if cls is not None else None), data, ts

    def drops(self) -> int:
        """Frames the kernel dropped since the last call (buffer full)."""
        try:
            _, dropped = struct.unpack("II", self.ins.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        except OSError:
            return 0
        return int(dropped)


@dataclass
class Captured:
    """Frames captured live, in kernel-timestamp order, and the kernel's drop count."""

    times: np.ndarray  # ns since the epoch
    frames: list[bytes]
    dropped: int = 0
    idle_timeout_s: float = 60.0  # flow idle timeout of the features read back

    def __len__(self) -> int:
        return len(self.frames)

    def save(
        self,
        pcap: str | os.PathLike[str],
        truth: str | os.PathLike[str] | None = None,
        *,
        strict: bool = True,
    ) -> Path:
        """Write the frames as ``pcap``; with ``truth`` (the replayed capture's sidecar)
        also write the live capture's sidecar beside it (``label_capture``)."""
        pcap = Path(pcap)
        if truth is not None:
            _refuse_own_truth(pcap, Path(truth))  # before the pcap is overwritten
        write_pcap(pcap, self.times, self.frames)
        if truth is not None:
            label_capture(pcap, truth, strict=strict, idle_timeout_s=self.idle_timeout_s)
        return pcap

    def source(
        self,
        pcap: str | os.PathLike[str],
        truth: str | os.PathLike[str],
        *,
        strict: bool = True,
    ) -> PcapSource:
        """Save with ground truth and return the ``FeatureSource`` that reads it back."""
        path = self.save(pcap, truth, strict=strict)
        return PcapSource(path, strict=strict, idle_timeout_s=self.idle_timeout_s)


class LiveCapture:
    """Captures an interface's packets in a background thread (module docstring).

    ``count`` stops the capture by itself after that many packets (0: never);
    ``idle_timeout_s`` is the flow idle timeout the captured packets are read back
    with.  Use as a context manager or call ``start`` then ``stop``; opening the socket
    needs root or ``CAP_NET_RAW``.
    """

    def __init__(
        self,
        iface: str,
        *,
        bpf: str | None = DEFAULT_BPF,
        idle_timeout_s: float = 60.0,
        count: int = 0,
    ) -> None:
        if idle_timeout_s <= 0:
            raise ValueError(f"idle_timeout_s must be positive, got {idle_timeout_s}")
        self.iface = iface
        self.bpf = bpf
        self.idle_timeout_s = idle_timeout_s
        self.count = max(0, int(count))
        self._lock = threading.Lock()
        self._times: list[int] = []
        self._frames: list[bytes] = []
        self._sock: RawListenSocket | None = None
        self._sniffer: AsyncSniffer | None = None

    def __len__(self) -> int:
        """Packets captured so far."""
        with self._lock:
            return len(self._frames)

    def __enter__(self) -> LiveCapture:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._sniffer is not None:
            self.stop()

    def start(self) -> None:
        """Open the socket and start sniffing; packets are queued from the return on."""
        if self._sniffer is not None:
            raise RunError(f"the capture on {self.iface} is already running")
        check_interface(self.iface)
        try:
            sock = RawListenSocket(iface=self.iface, filter=self.bpf, promisc=True)
        except PermissionError:
            raise RunError(f"capturing on {self.iface} needs root or CAP_NET_RAW") from None
        except Scapy_Exception as exc:
            raise UsageError(f"bad capture filter {self.bpf!r}: {exc}") from None
        except OSError as exc:
            raise RunError(f"cannot capture on {self.iface}: {exc}") from None
        self._sock = sock
        self._sniffer = AsyncSniffer(
            opened_socket=sock, store=False, prn=self._keep, count=self.count
        )
        self._sniffer.start()
        log.info("capturing on %s (filter %r)", self.iface, self.bpf)

    def _keep(self, pkt: Any) -> None:
        ts = int(round(float(pkt.time) * 1e9))
        frame = bytes(pkt)
        with self._lock:
            self._times.append(ts)
            self._frames.append(frame)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for ``count`` packets (at most ``timeout_s``); whether sniffing ended."""
        sniffer = self._sniffer
        if sniffer is None or sniffer.thread is None:
            return True
        sniffer.thread.join(timeout_s)
        return not sniffer.thread.is_alive()

    def stop(self) -> Captured:
        """Stop sniffing, close the socket and return what was captured."""
        sniffer, sock = self._sniffer, self._sock
        if sniffer is None or sock is None:
            raise RunError(f"the capture on {self.iface} was not started")
        try:
            if sniffer.running:
                sniffer.stop()
            else:
                sniffer.join()
        except Scapy_Exception as exc:
            raise RunError(f"capture on {self.iface} failed: {exc}") from None
        finally:
            dropped = sock.drops()
            sock.close()
            self._sniffer = self._sock = None
        with self._lock:
            times, frames = self._times, self._frames
            self._times, self._frames = [], []
        t = np.asarray(times, dtype=np.int64)
        order = np.argsort(t, kind="stable")  # receive queues of several CPUs may interleave
        if dropped:
            log.warning("%s: the kernel dropped %d packets (capture too slow)", self.iface, dropped)
        log.info("captured %d packets on %s", len(frames), self.iface)
        return Captured(t[order], [frames[i] for i in order.tolist()], dropped, self.idle_timeout_s)


def rebase_truth(truth: Sequence[TruthEntry], keys: Sequence[FlowKey]) -> list[TruthEntry]:
    """Ground truth moved onto re-timed flows: the n-th flow of each 5-tuple in ``keys``
    takes the n-th entry of that 5-tuple in ``truth`` (both by start time), with its
    start time.  Entries and flows without a partner are left out.
    """
    wanted: dict[tuple[str, str, int, int, int], list[TruthEntry]] = defaultdict(list)
    for entry in sorted(truth, key=lambda e: e.start_ns):
        wanted[entry.key[:5]].append(entry)
    starts: dict[tuple[str, str, int, int, int], list[int]] = defaultdict(list)
    for key in sorted(keys, key=lambda k: k[5]):
        starts[key[:5]].append(key[5])
    out = []
    for five, entries in wanted.items():
        for entry, start in zip(entries, starts.get(five, ()), strict=False):
            out.append(replace(entry, start_ns=start))
    out.sort(key=lambda e: e.record)
    return out


def label_capture(
    pcap: str | os.PathLike[str],
    truth: str | os.PathLike[str],
    *,
    strict: bool = True,
    idle_timeout_s: float = 60.0,
) -> Path:
    """Write the sidecar of a live ``pcap`` from the sidecar ``truth`` of the capture
    that was replayed (``rebase_truth``); returns its path.

    With ``strict`` a replayed flow that was not captured, or a captured flow that was
    not replayed, is a ``DataError``; otherwise they are left out with a warning.
    """
    pcap, truth = Path(pcap), Path(truth)
    out = _refuse_own_truth(pcap, truth)
    entries = read_truth(truth)
    keys = extract(pcap, idle_timeout_s).keys()
    rebased = rebase_truth(entries, keys)
    missing, extra = len(entries) - len(rebased), len(keys) - len(rebased)
    if missing or extra:
        message = (
            f"{pcap}: {missing} of {len(entries)} replayed flows were not captured and"
            f" {extra} of {len(keys)} captured flows were not replayed"
        )
        if strict:
            raise DataError(message + " (packets lost, or another capture's ground truth)")
        log.warning("%s; left out", message)
    write_truth(out, rebased)
    return out


def _refuse_own_truth(pcap: Path, truth: Path) -> Path:
    """The sidecar path of ``pcap``, unless that is ``truth`` itself (``UsageError``)."""
    out = sidecar_path(pcap)
    if out.resolve() == truth.resolve():
        raise UsageError(f"{pcap}: the live capture would overwrite the replayed capture")
    return out


def capture_command(
    iface: str,
    out: str | os.PathLike[str],
    *,
    truth: str | os.PathLike[str] | None = None,
    count: int = 0,
    timeout_s: float | None = None,
    bpf: str | None = DEFAULT_BPF,
) -> Captured:
    """``iomt traffic capture IFACE --out PCAP [--truth SIDECAR] [--count N] [--timeout S]``.

    Captures until ``count`` packets, ``timeout_s`` seconds or Ctrl-C, then writes the
    pcap (and, with ``truth``, its sidecar; flows not captured are left out with a
    warning).
    """
    capture = LiveCapture(iface, bpf=bpf, count=count)
    capture.start()
    try:
        capture.wait(timeout_s)
    except KeyboardInterrupt:
        log.info("capture on %s interrupted", iface)
    captured = capture.stop()
    captured.save(out, truth, strict=False)
    return captured
