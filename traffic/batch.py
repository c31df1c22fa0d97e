"""Offline flow assembly of a whole capture at once, vectorised with numpy.

Pure core (no I/O).  Same flows and counters as the streaming ``FlowAssembler`` (the
tests check both on the same captures), for captures read in full: the packets are
sorted by 5-tuple (either direction) and capture order, split into flows where the
tuple changes, where a flow has been idle longer than the timeout, where it has run
for the active timeout, or where a SYN opens a new connection (decided by a short
Python pass over the SYN packets only).  Per-side counters then come from
``numpy.ufunc.reduceat`` over (flow, side) segments, and the TCP sequence analysis
(retransmissions, gaps) from a segmented running maximum of sequence ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from iomt.traffic.features import FlowRecords
from iomt.traffic.flow import MAX_PAYLOADS, PROTO_TCP, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, Packet

IPV4_CODES = 1 << 32
"""Address codes below this are IPv4 addresses as integers; others index ``extra``."""


@dataclass
class PacketColumns:
    """A capture as columns, in file order.

    ``src``/``dst`` are address codes (an IPv4 address as its integer value; other
    addresses ``IPV4_CODES + i`` with the packed bytes in ``addresses[i]``); payloads
    are ``data[pay_off : pay_off + pay_len]``.
    """

    ts: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    sport: np.ndarray
    dport: np.ndarray
    proto: np.ndarray
    size: np.ndarray
    flags: np.ndarray
    seq: np.ndarray
    pay_off: np.ndarray
    pay_len: np.ndarray
    data: bytes
    addresses: list[bytes]

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def from_packets(cls, packets: Sequence[Packet | tuple]) -> PacketColumns:
        """Columns of ``Packet`` tuples (crafted ones, or a pcapng read packet by packet)."""
        addresses: dict[bytes, int] = {}
        data = b"".join(p[9] for p in packets)
        lengths = np.array([len(p[9]) for p in packets], dtype=np.int64)
        offsets = np.zeros(len(packets), dtype=np.int64)
        if len(packets) > 1:
            offsets[1:] = np.cumsum(lengths)[:-1]

        def col(j: int) -> np.ndarray:
            return np.array([p[j] for p in packets], dtype=np.int64)

        return cls(
            ts=col(0),
            src=np.array([address_code(p[1], addresses) for p in packets], dtype=np.int64),
            dst=np.array([address_code(p[2], addresses) for p in packets], dtype=np.int64),
            sport=col(3), dport=col(4), proto=col(5), size=col(6), flags=col(7), seq=col(8),
            pay_off=offsets, pay_len=lengths, data=data,
            addresses=sorted(addresses, key=addresses.__getitem__),
        )  # fmt: skip

    def address(self, code: int) -> bytes:
        """Packed address of an address code."""
        if code < IPV4_CODES:
            return int(code).to_bytes(4, "big")
        return self.addresses[code - IPV4_CODES]


def address_code(address: bytes, table: dict[bytes, int]) -> int:
    """Code of a packed address: IPv4 as its value, others numbered via ``table``."""
    if len(address) == 4:
        return int.from_bytes(address, "big")
    return IPV4_CODES + table.setdefault(address, len(table))


def _exclusive_cumsum(x: np.ndarray) -> np.ndarray:
    out = np.zeros(len(x) + 1, dtype=np.int64)
    np.cumsum(x, out=out[1:])
    return out


def _split_flows(
    ts: np.ndarray,
    group_start: np.ndarray,
    is_ab: np.ndarray,
    tcp: np.ndarray,
    flags: np.ndarray,
    seq: np.ndarray,
    idle_ns: int,
    active_ns: int | None,
) -> np.ndarray:
    """Boolean mask of packets (in sorted order) that open a flow."""
    n = len(ts)
    gap = np.empty(n, dtype=np.int64)
    gap[0] = 0
    np.subtract(ts[1:], ts[:-1], out=gap[1:])
    hard = group_start | (gap > idle_ns)
    syn = tcp & ((flags & TCP_SYN) != 0)
    candidates = syn & ~hard
    if active_ns is not None:
        last_hard = np.maximum.accumulate(np.where(hard, np.arange(n), 0))
        candidates |= ~hard & (ts - ts[last_hard] >= active_ns)
    start = hard.copy()
    cand = np.flatnonzero(candidates)
    if not len(cand):
        return start
    last_hard = np.maximum.accumulate(np.where(hard, np.arange(n), 0))
    fin = tcp & ((flags & TCP_FIN) != 0)
    rst_c = _exclusive_cumsum(tcp & ((flags & TCP_RST) != 0))
    fin_ab_c = _exclusive_cumsum(fin & is_ab)
    fin_ba_c = _exclusive_cumsum(fin & ~is_ab)
    # next packet at or after k sent by the lo (ab) / hi (ba) endpoint
    idx = np.where(is_ab, np.arange(n), n)
    next_ab = np.minimum.accumulate(idx[::-1])[::-1]
    idx = np.where(~is_ab, np.arange(n), n)
    next_ba = np.minimum.accumulate(idx[::-1])[::-1]
    pure_syn = syn & ((flags & TCP_ACK) == 0)
    ts_l, flags_l, seq_l = ts.tolist(), flags.tolist(), seq.tolist()
    ab_l, pure_l, syn_l = is_ab.tolist(), pure_syn.tolist(), syn.tolist()
    last_hard_l = last_hard.tolist()
    next_ab_l, next_ba_l = next_ab.tolist(), next_ba.tolist()
    rst_l, fin_ab_l, fin_ba_l = rst_c.tolist(), fin_ab_c.tolist(), fin_ba_c.tolist()
    current = 0
    for i in cand.tolist():
        s = max(last_hard_l[i], current)
        split = False
        if active_ns is not None and ts_l[i] - ts_l[s] >= active_ns:
            split = True
        elif syn_l[i]:
            if rst_l[i] - rst_l[s] > 0 or (
                fin_ab_l[i] - fin_ab_l[s] > 0 and fin_ba_l[i] - fin_ba_l[s] > 0
            ):
                split = True
            elif not flags_l[i] & TCP_ACK:
                j = next_ab_l[s] if ab_l[i] else next_ba_l[s]
                split = j < i and pure_l[j] and seq_l[j] != seq_l[i]
        if split:
            start[i] = True
            current = i
    return start


def _group_by_flow_key(cols: PacketColumns) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Packets sorted by direction-free 5-tuple (then capture order): the permutation, which
    packets were written B -> A (``swap``), and where each 5-tuple's run starts."""
    n = len(cols)
    src, dst, sport, dport = cols.src, cols.dst, cols.sport, cols.dport
    swap = (src > dst) | ((src == dst) & (sport > dport))
    lo_a, hi_a = np.where(swap, dst, src), np.where(swap, src, dst)
    lo_p, hi_p = np.where(swap, dport, sport), np.where(swap, sport, dport)
    perm = np.lexsort((np.arange(n), cols.proto, hi_p, hi_a, lo_p, lo_a))
    keys = (lo_a[perm], lo_p[perm], hi_a[perm], hi_p[perm], cols.proto[perm])
    group_start = np.zeros(n, dtype=bool)
    group_start[0] = True
    for k in keys:
        group_start[1:] |= k[1:] != k[:-1]
    return perm, swap, group_start


