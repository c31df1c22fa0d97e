"""Bidirectional flow assembly: packets in, finished flows with Argus-style counters out.

Pure core (no I/O): ``FlowAssembler.feed`` takes one ``Packet`` at a time (in capture
order) and returns the flows it finished; ``flush`` finishes the rest.  A flow is the
5-tuple in both directions.  Its source is the sender of its first packet, except
when that packet is a SYN-ACK (then the receiver), as Argus does.  A flow ends when

* it has been idle for ``idle_timeout_s`` (checked on every packet of the flow and by a
  sweep of all flows once per ``idle_timeout_s`` of capture time);
* it has lasted ``active_timeout_s`` (off by default; Argus's status interval);
* a new connection reuses its 5-tuple: a pure SYN whose sequence number differs from
  the flow's opening SYN, or any SYN after the flow was reset or closed both ways;
* with ``close_on_fin`` (live detection, which scores a flow as soon as it ends), it
  has sent a FIN both ways or a RST.  A pure ACK of the same 5-tuple within the idle
  timeout after that (the last ACK of a normal close) is then counted in ``late``
  and dropped instead of opening a flow of its own, so a real stack's flow ends one
  ACK short of what the offline assembler measures; the replayed WUSTL-EHMS flows
  end on the second FIN and measure the same either way.

Each side keeps running counters only (packets, bytes, size extremes, first/last time,
sum of squared inter-packet times in integer nanoseconds), so memory stays constant
per flow.  TCP sequence numbers (relative to the side's first segment, modulo 2**32)
give retransmissions (a segment consuming sequence space that brings nothing new) and
gaps (sequence space never seen, Argus's ``SrcGap``/``DstGap``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10
PROTO_TCP, PROTO_UDP = 6, 17
MAX_PAYLOADS = 4
"""Payloads kept per side (the readings are in the sensor's first data segment)."""


class Packet(NamedTuple):
    """What the assembler needs of one captured packet.

    ``src``/``dst`` are packed addresses (4 or 16 bytes), ``size`` the length on the
    wire, ``flags``/``seq`` the TCP flags and sequence number (0 for other protocols),
    ``payload`` the transport payload without link-layer padding.
    """

    ts_ns: int
    src: bytes
    dst: bytes
    sport: int
    dport: int
    proto: int
    size: int
    flags: int
    seq: int
    payload: bytes


@dataclass(slots=True)
class Side:
    """Running counters of one direction of a flow."""

    packets: int = 0
    bytes: int = 0
    max_size: int = 0
    min_size: int = 0
    first_ns: int = 0
    last_ns: int = 0
    sum_sq_ns: int = 0  # sum of squared inter-packet times, ns**2 (exact integers)
    isn: int = -1  # sequence number of the side's first TCP segment
    high: int = 0  # highest relative sequence number seen (end of data)
    retransmits: int = 0
    gap_bytes: int = 0
    syn_seq: int = -1  # sequence number of the side's pure SYN, if it sent one
    syn_retry_ns: list[int] = field(default_factory=list)  # intervals ending at a SYN retry
    fin: bool = False
    payloads: list[bytes] = field(default_factory=list)


@dataclass(slots=True)
class Flow:
    """One finished (or open) bidirectional flow; ``fwd`` is source to destination."""

    src: bytes
    dst: bytes
    sport: int
    dport: int
    proto: int
    start_ns: int
    last_ns: int
    fwd: Side
    rev: Side
    reset: bool = False

    @property
    def packets(self) -> int:
        """Packets in both directions."""
        return self.fwd.packets + self.rev.packets


def _update(
    side: Side, ts: int, size: int, flags: int, seq: int, payload: bytes, tcp: bool
) -> None:
    """Fold one packet into a side's counters (see the module docstring)."""
    if side.packets:
        interval = ts - side.last_ns
        side.sum_sq_ns += interval * interval
        if size > side.max_size:
            side.max_size = size
        elif size < side.min_size:
            side.min_size = size
    else:
        side.first_ns = ts
        side.max_size = side.min_size = size
        interval = 0
    side.packets += 1
    side.bytes += size
    side.last_ns = ts
    if payload and len(side.payloads) < MAX_PAYLOADS:
        side.payloads.append(payload)
    if not tcp:
        return
    syn = flags & TCP_SYN
    fin = flags & TCP_FIN
    if fin:
        side.fin = True
    length = len(payload) + (1 if syn else 0) + (1 if fin else 0)
    if side.isn < 0:
        side.isn = seq
        side.high = length
        if syn and not flags & TCP_ACK:
            side.syn_seq = seq
        return
    if length == 0:
        return
    rel = (seq - side.isn) & 0xFFFFFFFF
    end = rel + length
    if end <= side.high:
        side.retransmits += 1
        if syn and not flags & TCP_ACK:
            side.syn_retry_ns.append(interval)
        return
    if rel > side.high:
        side.gap_bytes += rel - side.high
    side.high = end


class FlowAssembler:
    """Groups packets into bidirectional flows (see the module docstring)."""

    def __init__(
        self,
        idle_timeout_s: float = 60.0,
        active_timeout_s: float | None = None,
        *,
        close_on_fin: bool = False,
    ) -> None:
        if idle_timeout_s <= 0:
            raise ValueError(f"idle_timeout_s must be positive, got {idle_timeout_s}")
        if active_timeout_s is not None and active_timeout_s <= 0:
            raise ValueError(f"active_timeout_s must be positive, got {active_timeout_s}")
        self.idle_ns = int(idle_timeout_s * 1e9)
        self.active_ns = None if active_timeout_s is None else int(active_timeout_s * 1e9)
        self._flows: dict[tuple[bytes, bytes, int, int, int], Flow] = {}
        self._next_sweep: int | None = None
        self.close_on_fin = close_on_fin
        self._closed: dict[tuple[bytes, bytes, int, int, int], int] = {}  # key -> closed at
        self.packets = 0
        self.late = 0  # pure ACKs after a close on FIN/RST, dropped

    def __len__(self) -> int:
        """Flows currently open."""
        return len(self._flows) // 2

    def feed(self, pkt: Packet | tuple) -> list[Flow]:
        """Add one packet (capture order); returns the flows this finished, oldest first."""
        return self.feed_many((pkt,))

    def feed_many(self, packets: Iterable[Packet | tuple]) -> list[Flow]:
        """Add packets in capture order; returns the flows they finished, in end order.

        The same as calling ``feed`` on each, with the per-packet work inlined.
        """
        flows = self._flows
        idle, active = self.idle_ns, self.active_ns
        next_sweep = self._next_sweep
        done: list[Flow] = []
        count = 0
        for ts, src, dst, sport, dport, proto, size, flags, seq, payload in packets:
            count += 1
            if next_sweep is None:
                next_sweep = ts + idle
            elif ts >= next_sweep:
                done.extend(self._sweep(ts))
                next_sweep = ts + idle
            key = (src, dst, sport, dport, proto)
            flow = flows.get(key)
            tcp = proto == PROTO_TCP
            if flow is None and self._closed and self._late(key, ts, flags, payload):
                continue
            if flow is not None and (
                ts - flow.last_ns > idle
                or (active is not None and ts - flow.start_ns >= active)
                or (tcp and flags & TCP_SYN and self._reopens(flow, src, sport, flags, seq))
            ):
                self._remove(flow)
                done.append(flow)
                flow = None
            if flow is None:
                if tcp and flags & (TCP_SYN | TCP_ACK) == TCP_SYN | TCP_ACK:
                    flow = Flow(dst, src, dport, sport, proto, ts, ts, Side(), Side())
                else:
                    flow = Flow(src, dst, sport, dport, proto, ts, ts, Side(), Side())
                flows[(src, dst, sport, dport, proto)] = flow
                flows[(dst, src, dport, sport, proto)] = flow
            flow.last_ns = ts
            side = flow.fwd if flow.src == src and flow.sport == sport else flow.rev
            _update(side, ts, size, flags, seq, payload, tcp)
            if tcp and flags & TCP_RST:
                flow.reset = True
            if self.close_on_fin and tcp and (flow.reset or (flow.fwd.fin and flow.rev.fin)):
                self._remove(flow)
                self._closed[(flow.src, flow.dst, flow.sport, flow.dport, proto)] = ts
                done.append(flow)
        self._next_sweep = next_sweep
        self.packets += count
        return done

    def flush(self) -> list[Flow]:
        """Finish every open flow (end of capture), oldest first."""
        done = sorted({id(f): f for f in self._flows.values()}.values(), key=lambda f: f.start_ns)
        self._flows.clear()
        self._closed.clear()
        self._next_sweep = None
        return done

    def expire(self, now_ns: int) -> list[Flow]:
        """Finish the flows idle since before ``now_ns - idle_timeout`` (a live capture
        calls this on a clock, since no packet may come to trigger the sweep)."""
        return self._sweep(now_ns)

    def _late(
        self, key: tuple[bytes, bytes, int, int, int], ts: int, flags: int, payload: bytes
    ) -> bool:
        """Whether a packet is the trailing pure ACK of a flow closed on FIN/RST."""
        src, dst, sport, dport, proto = key
        closed = self._closed.get(key)
        if closed is None:
            closed = self._closed.get((dst, src, dport, sport, proto))
        if closed is None or ts - closed > self.idle_ns:
            return False
        if flags & (TCP_SYN | TCP_FIN | TCP_RST) or payload:
            return False
        self.late += 1
        return True

    @staticmethod
    def _reopens(flow: Flow, src: bytes, sport: int, flags: int, seq: int) -> bool:
        """Whether a SYN starts a new connection on ``flow``'s 5-tuple."""
        if flow.reset or (flow.fwd.fin and flow.rev.fin):
            return True
        if flags & TCP_ACK:
            return False
        forward = flow.src == src and flow.sport == sport
        opening = flow.fwd.syn_seq if forward else flow.rev.syn_seq
        return opening >= 0 and opening != seq

    def _remove(self, flow: Flow) -> None:
        self._flows.pop((flow.src, flow.dst, flow.sport, flow.dport, flow.proto), None)
        self._flows.pop((flow.dst, flow.src, flow.dport, flow.sport, flow.proto), None)

    def _sweep(self, now: int) -> list[Flow]:
        stale = [
            f for f in {id(f): f for f in self._flows.values()}.values()
            if now - f.last_ns > self.idle_ns
        ]  # fmt: skip
        for flow in stale:
            self._remove(flow)
        if self._closed:
            self._closed = {k: t for k, t in self._closed.items() if now - t <= self.idle_ns}
        return sorted(stale, key=lambda f: f.start_ns)
