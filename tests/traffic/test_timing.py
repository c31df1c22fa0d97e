"""Inter-packet times with a given mean and population deviation, placed on one time line."""

from __future__ import annotations

import numpy as np
import pytest

from iomt.traffic.timing import Rule, arrange, spread


@pytest.mark.parametrize("k", [1, 2, 3, 5, 13])
def test_spread_hits_mean_and_population_deviation(k):
    rng = np.random.default_rng(k)
    for _ in range(50):
        mean = float(rng.uniform(0.1, 100))
        std = float(rng.uniform(0, mean * np.sqrt(max(k - 1, 0)))) if k > 1 else 0.0
        for long_at in range(k):
            x = np.array(spread(k, mean, std, long_at))
            assert (x >= 0).all()
            assert x.mean() == pytest.approx(mean, rel=1e-12)
            assert x.std() == pytest.approx(std, rel=1e-9, abs=1e-9)


def test_spread_clamps_an_impossible_deviation_and_keeps_fixed_values():
    x = np.array(spread(3, 1.0, 10.0))
    assert x.mean() == pytest.approx(1.0) and x.std() == pytest.approx(np.sqrt(2.0))
    y = np.array(spread(4, 1256.0, 900.0, -1, {0: 3000.0}))
    assert y[0] == 3000.0 and y.mean() == pytest.approx(1256.0)


def test_arrange_spans_dur_and_keeps_rules_where_possible():
    # the first WUSTL row: 4 sensor packets, 3 gateway packets, Dur 10.747 ms
    rules = [Rule(0, 0, True, 4), Rule(1, 0, False, 2), Rule(2, 1, True, 2), Rule(2, 2, True, 1)]
    src, dst = arrange(4, 3, 10.747, 3.582333, 2.946239, 1.9015, 1.6235, rules)
    assert len(src) == 4 and len(dst) == 3
    assert max(src + dst) - min(src + dst) == pytest.approx(10.747, rel=1e-9)
    assert np.diff(src).mean() == pytest.approx(3.582333) and np.diff(src).std() == pytest.approx(
        2.946239
    )
    assert np.diff(dst).mean() == pytest.approx(1.9015) and np.diff(dst).std() == pytest.approx(
        1.6235
    )
    assert src[0] <= dst[0] <= src[1] and dst[1] >= src[2]  # causal handshake and reply


def test_arrange_shrinks_a_side_that_contradicts_dur():
    src, dst = arrange(3, 2, 10.0, 700.0, 0.0, 1.0, 0.0)
    assert max(src + dst) - min(src + dst) == pytest.approx(10.0)