def _orient(
    cols: PacketColumns,
    perm: np.ndarray,
    tcp: np.ndarray,
    flags: np.ndarray,
    first: np.ndarray,
    flow_id: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each flow's source and destination (its first packet's sender, unless that packet
    is a SYN-ACK), and per packet whether it goes forward."""
    p_src, p_dst = cols.src[perm], cols.dst[perm]
    p_sport, p_dport = cols.sport[perm], cols.dport[perm]
    synack = tcp[first] & ((flags[first] & (TCP_SYN | TCP_ACK)) == (TCP_SYN | TCP_ACK))
    f_src = np.where(synack, p_dst[first], p_src[first])
    f_sport = np.where(synack, p_dport[first], p_sport[first])
    f_dst = np.where(synack, p_src[first], p_dst[first])
    f_dport = np.where(synack, p_sport[first], p_dport[first])
    fwd = (p_src == f_src[flow_id]) & (p_sport == f_sport[flow_id])
    return f_src, f_sport, f_dst, f_dport, fwd


def _intervals(
    ts_s: np.ndarray,
    seg_first: np.ndarray,
    seg_starts: np.ndarray,
    seg_ends: np.ndarray,
    seg_index: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per packet its gap to the previous one of its segment (0 for the first), and per
    segment the time spanned and ``k**2`` times the variance of its ``k`` gaps."""
    dt = np.zeros(len(ts_s), dtype=np.int64)
    dt[1:] = ts_s[1:] - ts_s[:-1]
    dt[seg_first] = 0
    span = ts_s[seg_ends - 1] - ts_s[seg_starts]
    k = seg_ends - seg_starts - 1
    mean = np.divide(span, k, out=np.zeros(len(k)), where=k > 0)
    dev = np.where(seg_first, 0.0, dt - mean[seg_index])
    return dt, span, k * np.add.reduceat(dev * dev, seg_starts)


