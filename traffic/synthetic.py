"""Synthetic IoMT traffic in the WUSTL-EHMS-2020 schema: patients, flows and attacks.

**Synthetic, not a substitute for the real data.**  ``generate`` draws flow records
with the 45 columns of WUSTL-EHMS-2020 (Hady et al., IEEE Access 8, 2020,
doi:10.1109/ACCESS.2020.3000421) so the testbed can run, be tested and be shown where
the real CSV is not at hand.  It is a hand-built model whose marginals were matched
to the real file (medians and tails of ``Dur``, intervals and jitters, the packet
trains, the sensor zeros); correlations an IDS exploits in the real data may be
missing here and vice versa, so detection figures measured on it say nothing about
WUSTL-EHMS-2020.  The model, one row per Argus flow record:

* **Capture order.**  Flows start with exponential gaps (mean 0.5 s).  Exactly
  ``round(attack_share * n_rows)`` rows are attacks, in runs of 17-31 flows as in the
  real file, Spoofing or Data Alteration with the real odds (1,124 : 922), between
  normal stretches of random (Dirichlet) lengths.
* **Patients.**  Each flow carries the eight readings of one of ``patients`` patients
  (uniformly).  Every patient has its own baselines and each vital follows an
  Ornstein-Uhlenbeck walk, stepped exactly over the time between that patient's flows
  (``x' = mu + (x - mu) e^(-dt/tau) + sd sqrt(1 - e^(-2 dt/tau)) z``) and rounded as
  the CSV rounds it.  ``Temp`` is a skin-probe temperature of ~25-30 C as in the real
  data, not core temperature; ``Pulse_Rate`` (oximeter) and ``Heart_rate`` (ECG) share
  one cardiac walk; ``SYS``/``DIA`` hold the last cuff reading (every 5 min).  Sensor
  zeros as in the real file: blood pressure before the first cuff reading, SpO2 and
  pulse on a patient's first flows, drop-out stretches (respiration ~5 % of flows,
  ST ~1 %, rarely SpO2/pulse or ECG).  0.2 % of normal flows carry a motion artefact
  (pulse, heart or respiration rate far off): implausible is not always an attack.
* **Flows.**  Every flow is one short TCP/MQTT exchange from the sensor gateway
  10.0.1.172 to the server 10.0.1.150:1111.  The packet train is simulated (sender,
  frame size and log-normal gap of each packet, with a 15 % heavy tail of stalls)
  and the 26 Argus statistics are computed from it by
  ``iomt.traffic.features.network_matrix``, the definitions the capture path uses, worked
  out numerically from the real CSV (``Load = SrcLoad + DstLoad``,
  ``SrcLoad = 8 SrcBytes (n_s - 1) / n_s / Dur``, ``Rate = (TotPkts - 1) / Dur``,
  ``SIntPkt``/``SrcJitter`` the mean/population deviation of a side's intervals in ms,
  ``pLoss = 100 Loss / (TotPkts + Loss)``, ...), then rounded as Argus prints them
  (µs timestamps; loads and rates to 3 decimals below 1000, to units above).  Trains:
  the real 7-packet exchange (gateway 66+60+310+60 bytes, server 66+60+60) on 99.8 %
  of normal flows; a delayed-ACK and a data-retransmission train (9 packets, ~0.25 s)
  on the rest, as in the real file.
* **Spoofing** (ARP spoofing as on the WUSTL testbed): an attacker host with its own
  MAC poisons the gateway's ARP cache and relays its packets, so ``SrcMac`` is the
  attacker's and every relayed gateway packet is held ~0.6 ms (log-normal); on 25 %
  of flows the relay also delivers the data segment twice (8 packets, ``Loss`` 1,
  ``Flgs`` ``eR``).  Readings pass unchanged, so, as in the real data, most Spoofing
  flows look normal once identifiers are set aside.
* **Data Alteration**: the attacker in the path rewrites readings in transit.  Each
  run picks one to three vitals and an offset (e.g. pulse +30 bpm, SpO2 -8 %,
  temperature +3 C; drawn per run, jittered per flow), so values jump off the
  patient's walk; 15 % of a run's flows pass unaltered.  Holding every gateway packet
  adds 25-60 ms each (drawn per run; 6 % of flows stall ~0.4 s more), so ``Dur`` and
  the intervals grow about tenfold as in the real data; 10 % of rewritten segments
  grow to 311 or 312 bytes.

Seeded logistic regression on the 34 non-identifier features (log-scaled) scores
92-95 % accuracy against 87.5 % for the majority class, finding all Data Alteration
and ~25 % of Spoofing; the same recipe on the real file gives 93 %, 99 % and ~0 %.
No single feature separates the classes (best threshold 90-93 % accurate).  Identifiers leak
the label as in the real file (the attacker's MAC, ``Flgs``); ``iomt.traffic.dataset``
sets them aside by default.  MAC addresses are locally administered, not the
testbed's.  Not modelled: the Argus quirks of a few real rows (intervals longer
than ``Dur``, ``SIntPktAct`` of SYN retransmissions, repeated ``Packet_num``, service
names in ``Sport``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iomt.errors import DataError
from iomt.traffic.dataset import (
    ALL_COLUMNS,
    CATEGORY_COLUMN,
    LABEL_COLUMN,
    NUMERIC_COLUMNS,
    READING_COLUMNS,
    RawTable,
)
from iomt.traffic.features import COUNTERS, NETWORK_COLUMNS, FlowRecords, network_matrix

log = logging.getLogger(__name__)

DEFAULT_ATTACK_SHARE = 2046 / 16318
"""Share of attack rows in WUSTL-EHMS-2020 (12.54 %)."""
SPOOFING_ODDS = 1124 / 2046
"""Share of Spoofing among the real attack rows (the rest is Data Alteration)."""

NORMAL, SPOOFING, ALTERATION = "normal", "Spoofing", "Data Alteration"
GATEWAY_IP, SERVER_IP, SERVER_PORT = "10.0.1.172", "10.0.1.150", 1111
GATEWAY_MAC = "02:00:0a:00:01:ac"
SERVER_MAC = "02:00:0a:00:01:96"
ATTACKER_MAC = "02:00:0a:00:01:e7"

MEAN_FLOW_GAP_S = 0.5
RUN_LENGTHS = (17, 31)
"""Attack runs last 17-31 flows, like the 84 attack runs of the real file."""


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

# name: (per-patient baseline range, stationary sd, mean-reversion time s, lower, upper)
_VITALS: dict[str, tuple[tuple[float, float], float, float, float, float]] = {
    "Temp": ((25.0, 29.5), 0.5, 1800.0, 20.0, 35.0),
    "SpO2": ((95.5, 98.8), 0.8, 300.0, 85.0, 100.0),
    "cardiac": ((62.0, 92.0), 5.0, 240.0, 35.0, 180.0),
    "SYS": ((115.0, 148.0), 5.0, 3600.0, 80.0, 200.0),
    "DIA": ((68.0, 88.0), 3.0, 3600.0, 45.0, 120.0),
    "Resp_Rate": ((13.0, 22.0), 2.0, 180.0, 4.0, 45.0),
    "ST": ((0.1, 0.4), 0.06, 900.0, -1.0, 1.5),
}
CUFF_INTERVAL_S = 300.0
# column(s): (share of flows in drop-out, mean drop-out length in flows)
_DROPOUTS: dict[tuple[str, ...], tuple[float, float]] = {
    ("Resp_Rate",): (0.05, 25.0),
    ("ST",): (0.01, 8.0),
    ("Heart_rate",): (0.0005, 2.0),
    ("SpO2", "Pulse_Rate"): (0.0003, 2.0),
}
ARTEFACT_SHARE = 0.002
_ARTEFACTS = {"Pulse_Rate": (130.0, 195.0), "Heart_rate": (100.0, 125.0), "Resp_Rate": (35.0, 73.0)}
# vital: (offset range, allowed signs), for Data Alteration; weights favour cardiac/SpO2.
_ALTERATIONS: dict[str, tuple[tuple[float, float], tuple[int, ...], float]] = {
    "Temp": ((1.5, 4.0), (-1, 1), 1.0),
    "SpO2": ((4.0, 12.0), (-1,), 1.5),
    "Pulse_Rate": ((20.0, 50.0), (-1, 1), 1.5),
    "Heart_rate": ((20.0, 50.0), (-1, 1), 1.5),
    "SYS": ((25.0, 50.0), (-1, 1), 1.0),
    "DIA": ((15.0, 30.0), (-1, 1), 1.0),
    "Resp_Rate": ((8.0, 20.0), (-1, 1), 1.0),
    "ST": ((0.3, 0.8), (-1, 1), 0.5),
}
_ALTERED_BOUNDS = {"SpO2": (0.0, 100.0), "ST": (-1.0, 2.0)}
PASS_THROUGH_SHARE = 0.15
RESIZE_SHARE = 0.1
_DECIMALS = {"Temp": 1, "ST": 2}
_SPORT_STEPS = np.array([1635, 1850, 1755, 1444, 1448, 972, 886, 726], dtype=np.float64)
"""How often consecutive real source ports differ by 1..8 (capture order)."""


def generate(
    n_rows: int,
    rng: np.random.Generator,
    attack_share: float = DEFAULT_ATTACK_SHARE,
    *,
    patients: int = 4,
) -> RawTable:
    """``n_rows`` synthetic flow records in capture order (see the module docstring).

    Exactly ``round(attack_share * n_rows)`` rows are attacks.  The result has the
    columns, order and types ``iomt.traffic.dataset.read_wustl_csv`` returns, with text
    cells already stripped, and values rounded as ``write_csv`` prints them.
    """
    if n_rows < 1:
        raise ValueError(f"n_rows must be at least 1, got {n_rows}")
    if not 0.0 <= attack_share <= 1.0:
        raise ValueError(f"attack_share must be within [0, 1], got {attack_share}")
    if patients < 1:
        raise ValueError(f"patients must be at least 1, got {patients}")
    category, run = _schedule(n_rows, attack_share, rng)
    times = np.cumsum(rng.exponential(MEAN_FLOW_GAP_S, n_rows))
    patient = rng.integers(0, patients, n_rows)
    readings = _readings(times, patient, patients, category, rng)
    run_delay = rng.uniform(*ALTERATION_DELAY_MS, max(int(run.max()) + 1, 1))
    altered = _alter(readings, category, run, rng)
    network, flags = _flows(category, run_delay[np.maximum(run, 0)], altered, rng)

    columns: dict[str, np.ndarray] = {}
    attack = category != NORMAL
    steps = rng.choice(np.arange(1, 9), n_rows, p=_SPORT_STEPS / _SPORT_STEPS.sum())
    sport = (int(rng.integers(0, 16384)) + np.cumsum(steps)) % 16384 + 49152
    text = {
        "Dir": np.full(n_rows, "->"),
        "Flgs": flags,
        "SrcAddr": np.full(n_rows, GATEWAY_IP),
        "DstAddr": np.full(n_rows, SERVER_IP),
        "Sport": sport.astype(str),
        "SrcMac": np.where(attack, ATTACKER_MAC, GATEWAY_MAC),
        "DstMac": np.full(n_rows, SERVER_MAC),
        CATEGORY_COLUMN: category,
    }
    for name in ALL_COLUMNS:
        if name in text:
            columns[name] = text[name].astype(str)
        elif name in network:
            columns[name] = network[name]
        elif name in readings:
            columns[name] = readings[name]
    columns["Dport"] = np.full(n_rows, float(SERVER_PORT))
    columns["Packet_num"] = np.arange(1, n_rows + 1, dtype=np.float64)
    columns[LABEL_COLUMN] = attack.astype(np.float64)
    missing = [c for c in ALL_COLUMNS if c not in columns]
    assert not missing, missing  # every column has a source above
    return RawTable({name: columns[name] for name in ALL_COLUMNS})


def _schedule(n: int, share: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Category of each row and its attack run (-1 on normal rows), in capture order."""
    n_attack = int(round(share * n))
    lengths: list[int] = []
    while sum(lengths) < n_attack:
        lengths.append(min(int(rng.integers(RUN_LENGTHS[0], RUN_LENGTHS[1] + 1)),
                           n_attack - sum(lengths)))  # fmt: skip
    kinds = np.where(rng.random(len(lengths)) < SPOOFING_ODDS, SPOOFING, ALTERATION)
    gaps = rng.multinomial(n - n_attack, rng.dirichlet(np.ones(len(lengths) + 1)))
    category: list[str] = []
    run: list[int] = []
    for i, length in enumerate(lengths):
        category += [NORMAL] * int(gaps[i]) + [str(kinds[i])] * length
        run += [-1] * int(gaps[i]) + [i] * length
    category += [NORMAL] * int(gaps[-1])
    run += [-1] * int(gaps[-1])
    return np.array(category), np.array(run, dtype=np.int64)


