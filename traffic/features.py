"""Argus-like flow features: the data set's 34 ``FEATURE_COLUMNS`` from assembled flows.

Pure core (no I/O).  Argus 3 prints no formulas, so the definitions were worked out
from WUSTL-EHMS-2020 itself and checked on all 16,318 rows (``n_s``/``n_d`` are the
source/destination packet counts that ``iomt.traffic.plan`` recovers from the bytes):

* ``SrcBytes``/``DstBytes``: sums of frame lengths on the wire (Ethernet header to the
  end of the padding, no FCS); ``TotBytes`` their sum, ``TotPkts`` = ``n_s + n_d``.
* ``sMaxPktSz``/``sMinPktSz``/``dMaxPktSz``/``dMinPktSz``: frame-length extremes per side.
* ``Dur``: first to last packet of the flow, seconds.
* ``SIntPkt``/``DIntPkt``: mean inter-packet time of the side, ms (span / (n - 1)).
  ``SIntPkt * (n_s - 1) == Dur`` holds on 99.7 % of rows.
* ``SrcJitter``/``DstJitter``: population standard deviation of the same intervals, ms
  (with two intervals ``DstJitter / DIntPkt`` never exceeds 1, the population bound,
  on all but 2 inconsistent rows; a sample deviation could reach 1.414).
* ``SrcLoad`` = ``8 * SrcBytes * (n_s - 1) / n_s / Dur`` bit/s (mean packet size over
  mean interval, with ``Dur`` as the time base for both sides; within 0.3 % on every
  row), ``DstLoad`` likewise, ``Load = SrcLoad + DstLoad`` (within 0.04 %).
* ``Rate`` = ``(TotPkts - 1) / Dur`` packets/s (within 0.03 % on every row).
* ``Loss``: retransmitted segments of both sides; ``pSrcLoss = 100 * l_s / (n_s + l_s)``,
  ``pDstLoss`` likewise, ``pLoss = 100 * Loss / (TotPkts + Loss)`` (exact on every row).
* ``SIntPktAct``/``DIntPktAct``: Argus's "active" interval means; in this data non-zero
  only on the 7 flows whose opening SYN was retransmitted, where they equal the SYN
  retransmission timeout (~3 s): computed as the mean interval ending at a
  retransmitted pure SYN of that side.
* ``SrcGap``/``DstGap``: sequence-number bytes never seen (0 on every row).
* ``Trans``: 1, one transaction per record (1 on every row).

A zero ``Dur`` gives zero loads and rate.  The eight readings come from the first MQTT
PUBLISH of the sensor (source) whose message is a readings object; a flow without one
gets zeros, as the data set writes missing readings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from iomt.traffic.dataset import FEATURE_COLUMNS, READING_COLUMNS
from iomt.traffic.flow import Flow, Side
from iomt.traffic.readings import decode_many, readings_message

NETWORK_COLUMNS: tuple[str, ...] = tuple(c for c in FEATURE_COLUMNS if c not in READING_COLUMNS)
"""The 26 flow statistics among ``FEATURE_COLUMNS``."""

COUNTERS = ("packets", "bytes", "max", "min", "span", "var", "gap", "rtx", "act", "nact")
"""Per-side counters: packets, bytes, largest/smallest frame, first-to-last time (ns),
``k**2`` times the population variance of the ``k`` inter-packet times (ns**2), gap
bytes, retransmissions, and the sum and count of intervals ending at a SYN retry."""


@dataclass
class FlowRecords:
    """Flows as columns: identity, per-side counters (forward, reverse), sensor payloads."""

    src: list[bytes]
    dst: list[bytes]
    sport: np.ndarray
    dport: np.ndarray
    proto: np.ndarray
    start_ns: np.ndarray
    counters: dict[str, tuple[np.ndarray, np.ndarray]]
    dur_ns: np.ndarray
    payloads: list[list[bytes]]  # the forward side's first payloads

    def __len__(self) -> int:
        return len(self.src)

    @classmethod
    def empty(cls) -> FlowRecords:
        """No flows."""
        z = np.zeros(0, dtype=np.int64)
        return cls([], [], z, z, z, z, {c: (z, z) for c in COUNTERS}, z, [])

    @classmethod
    def from_flows(cls, flows: Sequence[Flow]) -> FlowRecords:
        """Columns of the streaming assembler's flows (order kept)."""
        if not flows:
            return cls.empty()

        def side(s: Side) -> tuple[int, ...]:
            k = s.packets - 1
            span = s.last_ns - s.first_ns
            return (
                s.packets, s.bytes, s.max_size, s.min_size, span,
                (k * s.sum_sq_ns - span * span) if k > 0 else 0,
                s.gap_bytes, s.retransmits, sum(s.syn_retry_ns), len(s.syn_retry_ns),
            )  # fmt: skip

        fwd = np.array([side(f.fwd) for f in flows], dtype=np.float64)
        rev = np.array([side(f.rev) for f in flows], dtype=np.float64)
        return cls(
            src=[f.src for f in flows],
            dst=[f.dst for f in flows],
            sport=np.array([f.sport for f in flows], dtype=np.int64),
            dport=np.array([f.dport for f in flows], dtype=np.int64),
            proto=np.array([f.proto for f in flows], dtype=np.int64),
            start_ns=np.array([f.start_ns for f in flows], dtype=np.int64),
            counters={c: (fwd[:, j], rev[:, j]) for j, c in enumerate(COUNTERS)},
            dur_ns=np.array([f.last_ns - f.start_ns for f in flows], dtype=np.int64),
            payloads=[f.fwd.payloads for f in flows],
        )


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a / b`` with 0 where ``b`` is 0."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out = np.zeros(np.broadcast(a, b).shape)
    np.divide(a, b, out=out, where=b != 0)
    return out


