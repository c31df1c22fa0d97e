"""Each eavesdropper's signature (conclusive rate, QBER vs f) against its derivation."""

import math

import pytest

from iomt.errors import QkdError
from iomt.qkd_channel.eve import EVE_MODELS, make_eavesdropper
from tests.qkd_channel.helpers import IDEAL, SIGMAS, observed, run_numpy, se

S = 1 / math.sqrt(2)  # overlap of |0> and |+>

# closed forms written out independently of the models' own signature() methods
THEORY = {
    "intercept-resend": lambda f: ((2 + f) / 8, f / (2 + f)),
    "intercept-resend-b92": lambda f: (0.25, f / 4),
    "helstrom": lambda f: (0.25, f * (1 - S) / 2),
    "usd": lambda f: ((1 - f * S) / 4, 0.0),
}
N = 400_000


def test_every_cli_model_has_a_theory():
    assert set(EVE_MODELS) == set(THEORY)


@pytest.mark.parametrize("model", sorted(THEORY))
@pytest.mark.parametrize("fraction", [0.0, 0.3, 1.0])
def test_signature_method_matches_derivation(model, fraction):
    sig = make_eavesdropper(model, fraction).signature()
    rate, qber = THEORY[model](fraction)
    assert sig.conclusive_rate == pytest.approx(rate, abs=1e-12)
    assert sig.qber == pytest.approx(qber, abs=1e-12)


@pytest.mark.parametrize("model", sorted(THEORY))
def test_resend_branches_are_probabilities(model):
    eve = make_eavesdropper(model)
    for bit in (0, 1):
        branches = eve.resends(bit)
        assert sum(b.probability for b in branches) == pytest.approx(1.0)
        assert all(b.probability >= 0 for b in branches)


@pytest.mark.parametrize("model", sorted(THEORY))
@pytest.mark.parametrize("fraction", [0.3, 1.0])
def test_simulated_signature_matches_theory(model, fraction):
    rate, qber = THEORY[model](fraction)
    seed = (sorted(THEORY).index(model), round(fraction * 10))
    bits, det = run_numpy(N, IDEAL, make_eavesdropper(model, fraction), seed=seed)
    got_rate, got_qber, _, conclusive = observed(bits, det)
    assert abs(got_rate - rate) <= SIGMAS * se(rate, N)
    if qber == 0.0:
        assert got_qber == 0.0  # USD never causes an error
    else:
        assert abs(got_qber - qber) <= SIGMAS * se(qber, conclusive)


def test_usd_blocks_show_up_as_lost_detections():
    fraction = 0.6
    bits, det = run_numpy(N, IDEAL, make_eavesdropper("usd", fraction), seed=11)
    expected_click = 1 - fraction * S  # Eve passes 1 - s of what she attacks
    assert abs(det.clicked.mean() - expected_click) <= SIGMAS * se(expected_click, N)


def test_no_eve_on_ideal_link_is_quarter_rate_error_free():
    bits, det = run_numpy(N, IDEAL, None, seed=5)
    rate, qber, click, _ = observed(bits, det)
    assert abs(rate - 0.25) <= SIGMAS * se(0.25, N)
    assert qber == 0.0 and click == 1.0


def test_unknown_model_and_bad_fraction_are_refused():
    with pytest.raises(QkdError, match="unknown eavesdropper"):
        make_eavesdropper("photon-number-splitting")
    with pytest.raises(QkdError, match="fraction"):
        make_eavesdropper("usd", 1.5)
