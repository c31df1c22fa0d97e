"""Every measurement the testbed writes: its fields in one registry, and a typed builder each.

Tags are only ``run``, ``scenario``, ``strategy`` (added by the sink to every point)
and ``hmu`` (the HMU a point is about; for ``resources``, the agent id of the sampled
process, e.g. ``server``).  Everything else is a field.  Each builder takes the time of
the event (``time_ns``, default: now), leaves out fields given as ``None`` or as a
non-finite number, and coerces the rest to the field's kind, so the same field always
has the same type (InfluxDB refuses a float written into an integer field).

=============  ====  ==========================================================
measurement    hmu   fields
=============  ====  ==========================================================
fl_round       no    round, accuracy, precision, recall, f1, loss, duration_s,
                     bytes_up, bytes_down, selected, received, timed_out
hmu_training   yes   round, loss, samples, train_s, update_norm, trust, flagged
qkd_link       yes   qber, qber_upper, qber_threshold, conclusive_rate, key_bits,
                     key_pool_bits, status (``QKD_STATUS`` code), rekeys, round
security       opt.  one count per event kind (``SECURITY_EVENTS``), round
broker         no    the broker's ``$SYS`` counters (see ``iomt.monitoring.broker_stats``)
resources      yes   cpu_percent (of one core; can exceed 100), rss_bytes, threads
detection      yes   flows, alerts, unscored, latency_ms_p50, latency_ms_max,
                     model_version (live detection, one point per window)
=============  ====  ==========================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from iomt.monitoring.point import FieldValue, Point, now_ns

FieldKind = Literal["float", "int", "bool"]

MEASUREMENTS: dict[str, dict[str, FieldKind]] = {
    "fl_round": {
        "round": "int", "accuracy": "float", "precision": "float", "recall": "float",
        "f1": "float", "loss": "float", "duration_s": "float", "bytes_up": "int",
        "bytes_down": "int", "selected": "int", "received": "int", "timed_out": "bool",
    },
    "hmu_training": {
        "round": "int", "loss": "float", "samples": "int", "train_s": "float",
        "update_norm": "float", "trust": "float", "flagged": "bool",
    },
    "qkd_link": {
        "qber": "float", "qber_upper": "float", "qber_threshold": "float",
        "conclusive_rate": "float", "key_bits": "int", "key_pool_bits": "int",
        "status": "int", "rekeys": "int", "round": "int",
    },
    "security": {
        "isolated": "int", "rejected_tampered": "int", "rejected_replayed": "int",
        "rejected_unauthorised": "int", "rejected_malformed": "int",
        "anomaly_flagged": "int", "round": "int",
    },
    "broker": {
        "clients_connected": "int", "messages_received": "int", "messages_sent": "int",
        "bytes_received": "int", "bytes_sent": "int", "messages_dropped": "int",
        "subscriptions": "int",
    },
    "resources": {"cpu_percent": "float", "rss_bytes": "int", "threads": "int"},
    "detection": {
        "flows": "int", "alerts": "int", "unscored": "int", "latency_ms_p50": "float",
        "latency_ms_max": "float", "model_version": "int",
    },
}  # fmt: skip
"""``{measurement: {field: kind}}``: every field the sink writes (dashboards are checked on it)."""

HMU_TAGGED: frozenset[str] = frozenset(
    ("hmu_training", "qkd_link", "security", "resources", "detection")
)
"""Measurements whose points carry (or, for ``security``, may carry) an ``hmu`` tag."""

QKD_STATUS: dict[str, int] = {"pending": 0, "accepted": 1, "isolated": 2, "no-session": 3}
"""Codes of ``qkd_link.status`` (the server's link states): ``isolated`` = the session was
aborted (QBER bound or conclusive rate out of band, or confirmation failed)."""

SECURITY_EVENTS: dict[str, str] = {
    "isolation": "isolated",
    "tampered": "rejected_tampered",
    "replayed": "rejected_replayed",
    "unauthorised": "rejected_unauthorised",
    "malformed": "rejected_malformed",
    "anomaly": "anomaly_flagged",
}
"""Event kind -> the ``security`` field that counts it (sum a field over time for totals)."""

_COERCE = {"float": float, "int": int, "bool": bool}


def build(
    measurement: str,
    fields: Mapping[str, Any],
    *,
    hmu: str | None = None,
    time_ns: int | None = None,
) -> Point:
    """A point of a registered measurement; ``None`` and non-finite values are left out.

    Raises ``ValueError`` for an unknown measurement or field (a programming error).
    """
    kinds = MEASUREMENTS.get(measurement)
    if kinds is None:
        raise ValueError(f"unknown measurement {measurement!r}")
    clean: dict[str, FieldValue] = {}
    for name, value in fields.items():
        kind = kinds.get(name)
        if kind is None:
            raise ValueError(f"{measurement} has no field {name!r}")
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            continue
        coerced = _COERCE[kind](value)
        if kind == "float" and not math.isfinite(coerced):
            continue
        clean[name] = coerced
    tags = {"hmu": hmu} if hmu else {}
    return Point(measurement, clean, now_ns() if time_ns is None else int(time_ns), tags)


def fl_round(
    round: int,
    *,
    accuracy: float,
    precision: float,
    recall: float,
    f1: float,
    loss: float,
    duration_s: float,
    bytes_up: int,
    bytes_down: int,
    selected: int | None = None,
    received: int | None = None,
    timed_out: bool | None = None,
    time_ns: int | None = None,
) -> Point:
    """One finished FL round as the server evaluated it on the held-out split."""
    return build(
        "fl_round",
        {
            "round": round,
            "accuracy": accuracy,
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "loss": loss,
            "duration_s": duration_s,
            "bytes_up": bytes_up,
            "bytes_down": bytes_down,
            "selected": selected,
            "received": received,
            "timed_out": timed_out,
        },  # fmt: skip
        time_ns=time_ns,
    )


def fl_round_from_record(record: Mapping[str, Any], *, time_ns: int | None = None) -> Point:
    """``fl_round`` from one entry of ``results.json`` ``rounds`` (the server's round record)."""
    return fl_round(
        int(record["round"]),
        accuracy=record["accuracy"],
        precision=record["precision"],
        recall=record["recall"],
        f1=record["f1"],
        loss=record["loss"],
        duration_s=record["duration_s"],
        bytes_up=record["bytes_up"],
        bytes_down=record["bytes_down"],
        selected=len(record["selected"]) if "selected" in record else None,
        received=len(record["received"]) if "received" in record else None,
        timed_out=record.get("timed_out"),
        time_ns=time_ns,
    )


def hmu_training(
    hmu: str,
    round: int,
    *,
    loss: float,
    samples: int,
    train_s: float,
    update_norm: float | None = None,
    trust: float | None = None,
    flagged: bool | None = None,
    time_ns: int | None = None,
) -> Point:
    """One HMU's local training in a round; ``trust``/``flagged`` as the server judged it."""
    return build(
        "hmu_training",
        {
            "round": round,
            "loss": loss,
            "samples": samples,
            "train_s": train_s,
            "update_norm": update_norm,
            "trust": trust,
            "flagged": flagged,
        },  # fmt: skip
        hmu=hmu,
        time_ns=time_ns,
    )


def qkd_link(
    hmu: str,
    *,
    status: str | int,
    qber: float | None = None,
    qber_upper: float | None = None,
    qber_threshold: float | None = None,
    conclusive_rate: float | None = None,
    key_bits: int | None = None,
    key_pool_bits: int | None = None,
    rekeys: int | None = None,
    round: int | None = None,
    time_ns: int | None = None,
) -> Point:
    """The state of one HMU's QKD link after a key session (``status``: name or code)."""
    if isinstance(status, str):
        if status not in QKD_STATUS:
            raise ValueError(f"QKD status {status!r} is not one of {', '.join(QKD_STATUS)}")
        status = QKD_STATUS[status]
    return build(
        "qkd_link",
        {
            "qber": qber,
            "qber_upper": qber_upper,
            "qber_threshold": qber_threshold,
            "conclusive_rate": conclusive_rate,
            "key_bits": key_bits,
            "key_pool_bits": key_pool_bits,
            "status": status,
            "rekeys": rekeys,
            "round": round,
        },  # fmt: skip
        hmu=hmu,
        time_ns=time_ns,
    )


def qkd_link_from_report(
    hmu: str,
    report: Mapping[str, Any],
    *,
    qber_threshold: float | None = None,
    key_pool_bits: int | None = None,
    round: int | None = None,
    time_ns: int | None = None,
) -> Point:
    """``qkd_link`` from the server's report of a finished key session (``results.json`` qkd).

    Reads ``qber``, ``qber_upper``, ``conclusive_rate``, ``final_key_bits``, ``status``
    and ``sessions`` (rekeys = sessions - 1).
    """
    sessions = report.get("sessions")
    status = report.get("status", "pending")
    return qkd_link(
        hmu,
        status=status if status in QKD_STATUS else "pending",
        qber=report.get("qber"),
        qber_upper=report.get("qber_upper"),
        qber_threshold=qber_threshold,
        conclusive_rate=report.get("conclusive_rate"),
        key_bits=report.get("final_key_bits"),
        key_pool_bits=key_pool_bits,
        rekeys=max(0, int(sessions) - 1) if isinstance(sessions, int) else None,
        round=round,
        time_ns=time_ns,
    )


def security_event(
    kind: str,
    *,
    hmu: str | None = None,
    count: int = 1,
    round: int | None = None,
    time_ns: int | None = None,
) -> Point:
    """``count`` security events of ``kind`` (a key of ``SECURITY_EVENTS``) about ``hmu``.

    ``hmu`` is the HMU concerned: the isolated one, or the sender of a refused message
    when it is known.
    """
    name = SECURITY_EVENTS.get(kind)
    if name is None:
        raise ValueError(f"security event {kind!r} is not one of {', '.join(SECURITY_EVENTS)}")
    return build("security", {name: count, "round": round}, hmu=hmu, time_ns=time_ns)


def broker(counters: Mapping[str, int], *, time_ns: int | None = None) -> Point:
    """The broker's counters (names as in ``MEASUREMENTS["broker"]``)."""
    return build("broker", counters, time_ns=time_ns)


def resources(
    agent: str,
    *,
    cpu_percent: float,
    rss_bytes: int,
    threads: int | None = None,
    time_ns: int | None = None,
) -> Point:
    """CPU and memory of the process running ``agent`` (tagged ``hmu=agent``)."""
    return build(
        "resources",
        {"cpu_percent": cpu_percent, "rss_bytes": rss_bytes, "threads": threads},
        hmu=agent,
        time_ns=time_ns,
    )


def detection(
    hmu: str,
    *,
    flows: int,
    alerts: int,
    unscored: int,
    latency_ms_p50: float | None = None,
    latency_ms_max: float | None = None,
    model_version: int | None = None,
    time_ns: int | None = None,
) -> Point:
    """One window of an HMU's live detection: flows scored, alerts raised, flows that
    ended before any model arrived, and the latency from a flow's last packet to its
    score (flows closed by FIN/RST only)."""
    return build(
        "detection",
        {
            "flows": flows,
            "alerts": alerts,
            "unscored": unscored,
            "latency_ms_p50": latency_ms_p50,
            "latency_ms_max": latency_ms_max,
            "model_version": model_version,
        },  # fmt: skip
        hmu=hmu,
        time_ns=time_ns,
    )