def _tcp_sequence(
    flags_s: np.ndarray,
    seq_s: np.ndarray,
    pay_len: np.ndarray,
    tcp_s: np.ndarray,
    seg_first: np.ndarray,
    seg_starts: np.ndarray,
    seg_index: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TCP sequence analysis per (flow, side) segment, relative to its first packet:
    retransmissions, the bytes skipped before each packet, and retried SYNs."""
    syn = (flags_s & TCP_SYN) != 0
    fin = (flags_s & TCP_FIN) != 0
    rel = (seq_s - seq_s[seg_starts][seg_index]) % (1 << 32)
    length = pay_len + syn + fin
    end = rel + length
    consuming = tcp_s & (length > 0) & ~seg_first
    lift = seg_index.astype(np.int64) << 40
    high = np.maximum.accumulate(np.where(seg_first | consuming, end, 0) + lift) - lift
    prev_high = np.zeros(len(seq_s), dtype=np.int64)
    prev_high[1:] = high[:-1]
    retrans = consuming & (end <= prev_high)
    gap = np.where(consuming & ~retrans & (rel > prev_high), rel - prev_high, 0)
    syn_retry = retrans & syn & ((flags_s & TCP_ACK) == 0)
    return retrans, gap, syn_retry


def _first_payloads(
    data: bytes,
    n_flows: int,
    seg_key: np.ndarray,
    seg_starts: np.ndarray,
    seg_index: np.ndarray,
    pay_off: np.ndarray,
    pay_len: np.ndarray,
) -> list[list[bytes]]:
    """The sensor's first ``MAX_PAYLOADS`` payloads of each flow, for the readings."""
    fwd_s = seg_key % 2 == 0
    carrying = np.flatnonzero(fwd_s & (pay_len > 0))
    rank = np.arange(len(carrying)) - np.searchsorted(carrying, seg_starts[seg_index[carrying]])
    keep = carrying[rank < MAX_PAYLOADS]
    payloads: list[list[bytes]] = [[] for _ in range(n_flows)]
    for fid, off, ln in zip(
        (seg_key[keep] // 2).tolist(), pay_off[keep].tolist(), pay_len[keep].tolist(), strict=True
    ):
        payloads[fid].append(data[off : off + ln])
    return payloads


def assemble(
    cols: PacketColumns, idle_timeout_s: float = 60.0, active_timeout_s: float | None = None
) -> FlowRecords:
    """Flows of a whole capture (ordered by start time), as ``FlowAssembler`` finds them."""
    n = len(cols)
    if n == 0:
        return FlowRecords.empty()
    idle_ns = int(idle_timeout_s * 1e9)
    active_ns = None if active_timeout_s is None else int(active_timeout_s * 1e9)
    perm, swap, group_start = _group_by_flow_key(cols)
    ts = cols.ts[perm]
    flags, seq = cols.flags[perm].astype(np.int64), cols.seq[perm].astype(np.int64)
    tcp = cols.proto[perm] == PROTO_TCP
    is_ab = ~swap[perm]
    starts = _split_flows(ts, group_start, is_ab, tcp, flags, seq, idle_ns, active_ns)
    flow_id = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    f_src, f_sport, f_dst, f_dport, fwd = _orient(cols, perm, tcp, flags, first, flow_id)
    # (flow, side) segments, side 0 = forward, in capture order within each
    seg_key = flow_id * 2 + (~fwd)
    order = np.argsort(seg_key, kind="stable")
    seg_key = seg_key[order]
    ts_s = ts[order]
    size = cols.size[perm][order].astype(np.int64)
    flags_s, seq_s = flags[order], seq[order]
    tcp_s = tcp[order]
    pay_len = cols.pay_len[perm][order].astype(np.int64)
    seg_first = np.ones(n, dtype=bool)
    seg_first[1:] = seg_key[1:] != seg_key[:-1]
    seg_starts = np.flatnonzero(seg_first)
    seg_index = np.cumsum(seg_first) - 1
    seg_ends = np.append(seg_starts[1:], n)
    count = seg_ends - seg_starts
    n_flows = len(first)
    slot = seg_key[seg_starts]  # flow * 2 + side

    def per_side(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = np.zeros(n_flows * 2, dtype=values.dtype)
        out[slot] = values
        return out[0::2], out[1::2]

    dt, span, var_num = _intervals(ts_s, seg_first, seg_starts, seg_ends, seg_index)
    retrans, gap, syn_retry = _tcp_sequence(
        flags_s, seq_s, pay_len, tcp_s, seg_first, seg_starts, seg_index
    )
    counters = {
        "packets": per_side(count),
        "bytes": per_side(np.add.reduceat(size, seg_starts)),
        "max": per_side(np.maximum.reduceat(size, seg_starts)),
        "min": per_side(np.minimum.reduceat(size, seg_starts)),
        "span": per_side(span),
        "var": per_side(var_num),
        "gap": per_side(np.add.reduceat(gap, seg_starts)),
        "rtx": per_side(np.add.reduceat(retrans.astype(np.int64), seg_starts)),
        "act": per_side(np.add.reduceat(np.where(syn_retry, dt, 0), seg_starts)),
        "nact": per_side(np.add.reduceat(syn_retry.astype(np.int64), seg_starts)),
    }
    last = np.append(first[1:], n) - 1
    start_ns, last_ns = ts[first], ts[last]
    pay_off = cols.pay_off[perm][order]
    payloads = _first_payloads(cols.data, n_flows, seg_key, seg_starts, seg_index, pay_off, pay_len)
    by_start = np.argsort(start_ns, kind="stable")
    address = cols.address
    return FlowRecords(
        src=[address(a) for a in f_src[by_start].tolist()],
        dst=[address(a) for a in f_dst[by_start].tolist()],
        sport=f_sport[by_start].astype(np.int64),
        dport=f_dport[by_start].astype(np.int64),
        proto=cols.proto[perm][first][by_start].astype(np.int64),
        start_ns=start_ns[by_start],
        counters={name: (side[0][by_start], side[1][by_start]) for name, side in counters.items()},
        dur_ns=(last_ns - start_ns)[by_start],
        payloads=[payloads[i] for i in by_start.tolist()],
    )
