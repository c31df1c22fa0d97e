"""Flows from a live interface as they end: the capture edge of live detection.

``FlowWatcher`` opens the packet socket ``LiveCapture`` uses (scapy's
``L2ListenSocket`` with a BPF filter, frames undissected) and reads it in a thread of
its own: frames waiting in the socket are read in one go (up to ``MAX_BATCH``),
decoded with ``iomt.traffic.pcap.decode_packet`` and fed to a
``FlowAssembler(close_on_fin=True)``; every flow that ends is handed to ``on_flows``
at once, in that thread.  A flow ends on its second FIN or a RST, so a detector sees
it within the time it takes to read one frame; one that never closes (UDP, a lost
FIN) ends after ``idle_timeout_s`` without packets, checked on the clock every
``idle_timeout_s / 4`` since no packet may come to trigger the assembler's sweep.
Flows still open at ``stop`` are flushed to ``on_flows`` too.

Times are the receiving kernel's (``SO_TIMESTAMPNS``, nanoseconds since the epoch), so
``time.time_ns() - flow.last_ns`` is how long ago the flow's last packet arrived.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from scapy.error import Scapy_Exception

from iomt.errors import RunError, UsageError
from iomt.traffic.flow import Flow, FlowAssembler
from iomt.traffic.live import DEFAULT_BPF, RawListenSocket
from iomt.traffic.pcap import DLT_EN10MB, decode_packet
from iomt.traffic.replay import check_interface

log = logging.getLogger(__name__)

MAX_BATCH = 256
"""Frames read from the socket before the assembler sees them."""


@dataclass
class WatchStats:
    """What a watcher saw: frames read, frames that were not IP, flows it finished
    (``closed`` on FIN/RST, ``expired`` otherwise: idle or reopened, ``flushed`` at
    stop), trailing ACKs it dropped, and frames the kernel dropped because the thread
    fell behind."""

    frames: int = 0
    not_ip: int = 0
    closed: int = 0
    expired: int = 0
    flushed: int = 0
    late_acks: int = 0
    dropped: int = 0


def closed_by_peer(flow: Flow) -> bool:
    """Whether ``flow`` ended on a FIN from both sides or a RST (not by the idle clock)."""
    return flow.reset or (flow.fwd.fin and flow.rev.fin)


class FlowWatcher:
    """Sniffs ``iface`` and calls ``on_flows`` with each batch of flows that ended."""

    def __init__(
        self,
        iface: str,
        on_flows: Callable[[list[Flow]], None],
        *,
        bpf: str | None = DEFAULT_BPF,
        idle_timeout_s: float = 5.0,
    ) -> None:
        if idle_timeout_s <= 0:
            raise ValueError(f"idle_timeout_s must be positive, got {idle_timeout_s}")
        self.iface = iface
        self.bpf = bpf
        self.on_flows = on_flows
        self.assembler = FlowAssembler(idle_timeout_s, close_on_fin=True)
        self.stats = WatchStats()
        self._sweep_s = idle_timeout_s / 4
        self._stop = threading.Event()
        self._sock: RawListenSocket | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> FlowWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread is not None:
            self.stop()

    def start(self) -> None:
        """Open the socket and start reading; flows are reported from the return on."""
        if self._thread is not None:
            raise RunError(f"the watch on {self.iface} is already running")
        check_interface(self.iface)
        try:
            self._sock = RawListenSocket(iface=self.iface, filter=self.bpf, promisc=True)
        except PermissionError:
            raise RunError(f"watching {self.iface} needs root or CAP_NET_RAW") from None
        except Scapy_Exception as exc:
            raise UsageError(f"bad capture filter {self.bpf!r}: {exc}") from None
        except OSError as exc:
            raise RunError(f"cannot watch {self.iface}: {exc}") from None
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"watch-{self.iface}", daemon=True)
        self._thread.start()
        log.info("watching flows on %s (filter %r)", self.iface, self.bpf)

    def stop(self) -> WatchStats:
        """Stop reading, report the flows still open and close the socket."""
        thread, sock = self._thread, self._sock
        if thread is None or sock is None:
            raise RunError(f"the watch on {self.iface} was not started")
        self._stop.set()
        thread.join()
        self._thread = self._sock = None
        try:
            self.stats.dropped += sock.drops()
        finally:
            sock.close()
        rest = self.assembler.flush()
        self.stats.flushed += len(rest)
        if rest:
            self.on_flows(rest)
        if self._error is not None:
            raise RunError(f"watching {self.iface} failed: {self._error}") from self._error
        return self.stats

    def _run(self) -> None:
        try:
            self._read()
        except Exception as exc:  # reported by stop(); the agent goes on without detection
            log.error("watching %s failed: %s", self.iface, exc)
            self._error = exc

    def _read(self) -> None:
        sock = self._sock
        assert sock is not None
        ins = sock.ins
        next_sweep = time.monotonic() + self._sweep_s
        while not self._stop.is_set():
            readable, _, _ = select.select([ins], [], [], self._sweep_s)
            frames: list[tuple[bytes, float]] = []
            while readable and len(frames) < MAX_BATCH:
                _, frame, ts = sock.recv_raw()
                if frame is not None:
                    frames.append((frame, ts))
                readable, _, _ = select.select([ins], [], [], 0)
            sweep = time.monotonic() >= next_sweep
            if sweep:
                self.stats.dropped += sock.drops()
                next_sweep = time.monotonic() + self._sweep_s
            self.feed_frames(frames, time.time_ns() if sweep else None)

    def feed_frames(self, frames: list[tuple[bytes, float]], now_ns: int | None = None) -> None:
        """Decode Ethernet ``frames`` (bytes, kernel time in s), assemble them and hand the
        flows that ended to ``on_flows``; with ``now_ns`` also end the flows idle by then.
        What the reading thread does with each batch (public so a benchmark can time it
        without a socket)."""
        stats, assembler = self.stats, self.assembler
        packets = []
        for frame, ts in frames:
            pkt = decode_packet(frame, DLT_EN10MB, int(ts * 1e9), len(frame))
            if pkt is None:
                stats.not_ip += 1
            else:
                packets.append(pkt)
        stats.frames += len(frames)
        done = assembler.feed_many(packets) if packets else []
        if now_ns is not None:
            done.extend(assembler.expire(now_ns))
        if done:
            closed = sum(closed_by_peer(f) for f in done)
            stats.closed += closed
            stats.expired += len(done) - closed
            stats.late_acks = assembler.late
            self.on_flows(done)
