"""Tests of poisoning detection rates and poison resilience."""

from __future__ import annotations

import pytest

from iomt.fedlearn.resilience import detection_rates, poison_resilience


def test_detection_rates_count_hmu_round_pairs() -> None:
    participants = [{"a", "b", "c", "d"}, {"a", "b", "c", "d"}, {"a", "b"}]
    attackers = [{"a"}, {"a", "b"}, {"a", "c"}]  # c sat out round 3: ignored
    flagged = [{"a", "d"}, {"a"}, {"a", "x"}]  # x did not take part: ignored
    rates = detection_rates(participants, attackers, flagged)
    assert (rates.tp, rates.fn, rates.fp, rates.tn) == (3, 1, 1, 5)
    assert rates.tpr == pytest.approx(0.75) and rates.fpr == pytest.approx(1 / 6)
    assert rates.as_dict()["tpr"] == pytest.approx(0.75)


def test_detection_rates_edge_cases() -> None:
    none = detection_rates([{"a"}], [set()], [set()])
    assert (none.tpr, none.fpr) == (0.0, 0.0)
    with pytest.raises(ValueError, match="one entry per round"):
        detection_rates([{"a"}], [], [])


def test_poison_resilience_is_the_surviving_share_of_clean_accuracy() -> None:
    assert poison_resilience(0.9, 0.95) == pytest.approx(0.9 / 0.95)
    with pytest.raises(ValueError):
        poison_resilience(0.5, 0.0)
