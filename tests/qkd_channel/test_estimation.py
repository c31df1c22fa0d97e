"""Parameter estimation: sample choice, the Clopper-Pearson bound, binomial rate bands."""

import math

import numpy as np
import pytest

from iomt.errors import QkdError
from iomt.qkd_channel.estimation import (
    QberEstimate,
    binomial_band,
    choose_sample,
    clopper_pearson_upper,
    rate_violation,
)


@pytest.mark.parametrize("errors,trials", [(0, 10), (3, 100), (37, 3760), (500, 10_000)])
@pytest.mark.parametrize("confidence", [0.95, 1 - 1e-6])
def test_clopper_pearson_matches_beta_quantile(errors, trials, confidence):
    stats = pytest.importorskip("scipy.stats")
    expected = stats.beta.ppf(confidence, errors + 1, trials - errors)
    assert clopper_pearson_upper(errors, trials, confidence) == pytest.approx(expected, rel=1e-9)


def test_clopper_pearson_edge_cases():
    assert clopper_pearson_upper(0, 10, 0.95) == pytest.approx(1 - 0.05 ** (1 / 10))
    assert clopper_pearson_upper(10, 10, 0.95) == 1.0
    assert clopper_pearson_upper(0, 0, 0.95) == 1.0
    with pytest.raises(QkdError):
        clopper_pearson_upper(1, 10, 1.0)


def test_bound_covers_the_true_rate_at_the_stated_confidence():
    # 2000 seeded experiments at p = 0.02, m = 500: the 95 % bound may miss <= ~5 %
    rng = np.random.default_rng(8)
    p, m, confidence = 0.02, 500, 0.95
    errors = rng.binomial(m, p, size=2000)
    bound = {int(k): clopper_pearson_upper(int(k), m, confidence) for k in np.unique(errors)}
    misses = sum(bound[int(k)] < p for k in errors)
    assert misses / errors.size <= 0.05 + 5 * math.sqrt(0.05 * 0.95 / errors.size)


def test_estimate_reports_rate_and_bound():
    est = QberEstimate(sample_size=1000, errors=20, confidence=0.99)
    assert est.qber == 0.02 and 0.02 < est.upper < 0.04


def test_choose_sample_size_and_uniqueness():
    mask = choose_sample(10_000, 0.1, np.random.default_rng(0))
    assert mask.dtype == bool and mask.sum() == 1000
    assert choose_sample(0, 0.1, np.random.default_rng(0)).size == 0
    with pytest.raises(QkdError):
        choose_sample(100, 1.0, np.random.default_rng(0))


def test_binomial_band_and_violations():
    lo, hi = binomial_band(100_000, 0.25, 0.999999)
    z = (hi - 25_000) / math.sqrt(100_000 * 0.25 * 0.75)
    assert z == pytest.approx(4.8916, abs=1e-3) and lo == pytest.approx(50_000 - hi)
    assert rate_violation("conclusive", 25_100, 100_000, 0.25, 0.999999) is None
    reason = rate_violation("conclusive", 23_000, 100_000, 0.25, 0.999999)
    assert reason is not None and "conclusive rate 0.23000 outside" in reason
