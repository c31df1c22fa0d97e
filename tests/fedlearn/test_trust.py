"""Tests of trust scores with decay and the anomaly history."""

from __future__ import annotations

import pytest

from iomt.fedlearn.defence_config import TrustConfig
from iomt.fedlearn.trust import TrustLedger, trust_weights, updated_trust

CFG = TrustConfig(initial=1.0, decay=0.7, floor=0.5)


def test_trust_decays_when_flagged_and_recovers_slowly() -> None:
    t = updated_trust({}, ["a", "b"], ["b"], CFG)
    assert t == pytest.approx({"a": 1.0, "b": 0.7})
    t = updated_trust(t, ["b"], ["b"], CFG)
    assert t["b"] == pytest.approx(0.49) and t["a"] == 1.0  # a sat out: unchanged
    t = updated_trust(t, ["b"], [], CFG)
    assert t["b"] == pytest.approx(0.7 * 0.49 + 0.3)


def test_weights_leave_out_hmus_below_the_floor() -> None:
    weights = trust_weights({"a": 1.0, "b": 0.49, "c": 0.6}, {"a": 10, "b": 10, "c": 5}, CFG)
    assert weights == pytest.approx({"a": 10.0, "c": 3.0})


def test_ledger_keeps_the_anomaly_history() -> None:
    ledger = TrustLedger(CFG)
    ledger.observe(1, ["a", "b"], ["b"])
    ledger.observe(2, ["a", "b"], ["b"])
    ledger.observe(3, ["a", "b"], [])
    assert ledger.history == {"a": [], "b": [1, 2]}
    assert ledger.anomalies("b") == 2 and ledger.anomalies("z") == 0
    assert ledger.score("b") == pytest.approx(0.7 * 0.49 + 0.3)
    assert ledger.score("new") == 1.0
