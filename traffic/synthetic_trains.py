"""The synthetic network: each flow's packet train and the Argus statistics it yields.

Part of the synthetic traffic model (``iomt.traffic.synthetic`` documents the whole);
the trains, gaps and delays here were matched to WUSTL-EHMS-2020's flow records.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iomt.traffic.features import COUNTERS, NETWORK_COLUMNS, FlowRecords, network_matrix

NORMAL, SPOOFING, ALTERATION = "normal", "Spoofing", "Data Alteration"
GATEWAY_IP, SERVER_IP, SERVER_PORT = "10.0.1.172", "10.0.1.150", 1111


@dataclass(frozen=True)
class _Train:
    """A packet train: who sends each packet (``S`` sensor gateway, ``D`` server), sizes, gaps.

    ``gaps_ms`` are the median gaps before packets 1..k-1; ``tail_at`` the gaps a stall
    may lengthen (repeats weigh more); ``data_at`` the readings segment; ``src_loss``
    the gateway's retransmissions, which Argus counts as ``Loss``.
    """

    senders: str
    sizes: tuple[int, ...]
    gaps_ms: tuple[float, ...]
    tail_at: tuple[int, ...]
    data_at: int = 3
    src_loss: int = 0

    @property
    def src(self) -> np.ndarray:
        return np.array([c == "S" for c in self.senders])


# SYN, SYN-ACK, ACK, CONNECT+PUBLISH, CONNACK, FIN, FIN-ACK: Dur ~12 ms, SIntPkt ~4 ms.
EXCHANGE = _Train("SDSSDDS", (66, 66, 60, 310, 60, 60, 60),
                  (2.6, 1.4, 0.45, 2.9, 0.04, 4.4), tail_at=(0, 3, 3, 5, 5))  # fmt: skip
# The same with a delayed acknowledgement (~0.2 s) and one more ACK each way.
DELAYED_ACK = _Train("SDSSDSDDS", (66, 66, 60, 310, 60, 60, 60, 60, 60),
                     (2.6, 1.4, 0.45, 2.9, 210.0, 0.3, 0.04, 4.4), tail_at=(0, 7))  # fmt: skip
# The data segment is lost; SYN-ACK and data are retransmitted after a ~0.25 s timeout.
RETRANSMIT = _Train("SDSSDSDDS", (66, 66, 60, 310, 66, 310, 60, 60, 60),
                    (2.6, 1.4, 0.45, 260.0, 0.5, 2.9, 0.04, 4.4), tail_at=(0, 7),
                    src_loss=1)  # fmt: skip
# Spoofing relay: the data segment reaches the server twice.
DUPLICATE = _Train("SDSSSDDS", (66, 66, 60, 310, 310, 60, 60, 60),
                   (2.6, 1.4, 0.45, 0.8, 2.9, 0.04, 4.4), tail_at=(0, 0, 4, 6, 6),
                   src_loss=1)  # fmt: skip

GAP_SIGMA = 0.22
"""Log-normal spread of each gap around its median."""
TAIL_SHARE, TAIL_MEDIAN_MS, TAIL_SIGMA = 0.15, 12.0, 1.2
"""Share of flows with one stalled gap, and the log-normal stall added to it."""
RARE_TRAINS = ((DELAYED_ACK, 0.0015), (RETRANSMIT, 0.0008))
RELAY_MS, RELAY_SIGMA = 0.6, 0.5
"""ARP-spoofing relay delay per sensor packet (log-normal)."""
DUPLICATE_SHARE = 0.25
ALTERATION_DELAY_MS = (25.0, 60.0)
ALTERATION_SIGMA = 0.15
ALTERATION_STALL_SHARE, ALTERATION_STALL_MS = 0.06, 400.0
RESIZE_SHARE = 0.1


def packet_statistics(
    category: np.ndarray, delay_ms: np.ndarray, altered: np.ndarray, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The 26 flow statistics of every row, and its Argus flags."""
    n = len(category)
    train_of = np.zeros(n, dtype=np.int64)  # index into trains
    trains = [EXCHANGE, DELAYED_ACK, RETRANSMIT, DUPLICATE]
    normal = category == NORMAL
    u = rng.random(n)
    bound = 0.0
    for i, (_, share) in enumerate(RARE_TRAINS, start=1):
        train_of[normal & (u >= bound) & (u < bound + share)] = i
        bound += share
    spoof = category == SPOOFING
    train_of[spoof & (rng.random(n) < DUPLICATE_SHARE)] = 3
    flags = np.full(n, "e", dtype="<U4")
    flags[train_of == 2] = "e s"
    flags[train_of == 3] = "eR"
    flags[category == ALTERATION] = "M"
    matrix = np.zeros((n, len(NETWORK_COLUMNS)))
    for i, train in enumerate(trains):
        rows = np.flatnonzero(train_of == i)
        if len(rows):
            matrix[rows] = _train_statistics(train, category[rows], delay_ms[rows],
                                             altered[rows], rng)  # fmt: skip
    return {name: _argus_round(name, matrix[:, j]) for j, name in enumerate(NETWORK_COLUMNS)}, flags