def _dropout_mask(n: int, share: float, mean_len: float, rng: np.random.Generator) -> np.ndarray:
    """Alternating on/off stretches (geometric lengths) covering ``share`` of ``n`` flows."""
    mean_off = mean_len * (1.0 - share) / share
    count = int(n / (mean_len + mean_off)) + 3
    on = rng.geometric(1.0 / mean_len, count)
    off = rng.geometric(1.0 / mean_off, count)
    pattern = np.repeat(np.tile([False, True], count), np.column_stack([off, on]).ravel())
    start = int(rng.integers(0, int(mean_off) + 1))
    mask = pattern[start : start + n]
    return np.pad(mask, (0, n - len(mask)))


def _readings(
    times: np.ndarray,
    patient: np.ndarray,
    patients: int,
    category: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """The eight readings of every flow: per-patient walks, sensor zeros, artefacts."""
    n = len(times)
    out = {name: np.zeros(n) for name in READING_COLUMNS}
    names = list(_VITALS)
    for p in range(patients):
        rows = np.flatnonzero(patient == p)
        if len(rows) == 0:
            continue
        walks = {}
        t = times[rows]
        dt = np.diff(t, prepend=t[0])
        for name in names:
            (low, high), sd, tau, lower, upper = _VITALS[name]
            mu = rng.uniform(low, high)
            decay = np.exp(-dt / tau)
            noise = sd * np.sqrt(1.0 - decay**2) * rng.standard_normal(len(rows))
            x = np.empty(len(rows))
            state = mu + sd * rng.standard_normal()
            for k in range(len(rows)):  # exact OU steps; a short Python loop per patient
                state = mu + (state - mu) * decay[k] + noise[k]
                x[k] = state
            walks[name] = np.clip(x, lower, upper)
        heart = walks.pop("cardiac")
        walks["Heart_rate"] = heart + rng.normal(0.0, 1.0, len(rows))
        walks["Pulse_Rate"] = heart + rng.normal(0.0, 1.5, len(rows))
        # Blood pressure holds the last cuff reading; zero before the first one.
        cuff = (
            t[0]
            + rng.uniform(10.0, 120.0)
            + CUFF_INTERVAL_S * np.arange(int((t[-1] - t[0]) / CUFF_INTERVAL_S) + 2)
        )
        last = np.searchsorted(cuff, t, side="right") - 1
        measured = last >= 0
        at = np.searchsorted(t, cuff[np.maximum(last, 0)]).clip(0, len(rows) - 1)
        for name in ("SYS", "DIA"):
            walks[name] = np.where(measured, walks[name][at], 0.0)
        settle = int(rng.integers(1, 4))
        for name in ("SpO2", "Pulse_Rate"):
            walks[name][:settle] = 0.0
        for cols, (share, mean_len) in _DROPOUTS.items():
            mask = _dropout_mask(len(rows), share, mean_len, rng)
            for name in cols:
                walks[name][mask] = 0.0
        for name in READING_COLUMNS:
            out[name][rows] = walks[name]
    spikes = np.flatnonzero((rng.random(n) < ARTEFACT_SHARE) & (category == NORMAL))
    which = rng.choice(list(_ARTEFACTS), len(spikes))
    for row, name in zip(spikes, which, strict=True):
        out[str(name)][row] = rng.uniform(*_ARTEFACTS[str(name)])
    return {name: _round(name, values) for name, values in out.items()}


def _round(name: str, values: np.ndarray) -> np.ndarray:
    return np.round(values, _DECIMALS.get(name, 0)) + 0.0  # + 0.0 turns -0.0 into 0.0


def _alter(
    readings: dict[str, np.ndarray], category: np.ndarray, run: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:  # fmt: skip
    """Rewrite readings of Data Alteration rows in place; returns the rows altered."""
    altered = np.zeros(len(category), dtype=bool)
    names = list(_ALTERATIONS)
    weights = np.array([_ALTERATIONS[v][2] for v in names])
    for r in np.unique(run[category == ALTERATION]):
        rows = np.flatnonzero(run == r)
        rows = rows[rng.random(len(rows)) >= PASS_THROUGH_SHARE]
        targets = rng.choice(
            names, int(rng.integers(1, 4)), replace=False, p=weights / weights.sum()
        )
        for name in map(str, targets):
            (low, high), signs, _ = _ALTERATIONS[name]
            offset = rng.choice(signs) * rng.uniform(low, high)
            values = readings[name][rows]
            changed = values + offset * rng.uniform(0.7, 1.3, len(rows))
            lower, upper = _ALTERED_BOUNDS.get(name, (0.0, 250.0))
            # A sensor that reads 0 (not connected) is left alone: there is nothing to rewrite.
            readings[name][rows] = np.where(
                values != 0, _round(name, changed.clip(lower, upper)), 0.0
            )
        altered[rows] = True
    return altered


def _flows(
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


def _cell(value: float) -> str:
    """Shortest text that reads back as ``value``, never in exponent notation."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    text = repr(value)
    return np.format_float_positional(value, trim="-") if "e" in text else text


def _padded(name: str, values: Sequence[str]) -> list[str]:
    """Argus's padding: ``Dir`` right-aligned in 5, ``Flgs`` after a space in 10."""
    if name == "Dir":
        return [v.rjust(5) for v in values]
    if name == "Flgs":
        return [" " + v.ljust(9) for v in values]
    return list(values)


def write_csv(table: RawTable, path: str | os.PathLike[str]) -> Path:
    """Write ``table`` as a WUSTL-EHMS-2020 CSV (45 columns, LF endings); returns the path.

    The file appears atomically (written beside it, then renamed).  Raises
    ``DataError`` when the table lacks a column, a text cell holds a comma, quote or
    line break, or the file cannot be written.
    """
    path = Path(path)
    missing = [c for c in ALL_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"cannot write {path}: table lacks column(s) {', '.join(missing)}")
    cells: list[list[str]] = []
    for name in ALL_COLUMNS:
        values = table.column(name)
        if name in NUMERIC_COLUMNS:
            numbers = np.asarray(values, dtype=np.float64)
            if not np.isfinite(numbers).all():
                raise DataError(f"cannot write {path}: column {name!r} holds a non-finite value")
            cells.append([_cell(v) for v in numbers.tolist()])
            continue
        texts = _padded(name, [str(v) for v in values.tolist()])
        bad = next((t for t in texts if any(ch in t for ch in ',"\r\n')), None)
        if bad is not None:
            raise DataError(f"cannot write {path}: column {name!r} holds {bad!r}")
        cells.append(texts)
    lines = [",".join(ALL_COLUMNS)] + [",".join(row) for row in zip(*cells, strict=True)]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        try:
            with tmp.open("w", encoding="ascii", newline="\n") as handle:
                handle.write("\n".join(lines) + "\n")
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except (OSError, UnicodeEncodeError) as exc:
        raise DataError(f"cannot write {path}: {exc}") from exc
    log.info("wrote %d synthetic flows to %s", len(table), path)
    return path
