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

import numpy as np

from iomt.traffic.dataset import (
    ALL_COLUMNS,
    CATEGORY_COLUMN,
    LABEL_COLUMN,
    READING_COLUMNS,
    RawTable,
)
from iomt.traffic.synthetic_trains import (
    ALTERATION,
    ALTERATION_DELAY_MS,
    GATEWAY_IP,
    NORMAL,
    SERVER_IP,
    SERVER_PORT,
    SPOOFING,
    packet_statistics,
)

log = logging.getLogger(__name__)

DEFAULT_ATTACK_SHARE = 2046 / 16318
"""Share of attack rows in WUSTL-EHMS-2020 (12.54 %)."""
SPOOFING_ODDS = 1124 / 2046
"""Share of Spoofing among the real attack rows (the rest is Data Alteration)."""

GATEWAY_MAC = "02:00:0a:00:01:ac"
SERVER_MAC = "02:00:0a:00:01:96"
ATTACKER_MAC = "02:00:0a:00:01:e7"

MEAN_FLOW_GAP_S = 0.5
RUN_LENGTHS = (17, 31)
"""Attack runs last 17-31 flows, like the 84 attack runs of the real file."""


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
    network, flags = packet_statistics(category, run_delay[np.maximum(run, 0)], altered, rng)

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
