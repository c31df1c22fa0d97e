"""The numpy link against closed forms on a lossy, noisy link with dark counts."""

import numpy as np
import pytest

from iomt.errors import QkdError
from iomt.qkd_channel.backends import run_link
from iomt.qkd_channel.channel import bernoulli, expected_rates, random_bits, threshold
from iomt.qkd_channel.eve import make_eavesdropper
from iomt.qkd_channel.link import LinkParams, honest_rates
from tests.qkd_channel.helpers import SIGMAS, observed, run_numpy, se

NOISY = LinkParams(
    fibre_km=25.0, db_per_km=0.2, detector_efficiency=0.7, dark_count_prob=0.02, depolarising=0.05
)


def closed_form(link: LinkParams) -> tuple[float, float, float]:
    """Conclusive rate, QBER and click rate written out from the detector model."""
    eta = 10 ** (-link.db_per_km * link.fibre_km / 10) * link.detector_efficiency
    d, p = link.dark_count_prob, link.depolarising
    a = eta * (1 - d)
    b = (1 - eta) * d * (1 - d) + (eta * d + (1 - eta) * d * d) / 2
    conclusive = a * (1 + p) / 4 + b
    qber = (a * p / 4 + b / 2) / conclusive
    click = 1 - (1 - eta) * (1 - d) ** 2
    return conclusive, qber, click


def test_honest_rates_match_closed_form():
    rates = honest_rates(NOISY)
    assert (rates.conclusive, rates.qber, rates.click) == pytest.approx(closed_form(NOISY))
    exact = expected_rates(NOISY, None)
    assert (exact.conclusive, exact.qber, exact.click) == pytest.approx(closed_form(NOISY))


def test_sampled_honest_link_matches_closed_form():
    n = 1_000_000
    bits, det = run_numpy(n, NOISY, None, seed=21)
    rate, qber, click, conclusive = observed(bits, det)
    c0, q0, k0 = closed_form(NOISY)
    assert abs(rate - c0) <= SIGMAS * se(c0, n)
    assert abs(qber - q0) <= SIGMAS * se(q0, conclusive)
    assert abs(click - k0) <= SIGMAS * se(k0, n)


@pytest.mark.parametrize("model", ["intercept-resend", "usd"])
def test_sampled_attacked_link_matches_exact_rates(model):
    n = 1_000_000
    eve = make_eavesdropper(model, 0.5)
    bits, det = run_numpy(n, NOISY, eve, seed=22)
    rate, qber, click, conclusive = observed(bits, det)
    exact = expected_rates(NOISY, eve)
    assert abs(rate - exact.conclusive) <= SIGMAS * se(exact.conclusive, n)
    assert abs(qber - exact.qber) <= SIGMAS * se(exact.qber, conclusive)
    assert abs(click - exact.click) <= SIGMAS * se(exact.click, n)


def test_same_seed_same_record_and_streams_are_separate():
    a = run_numpy(10_000, NOISY, make_eavesdropper("helstrom", 0.4), seed=3)
    b = run_numpy(10_000, NOISY, make_eavesdropper("helstrom", 0.4), seed=3)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1].conclusive, b[1].conclusive)
    c = run_numpy(10_000, NOISY, make_eavesdropper("helstrom", 0.4), seed=4)
    assert not np.array_equal(a[1].conclusive, c[1].conclusive)


def test_sampling_primitives():
    rng = np.random.default_rng(0)
    bits = random_bits(100_003, rng)
    assert bits.size == 100_003 and set(np.unique(bits)) == {0, 1}
    assert abs(bits.mean() - 0.5) <= SIGMAS * se(0.5, bits.size)
    assert not bernoulli(1000, 0.0, rng).any() and bernoulli(1000, 1.0, rng).all()
    draws = bernoulli(200_000, 0.123, rng)
    assert abs(draws.mean() - 0.123) <= SIGMAS * se(0.123, draws.size)
    assert int(threshold(0.5)) == 2**63
    assert int(threshold(1.0)) == 2**64 - 1 and int(threshold(0.0)) == 0


def test_bad_link_and_backend_are_refused():
    with pytest.raises(QkdError, match="detector_efficiency"):
        LinkParams(detector_efficiency=0.0)
    with pytest.raises(QkdError, match="backend"):
        run_link(
            np.zeros(4, np.uint8),
            NOISY,
            None,
            np.random.default_rng(0),
            np.random.default_rng(1),
            backend="cirq",
        )
