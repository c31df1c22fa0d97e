"""Packet trains for WUSTL-EHMS-2020 records: one TCP/MQTT flow per row, as bytes.

Each record becomes the flow an IoMT sensor gateway would have produced: the sensor
(source) opens a TCP connection to the gateway's port 1111, publishes the record's
eight readings over MQTT and closes.  ``iomt.traffic.plan`` decides how many packets each
side sends, their sizes and roles (matching ``SrcBytes``, ``DstBytes``, ``TotPkts``,
the four size extremes and the retransmissions behind ``Loss``); ``iomt.traffic.timing``
decides when (matching ``Dur``, ``SIntPkt``/``DIntPkt``, the jitters and the SYN
retransmission timeout behind ``SIntPktAct``); ``iomt.traffic.frame`` turns that into
bytes.  ``Load``, ``Rate`` and the loss percentages then follow from their definitions
(see ``iomt.traffic.features``).

Identifiers that give the label away are not copied by default: every flow uses the
same two MAC addresses (the attack rows all carry one sensor MAC in the data), the
data set's two IP addresses (already constant) and a source port drawn from a random
permutation of the ephemeral range (the data's ports follow capture order, hence the
attack schedule).  ``keep_identifiers=True`` copies MACs, addresses and ports.

Flows start one after another with exponential gaps (mean ``mean_gap_s``) from
``start_s``; they may overlap, and the capture is sorted by time.  Randomness comes
only from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from pydantic import Field

from iomt.errors import DataError
from iomt.strict import Strict
from iomt.traffic.dataset import CATEGORY_COLUMN, LABEL_COLUMN, READING_COLUMNS, RawTable
from iomt.traffic.frame import ACK, FIN, PSH, SYN, FrameFactory, SegmentBits, mac_bytes, word_sum
from iomt.traffic.plan import (
    CONNACK_LEN,
    HEADER_FRAME,
    Kind,
    Segment,
    loss_count,
    packet_counts,
    side_plan,
    side_sizes,
)
from iomt.traffic.readings import (
    FILLER_TOPIC,
    TOPIC,
    min_publish_size,
    publish_exact,
    publish_header,
    publish_overhead,
    readings_messages,
)
from iomt.traffic.timing import Rule, arrange
from iomt.traffic.truth import TruthEntry

SERVICE_PORTS = {"dircproxy": 57000, "tfido": 60177, "fido": 60179}
"""Port numbers of the 3 service names Argus printed in ``Sport`` (IANA registry)."""

EPHEMERAL_LOW = 49152
SENSOR_WINDOW, GATEWAY_WINDOW = 502, 509  # scaled by 2**7 (the SYN's window scale)
SYN_WINDOW = 64240
CONNACK_FRAME = HEADER_FRAME + CONNACK_LEN


class SynthesisConfig(Strict):
    """How records become packets."""

    keep_identifiers: bool = False
    sensor_ip: str = "10.0.1.172"
    gateway_ip: str = "10.0.1.150"
    sensor_mac: str = "02:00:0a:00:01:ac"
    gateway_mac: str = "02:00:0a:00:01:96"
    gateway_port: int = Field(1111, ge=1, le=65535)
    start_s: float = Field(1_577_836_800.0, ge=0, description="first flow (2020-01-01 UTC)")
    mean_gap_s: float = Field(0.1, gt=0, description="mean time between flow starts")
    seed: int = 0


@dataclass
class Capture:
    """Frames sorted by time (``times`` in ns since the epoch) and one truth entry per flow."""

    times: np.ndarray
    frames: list[bytes]
    truth: list[TruthEntry]
    unread: int = 0  # flows whose data segment was too small to carry the readings

    def __len__(self) -> int:
        return len(self.frames)


Shape = tuple[
    tuple[Segment, ...], tuple[Segment, ...], tuple[Rule, ...],
    tuple[tuple[SegmentBits, ...], tuple[SegmentBits, ...]],
]  # fmt: skip


@lru_cache(maxsize=4096)
def _flow_shape(
    src_bytes: int, dst_bytes: int, tot: int, s_max: int, s_min: int, d_max: int, d_min: int,
    p_src_loss: float, p_dst_loss: float,
) -> Shape:  # fmt: skip
    """Segments of both sides, causal rules and static header bits (cached: 32 shapes)."""
    n_s, n_d = packet_counts(src_bytes, dst_bytes, tot, s_max, s_min, d_max, d_min)
    src, _ = side_plan(tuple(side_sizes(src_bytes, n_s, s_max, s_min)),
                       loss_count(p_src_loss, n_s), client=True)  # fmt: skip
    dst, _ = side_plan(tuple(side_sizes(dst_bytes, n_d, d_max, d_min)),
                       loss_count(p_dst_loss, n_d), client=False)  # fmt: skip
    return src, dst, _rules(src, dst), (_bits(src, 0), _bits(dst, 1))


def _bits(segments: tuple[Segment, ...], side: int) -> tuple[SegmentBits, ...]:
    out = []
    for seg in segments:
        if seg.kind == Kind.SYN:
            flags = SYN if side == 0 else SYN | ACK
            opt = 12 if seg.size >= HEADER_FRAME + 12 else 4
            out.append((flags, opt, SYN_WINDOW, 1, seg.retransmits, seg.size))
            continue
        fin = seg.kind == Kind.FIN or seg.fin
        flags = ACK | (FIN if fin else 0)
        if seg.kind == Kind.DATA or (seg.kind == Kind.CONNACK and seg.size >= CONNACK_FRAME):
            flags |= PSH
        window = SENSOR_WINDOW if side == 0 else GATEWAY_WINDOW
        out.append((flags, 0, window, int(fin), seg.retransmits, seg.size))
    return tuple(out)


def _rules(src: tuple[Segment, ...], dst: tuple[Segment, ...]) -> tuple[Rule, ...]:
    """Causal order of the exchange, as soft rules for ``timing.arrange``."""
    if not src or not dst:
        return ()
    rules = [Rule(0, 0, True, 4)]  # SYN-ACK after SYN
    after_syn = next((i for i, s in enumerate(src) if s.kind != Kind.SYN), None)
    if after_syn is not None:
        rules.append(Rule(after_syn, 0, False, 2))  # the sensor goes on after SYN-ACK
    data = [i for i, s in enumerate(src) if s.kind == Kind.DATA]
    reply = next((j for j, s in enumerate(dst) if s.kind != Kind.SYN), None)
    if data and reply is not None:
        rules.append(Rule(data[0], reply, True, 2))  # CONNACK after CONNECT
    fin = next((j for j, s in enumerate(dst) if s.kind == Kind.FIN), None)
    if data and fin is not None:
        rules.append(Rule(data[-1], fin, True, 1))  # the gateway closes after DISCONNECT
    return tuple(rules)


def _flow_packets(
    i: int, ints: dict[str, list[int]], floats: dict[str, list[float]]
) -> tuple[list, list, object, list[float], list[float]]:
    """Row ``i``'s packet plan on each side and the packets' times (ms) that reproduce its
    ``Dur``, mean intervals and jitters (``iomt.traffic.timing.arrange``)."""
    src_plan, dst_plan, rules, statics = _flow_shape(
        ints["SrcBytes"][i], ints["DstBytes"][i], ints["TotPkts"][i],
        ints["sMaxPktSz"][i], ints["sMinPktSz"][i], ints["dMaxPktSz"][i],
        ints["dMinPktSz"][i], floats["pSrcLoss"][i], floats["pDstLoss"][i],
    )  # fmt: skip
    act = floats["SIntPktAct"][i]
    fixed = {
        k - 1: act
        for k, s in enumerate(src_plan)
        if k >= 1 and s.kind == Kind.SYN and s.retransmits >= 0 and act > 0
    }
    src_t, dst_t = arrange(
        len(src_plan), len(dst_plan), floats["Dur"][i] * 1e3,
        floats["SIntPkt"][i], floats["SrcJitter"][i],
        floats["DIntPkt"][i], floats["DstJitter"][i], rules, fixed,
    )  # fmt: skip
    return src_plan, dst_plan, statics, src_t, dst_t


def _sport(text: str) -> int | None:
    text = text.strip()
    if text.isdigit():
        return int(text)
    return SERVICE_PORTS.get(text)


class Synthesizer:
    """Turns rows of a ``RawTable`` into a ``Capture`` (see the module docstring)."""

    def __init__(self, config: SynthesisConfig | None = None) -> None:
        self.config = config or SynthesisConfig()
        self.factory = FrameFactory()
        c = self.config
        self._sensor_ip = ipaddress.IPv4Address(c.sensor_ip).packed
        self._gateway_ip = ipaddress.IPv4Address(c.gateway_ip).packed
        self._sensor_mac = mac_bytes(c.sensor_mac)
        self._gateway_mac = mac_bytes(c.gateway_mac)
        f = self.factory
        self._connect = f.connect
        self._disconnect = f.disconnect
        self._connack = f.connack
        self._connack_sum = word_sum(f.connack)

    def build(
        self,
        raw: RawTable,
        rows: Sequence[int] | np.ndarray | None = None,
        stream: int | None = None,
    ) -> Capture:
        """The capture of ``rows`` (default: all), flows in the order given.

        ``stream`` picks an independent random stream of the configured seed (one per
        HMU, say), so captures built from one seed do not share ports or sequence numbers.
        """
        n_all = len(raw)
        rows = np.arange(n_all) if rows is None else np.asarray(rows, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= n_all):
            raise DataError(f"row index out of range 0..{n_all - 1}")
        col = {name: raw.column(name)[rows] for name in raw.columns}
        c = self.config
        rng = np.random.default_rng(c.seed if stream is None else [c.seed, stream])
        n = len(rows)
        gaps = rng.exponential(c.mean_gap_s * 1e9, size=n).astype(np.int64)
        starts = (int(round(c.start_s * 1e9)) + np.cumsum(gaps)).tolist()
        ports = rng.permutation(65536 - EPHEMERAL_LOW) + EPHEMERAL_LOW
        isn = rng.integers(0, 2**32, size=(n, 2), dtype=np.uint64).tolist()
        ip_ids = rng.integers(0, 2**16, size=(n, 2)).tolist()
        ints = {k: np.rint(col[k]).astype(np.int64).tolist() for k in (
            "SrcBytes", "DstBytes", "TotPkts", "sMaxPktSz", "sMinPktSz", "dMaxPktSz",
            "dMinPktSz", "Dport")}  # fmt: skip
        floats = {k: col[k].astype(float).tolist() for k in (
            "Dur", "SIntPkt", "DIntPkt", "SrcJitter", "DstJitter", "SIntPktAct", "pSrcLoss",
            "pDstLoss")}  # fmt: skip
        messages = readings_messages([col[k] for k in READING_COLUMNS])
        labels = np.rint(col[LABEL_COLUMN]).astype(np.int64).tolist()
        categories = col[CATEGORY_COLUMN].astype(str).tolist()
        endpoints = self._endpoints(col, rows, ports, ints["Dport"])
        times: list[int] = []
        frames: list[bytes] = []
        truth: list[TruthEntry] = []
        unread = 0
        last_end: dict[tuple[bytes, bytes, int, int], int] = {}
        emit = self.factory.emit_flow
        clock_shift = 0
        for i in range(n):
            smac, dmac, sip, dip, sport, dport = endpoints[i]
            src_plan, dst_plan, statics, src_t, dst_t = _flow_packets(i, ints, floats)
            first = min(src_t[0] if src_t else 0.0, dst_t[0] if dst_t else 0.0)
            start = starts[i] + clock_shift
            key = (sip, dip, sport, dport)
            if key in last_end and start <= last_end[key]:
                # the same 5-tuple again (kept identifiers): wait until the last one is over
                clock_shift += last_end[key] + 1_000_000_000 - start
                start = starts[i] + clock_shift
            src_ns = [start + int(round((t - first) * 1e6)) for t in src_t]
            dst_ns = [start + int(round((t - first) * 1e6)) for t in dst_t]
            payloads, ok = self._payloads(src_plan, dst_plan, messages[i])
            unread += not ok
            order = sorted(
                [(t, 0, k) for k, t in enumerate(src_ns)]
                + [(t, 1, k) for k, t in enumerate(dst_ns)]
            )
            emit(order, statics, payloads, (smac, dmac), (sip, dip), (sport, dport),
                 isn[i], ip_ids[i], times, frames)  # fmt: skip
            last_end[key] = order[-1][0]
            truth.append(
                TruthEntry(
                    _text(sip), _text(dip), sport, dport,
                    6, order[0][0], labels[i], categories[i], int(rows[i]),
                )
            )  # fmt: skip
        t_arr = np.asarray(times, dtype=np.int64)
        by_time = np.argsort(t_arr, kind="stable")
        return Capture(t_arr[by_time], [frames[j] for j in by_time.tolist()], truth, unread)

    def _endpoints(
        self,
        col: dict[str, np.ndarray],
        rows: np.ndarray,
        ports: np.ndarray,
        dports: list[int],
    ) -> list[tuple[bytes, bytes, bytes, bytes, int, int]]:
        """Per flow (MACs, IPv4 addresses, ports): the record's own with ``keep_identifiers``,
        else the sensor gateway's and the server's, with a fresh source port."""
        n = len(rows)
        fresh = [int(ports[i % len(ports)]) for i in range(n)]
        if not self.config.keep_identifiers:
            own = (self._sensor_mac, self._gateway_mac, self._sensor_ip, self._gateway_ip)
            return [(*own, fresh[i], self.config.gateway_port) for i in range(n)]
        out = []
        for i, (smac, dmac, sip, dip, sport) in enumerate(
            zip(
                col["SrcMac"].tolist(), col["DstMac"].tolist(), col["SrcAddr"].tolist(),
                col["DstAddr"].tolist(), col["Sport"].tolist(), strict=True,
            )
        ):  # fmt: skip
            src, dst = ipaddress.ip_address(sip).packed, ipaddress.ip_address(dip).packed
            if len(src) != 4 or len(dst) != 4:
                raise DataError(f"row {int(rows[i])}: only IPv4 endpoints are supported")
            port = _sport(sport)
            out.append((mac_bytes(smac), mac_bytes(dmac), src, dst,
                        port if port is not None else fresh[i], dports[i]))  # fmt: skip
        return out

    def _payloads(
        self, src: tuple[Segment, ...], dst: tuple[Segment, ...], message: bytes
    ) -> tuple[tuple[list[tuple[bytes, int]], list[tuple[bytes, int]]], bool]:
        """Payload bytes and word sums per segment of each side; whether readings fit."""
        data = [k for k, s in enumerate(src) if s.kind == Kind.DATA and s.retransmits < 0]
        src_out: list[tuple[bytes, int]] = []
        carried = False
        for k, seg in enumerate(src):
            if seg.retransmits >= 0:
                src_out.append(src_out[seg.retransmits])
                continue
            if seg.kind != Kind.DATA:
                src_out.append((b"", 0))
                continue
            room = seg.size - HEADER_FRAME
            head = self._connect if k == data[0] else b""
            tail = self._disconnect if k == data[-1] else b""
            body = self._publish(message, room - len(head) - len(tail))
            if body is None and head:
                head = b""
                body = self._publish(message, room - len(tail))
            if body is None:
                body = _filler(room - len(tail))
            else:
                carried = True
            payload = head + body + tail
            src_out.append((payload, word_sum(payload)))
        dst_out: list[tuple[bytes, int]] = []
        for seg in dst:
            if seg.retransmits >= 0:
                dst_out.append(dst_out[seg.retransmits])
            elif seg.kind == Kind.CONNACK and seg.size >= CONNACK_FRAME:
                dst_out.append((self._connack, self._connack_sum))
            elif seg.kind == Kind.DATA:
                body = _filler(seg.size - HEADER_FRAME)
                dst_out.append((body, word_sum(body)))
            else:
                dst_out.append((b"", 0))
        return (src_out, dst_out), carried

    @staticmethod
    def _publish(message: bytes, total: int) -> bytes | None:
        head = _publish_head(total)
        if head is None or head[1] < len(message):
            return None
        return head[0] + message + b" " * (head[1] - len(message))


@lru_cache(maxsize=256)
def _text(address: bytes) -> str:
    return str(ipaddress.ip_address(address))


@lru_cache(maxsize=1024)
def _publish_head(total: int) -> tuple[bytes, int] | None:
    """Header of a readings PUBLISH exactly ``total`` bytes long, and its message room."""
    try:
        room = total - publish_overhead(TOPIC, total)
    except ValueError:
        return None
    return publish_header(TOPIC, room), room


@lru_cache(maxsize=1024)
def _filler(total: int) -> bytes:
    """MQTT bytes of exactly ``total`` length that carry no readings."""
    if total <= 0:
        return b""
    if total >= min_publish_size(FILLER_TOPIC):
        try:
            return publish_exact(FILLER_TOPIC, b"", total)
        except ValueError:
            pass
    return b"\xc0\x00" * (total // 2) + b"\x00" * (total % 2)  # PINGREQs


def synthesize(
    raw: RawTable,
    rows: Sequence[int] | np.ndarray | None = None,
    config: SynthesisConfig | None = None,
) -> Capture:
    """Shorthand for ``Synthesizer(config).build(raw, rows)``."""
    return Synthesizer(config).build(raw, rows)
