"""The measurement builders write only registered fields, each always with its own type."""

from __future__ import annotations

import pytest

from iomt.monitoring import measurements as m
from iomt.monitoring.point import TAG_KEYS


def _one_of_each() -> list[m.Point]:
    record = {
        "round": 2, "selected": ["hmu-01", "hmu-02"], "received": ["hmu-01"], "timed_out": True,
        "accuracy": 0.9, "precision": 0.8, "recall": 0.7, "f1": 0.75, "loss": 0.3,
        "duration_s": 1.25, "bytes_up": 27_000, "bytes_down": 54_000,
    }  # fmt: skip
    return [
        m.fl_round_from_record(record, time_ns=1),
        m.hmu_training("hmu-01", 2, loss=0.4, samples=300, train_s=0.05, update_norm=1.2,
                       trust=0.8, flagged=False, time_ns=2),
        m.qkd_link("hmu-01", status="accepted", qber=0.02, qber_upper=0.03,
                   qber_threshold=0.11, conclusive_rate=0.25, key_bits=256, key_pool_bits=1024,
                   rekeys=1, round=2, time_ns=3),
        m.security_event("isolation", hmu="hmu-03", time_ns=4),
        m.broker({"clients_connected": 6, "bytes_sent": 10}, time_ns=5),
        m.resources("server", cpu_percent=50.0, rss_bytes=10**8, threads=9, time_ns=6),
    ]  # fmt: skip


def test_every_builder_writes_registered_fields_with_their_kinds() -> None:
    kinds = {"float": float, "int": int, "bool": bool}
    for point in _one_of_each():
        registry = m.MEASUREMENTS[point.measurement]
        assert point.fields, point
        for name, value in point.fields.items():
            assert type(value) is kinds[registry[name]], (point.measurement, name, value)
        assert set(point.tags or {}) <= set(TAG_KEYS)
        assert bool(point.tags) == (point.measurement in m.HMU_TAGGED)


def test_round_record_is_summarised() -> None:
    point = _one_of_each()[0]
    assert point.fields["selected"] == 2 and point.fields["received"] == 1
    assert point.fields["timed_out"] is True and point.fields["bytes_up"] == 27_000


def test_missing_and_non_finite_values_are_left_out() -> None:
    point = m.qkd_link("hmu-02", status="isolated", qber=float("nan"), key_bits=None)
    assert point.fields == {"status": m.QKD_STATUS["isolated"]}
    point = m.hmu_training("hmu-01", 1, loss=float("inf"), samples=5, train_s=0.1)
    assert "loss" not in point.fields and point.fields["samples"] == 5


def test_qkd_link_from_the_servers_session_report() -> None:
    report = {"qber": 0.031, "qber_upper": 0.052, "conclusive_rate": 0.24, "sifted_bits": 900,
              "leaked_bits": 300, "final_key_bits": 256, "status": "accepted", "reason": "",
              "sessions": 3}  # fmt: skip
    point = m.qkd_link_from_report("hmu-04", report, qber_threshold=0.11, time_ns=9)
    assert point.tags == {"hmu": "hmu-04"} and point.time_ns == 9
    assert point.fields == {
        "qber": 0.031,
        "qber_upper": 0.052,
        "qber_threshold": 0.11,
        "conclusive_rate": 0.24,
        "key_bits": 256,
        "status": 1,
        "rekeys": 2,
    }
    aborted = m.qkd_link_from_report("hmu-05", {"qber": None, "status": "isolated", "sessions": 1})
    assert aborted.fields == {"status": m.QKD_STATUS["isolated"], "rekeys": 0}


def test_ints_given_as_floats_stay_ints() -> None:
    point = m.fl_round(1, accuracy=1, precision=1, recall=1, f1=1, loss=0, duration_s=2,
                       bytes_up=10.0, bytes_down=20.0)  # fmt: skip
    assert type(point.fields["bytes_up"]) is int and type(point.fields["accuracy"]) is float


def test_each_security_kind_counts_in_its_own_field() -> None:
    events = m.SECURITY_EVENTS.items()
    fields = {m.security_event(kind, count=3).fields.get(name) for kind, name in events}
    assert fields == {3}
    with pytest.raises(ValueError):
        m.security_event("bored")
    with pytest.raises(ValueError):
        m.qkd_link("hmu-01", status="fine")
    with pytest.raises(ValueError):
        m.build("fl_round", {"nonsense": 1.0})
