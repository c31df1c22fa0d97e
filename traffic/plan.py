"""The packets of one flow record: how many each side sends, their sizes and TCP roles.

Pure core (no I/O).  An Argus record gives totals, not packets, so the train is
reconstructed from what the record pins down (checked on all 16,318 WUSTL-EHMS-2020
rows):

* ``TotPkts`` = source packets + destination packets, ``SrcBytes``/``DstBytes`` are
  sums of frame lengths (Ethernet header to the end of the padding, no FCS) and
  ``sMaxPktSz``/``sMinPktSz``/``dMaxPktSz``/``dMinPktSz`` their extremes.  Only one
  split of ``TotPkts`` into the two sides is consistent with bytes and extremes on every
  row (``packet_counts``), and then each side is ``largest + smallest + fillers``
  (``side_sizes``).  In the data the sizes are 60 (an empty segment padded to the
  Ethernet minimum), 66 (SYN or SYN-ACK with 12 bytes of TCP options) and 310/311
  (the sensor's data segment), e.g. 7 packets = 66+60+310+60 from the sensor and
  66+60+60 from the gateway.
* ``Loss`` counts retransmitted segments: ``pSrcLoss = 100 * l_s / (n_s + l_s)`` where
  ``n_s`` already includes the ``l_s`` retransmissions (likewise ``pDstLoss``;
  ``pLoss = 100 * Loss / (TotPkts + Loss)``).  Each lost segment is rebuilt as a
  retransmission of an equal-sized segment: a SYN, a SYN-ACK, a data segment or a FIN,
  whichever the sizes allow (``side_plan``).

The roles follow an MQTT session over TCP: the sensor (source) opens with SYN, sends
its readings (CONNECT + PUBLISH + DISCONNECT in one segment) and closes with FIN; the
gateway answers SYN-ACK, CONNACK and FIN.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache

HEADER_FRAME = 54
"""Ethernet (14) + IPv4 (20) + TCP (20) bytes of an empty segment without options."""
MIN_FRAME = 60
"""Ethernet minimum frame without FCS: shorter frames are padded up to it."""
HANDSHAKE_FRAME = 66
"""A SYN or SYN-ACK with 12 bytes of options (MSS, window scale, SACK permitted)."""
CONNACK_LEN = 4
"""Bytes of an MQTT CONNACK, which the gateway sends in a minimum-size frame."""


class Kind(IntEnum):
    """What a segment does in the TCP/MQTT exchange."""

    SYN = 0  # SYN from the sensor, SYN-ACK from the gateway
    ACK = 1  # empty acknowledgement
    DATA = 2  # MQTT packets (readings from the sensor, notices from the gateway)
    CONNACK = 3  # MQTT CONNACK from the gateway
    FIN = 4  # empty FIN


@dataclass(frozen=True, slots=True)
class Segment:
    """One packet of one side: frame size, role, and what it retransmits (-1: new)."""

    size: int
    kind: Kind
    retransmits: int = -1
    fin: bool = False  # FIN flag on a data segment (no empty segment left to carry it)


def _feasible(total: int, n: int, largest: int, smallest: int) -> bool:
    if n < 1:
        return total == 0
    if n == 1:
        return total == largest == smallest
    if smallest > largest:
        return False
    low = largest + smallest + (n - 2) * smallest
    high = largest + smallest + (n - 2) * largest
    return low <= total <= high


def loss_count(percent: float, packets: int) -> int:
    """Retransmissions ``l`` with ``100 * l / (packets + l) == percent`` (rounded)."""
    if percent <= 0 or percent >= 100:
        return 0
    return int(round(percent * packets / (100.0 - percent)))


def packet_counts(
    src_bytes: int,
    dst_bytes: int,
    tot_pkts: int,
    s_max: int,
    s_min: int,
    d_max: int,
    d_min: int,
) -> tuple[int, int]:
    """Source and destination packet counts consistent with bytes and size extremes.

    When several splits fit, the one with the most source packets wins (the sensor
    talks, the gateway acknowledges); when none does, the split whose byte totals are
    nearest to feasible is used and the record cannot be rebuilt exactly.
    """
    fits = [
        n
        for n in range(tot_pkts, -1, -1)
        if _feasible(src_bytes, n, s_max, s_min)
        and _feasible(dst_bytes, tot_pkts - n, d_max, d_min)
    ]
    if fits:
        return fits[0], tot_pkts - fits[0]
    n_src = max(1, min(tot_pkts - 1, round(tot_pkts * src_bytes / max(1, src_bytes + dst_bytes))))
    return n_src, tot_pkts - n_src


def side_sizes(total: int, n: int, largest: int, smallest: int) -> list[int]:
    """``n`` frame sizes with sum ``total``, maximum ``largest`` and minimum ``smallest``.

    Fillers take ``smallest`` or ``largest`` with at most one size in between, which is
    how the data set's trains look (e.g. 496 = 310 + 60 + 60 + 66).  Infeasible inputs
    are clamped to the nearest train that exists.
    """
    if n <= 0:
        return []
    if n == 1:
        return [max(largest, smallest, total)]
    largest = max(largest, smallest)
    extra = total - largest - smallest - (n - 2) * smallest
    span = largest - smallest
    sizes = [largest, smallest]
    rest = [smallest] * (n - 2)
    if span > 0 and extra > 0:
        full, part = divmod(min(extra, span * (n - 2)), span)
        for i in range(full):
            rest[i] = largest
        if part and full < n - 2:
            rest[full] = smallest + part
    return sizes + rest


def side_plan(sizes: tuple[int, ...], loss: int, client: bool) -> tuple[tuple[Segment, ...], int]:
    """Order ``sizes`` into a TCP/MQTT exchange with ``loss`` retransmissions.

    Returns the segments in send order and how many retransmissions were placed
    (fewer than ``loss`` when no two segments have the size a retransmission needs).
    """
    return _side_plan(tuple(sorted(sizes)), loss, client)


@lru_cache(maxsize=4096)
def _side_plan(sizes: tuple[int, ...], loss: int, client: bool) -> tuple[tuple[Segment, ...], int]:
    if not sizes:
        return (), 0
    pool = list(sizes)
    out: list[Segment] = []
    placed = 0
    syn = HANDSHAKE_FRAME if HANDSHAKE_FRAME in pool else pool[0]
    if syn <= HANDSHAKE_FRAME:  # else every packet carries data: the capture began mid-flow
        pool.remove(syn)
        out.append(Segment(syn, Kind.SYN))
        while placed < loss and syn in pool:
            pool.remove(syn)
            out.append(Segment(syn, Kind.SYN, retransmits=0))
            placed += 1
    empties = [s for s in pool if s <= MIN_FRAME]
    data = sorted((s for s in pool if s > MIN_FRAME), reverse=True)
    # Data retransmissions: pair equal sizes, the copy right after its original.
    data_plan: list[tuple[int, bool]] = []
    remaining = list(data)
    while remaining:
        size = remaining.pop(0)
        data_plan.append((size, False))
        if placed < loss and size in remaining:
            remaining.remove(size)
            data_plan.append((size, True))
            placed += 1
    fin_copies = 0
    fin_size = None
    if empties:
        fin_size = empties.pop()  # the largest empty one closes the flow
        while placed < loss and empties:
            if fin_size in empties:
                empties.remove(fin_size)
                fin_copies += 1
                placed += 1
            else:
                break
    if empties:  # the handshake's ACK from the sensor, CONNACK from the gateway
        out.append(Segment(empties.pop(0), Kind.ACK if client else Kind.CONNACK))
    for i, (size, again) in enumerate(data_plan):
        last = i == len(data_plan) - 1 and fin_size is None and not empties
        original = len(out) - 1 if again else -1
        out.append(Segment(size, Kind.DATA, retransmits=original, fin=last))
    for size in empties:
        out.append(Segment(size, Kind.ACK))
    if fin_size is not None:
        fin_at = len(out)
        out.append(Segment(fin_size, Kind.FIN))
        out.extend(Segment(fin_size, Kind.FIN, retransmits=fin_at) for _ in range(fin_copies))
    return tuple(out), placed