def network_matrix(flows: FlowRecords) -> np.ndarray:
    """``(n, 26)`` float64: the flow statistics of ``NETWORK_COLUMNS`` (see the docstring)."""
    c = {name: (np.asarray(f, dtype=np.float64), np.asarray(r, dtype=np.float64))
         for name, (f, r) in flows.counters.items()}  # fmt: skip
    n_s, n_d = c["packets"]
    b_s, b_d = c["bytes"]
    rtx_s, rtx_d = c["rtx"]
    dur = np.asarray(flows.dur_ns, dtype=np.float64) / 1e9
    k_s, k_d = np.maximum(n_s - 1, 0), np.maximum(n_d - 1, 0)
    src_load = _div(8.0 * b_s * k_s, n_s * dur)
    dst_load = _div(8.0 * b_d * k_d, n_d * dur)
    packets = n_s + n_d
    loss = rtx_s + rtx_d
    cols = {
        "SrcBytes": b_s,
        "DstBytes": b_d,
        "SrcLoad": src_load,
        "DstLoad": dst_load,
        "SrcGap": c["gap"][0],
        "DstGap": c["gap"][1],
        "SIntPkt": _div(c["span"][0], k_s) / 1e6,
        "DIntPkt": _div(c["span"][1], k_d) / 1e6,
        "SIntPktAct": _div(c["act"][0], c["nact"][0]) / 1e6,
        "DIntPktAct": _div(c["act"][1], c["nact"][1]) / 1e6,
        "SrcJitter": _div(np.sqrt(np.maximum(c["var"][0], 0.0)), k_s) / 1e6,
        "DstJitter": _div(np.sqrt(np.maximum(c["var"][1], 0.0)), k_d) / 1e6,
        "sMaxPktSz": c["max"][0],
        "dMaxPktSz": c["max"][1],
        "sMinPktSz": c["min"][0],
        "dMinPktSz": c["min"][1],
        "Dur": dur,
        "Trans": np.ones_like(dur),
        "TotPkts": packets,
        "TotBytes": b_s + b_d,
        "Load": src_load + dst_load,
        "Loss": loss,
        "pLoss": _div(100.0 * loss, packets + loss),
        "pSrcLoss": _div(100.0 * rtx_s, n_s + rtx_s),
        "pDstLoss": _div(100.0 * rtx_d, n_d + rtx_d),
        "Rate": _div(packets - 1, dur),
    }
    return np.stack([cols[name] for name in NETWORK_COLUMNS], axis=1).reshape(
        len(flows), len(NETWORK_COLUMNS)
    )


def readings_matrix(flows: FlowRecords) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 8)`` readings the sensors sent (zeros where none) and a found mask."""
    messages = [readings_message(p) for p in flows.payloads]
    values, found = decode_many(messages)
    return (
        np.asarray(values, dtype=np.float64).reshape(len(flows), len(READING_COLUMNS)),
        np.asarray(found, dtype=bool).reshape(len(flows)),
    )


def feature_matrix(flows: FlowRecords | Sequence[Flow]) -> np.ndarray:
    """``(n, 34)`` float64 of all ``FEATURE_COLUMNS``, in that order."""
    if not isinstance(flows, FlowRecords):
        flows = FlowRecords.from_flows(flows)
    net = network_matrix(flows)
    readings, _ = readings_matrix(flows)
    by_name = {name: net[:, j] for j, name in enumerate(NETWORK_COLUMNS)}
    by_name.update({name: readings[:, j] for j, name in enumerate(READING_COLUMNS)})
    return np.stack([by_name[name] for name in FEATURE_COLUMNS], axis=1).reshape(
        len(flows), len(FEATURE_COLUMNS)
    )


def flow_features(flow: Flow) -> dict[str, float]:
    """The 34 features of one flow by column name."""
    row = feature_matrix([flow])[0]
    return {name: float(v) for name, v in zip(FEATURE_COLUMNS, row, strict=True)}