def _train_statistics(
    train: _Train, category: np.ndarray, delay_ms: np.ndarray, altered: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:  # fmt: skip
    """Simulate ``len(category)`` flows of one train shape; Argus statistics ``(n, 26)``."""
    src = train.src
    n, k = len(category), len(src)
    gaps = np.array(train.gaps_ms) * np.exp(GAP_SIGMA * rng.standard_normal((n, k - 1)))
    stalled = np.flatnonzero(rng.random(n) < TAIL_SHARE)
    where = rng.choice(np.array(train.tail_at), len(stalled))
    gaps[stalled, where] += TAIL_MEDIAN_MS * np.exp(TAIL_SIGMA * rng.standard_normal(len(stalled)))
    to_sensor_packet = src[1:]  # gaps that end in a packet the attacker relays
    spoof = category == SPOOFING
    relay = RELAY_MS * np.exp(RELAY_SIGMA * rng.standard_normal((n, k - 1)))
    gaps += np.where(spoof[:, None] & to_sensor_packet, relay, 0.0)
    alteration = category == ALTERATION
    hold = delay_ms[:, None] * np.exp(ALTERATION_SIGMA * rng.standard_normal((n, k - 1)))
    gaps += np.where(alteration[:, None] & to_sensor_packet, hold, 0.0)
    # The altering proxy sometimes stalls for a long while (the seconds-long real flows).
    stall = np.flatnonzero(alteration & (rng.random(n) < ALTERATION_STALL_SHARE))
    gaps[stall, rng.integers(0, k - 1, len(stall))] += ALTERATION_STALL_MS * np.exp(
        TAIL_SIGMA * rng.standard_normal(len(stall))
    )
    gaps_ns = np.maximum(np.round(gaps * 1e3), 1.0).astype(np.int64) * 1000  # µs timestamps
    times = np.concatenate([np.zeros((n, 1), np.int64), np.cumsum(gaps_ns, axis=1)], axis=1)
    sizes = np.tile(np.array(train.sizes, dtype=np.int64), (n, 1))
    resized = altered & (rng.random(n) < RESIZE_SHARE)
    sizes[resized, train.data_at] += rng.integers(1, 3, int(resized.sum()))

    counters: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    per_side = [_side(times[:, side], sizes[:, side]) for side in (src, ~src)]
    for name in COUNTERS:
        counters[name] = (per_side[0].get(name, np.zeros(n)), per_side[1].get(name, np.zeros(n)))
    counters["rtx"] = (np.full(n, float(train.src_loss)), np.zeros(n))
    records = FlowRecords(
        src=[b""] * n, dst=[b""] * n,
        sport=np.zeros(n, np.int64), dport=np.full(n, SERVER_PORT, np.int64),
        proto=np.full(n, 6, np.int64), start_ns=np.zeros(n, np.int64),
        counters=counters, dur_ns=times[:, -1] - times[:, 0], payloads=[[] for _ in range(n)],
    )  # fmt: skip
    return network_matrix(records)


def _side(times: np.ndarray, sizes: np.ndarray) -> dict[str, np.ndarray]:
    """One side's counters as ``iomt.traffic.features.COUNTERS`` defines them."""
    intervals = np.diff(times, axis=1).astype(np.float64)
    k = intervals.shape[1]
    return {
        "packets": np.full(len(times), float(times.shape[1])),
        "bytes": sizes.sum(axis=1).astype(np.float64),
        "max": sizes.max(axis=1).astype(np.float64),
        "min": sizes.min(axis=1).astype(np.float64),
        "span": (times[:, -1] - times[:, 0]).astype(np.float64),
        "var": k * k * intervals.var(axis=1) if k else np.zeros(len(times)),
    }


def _argus_round(name: str, values: np.ndarray) -> np.ndarray:
    """Round as Argus prints: loads and rates to 3 decimals below 1000 and to units above."""
    if name in ("SrcLoad", "DstLoad", "Load", "Rate"):
        return np.where(values < 1000.0, np.round(values, 3), np.round(values))
    return np.round(values, 6)
