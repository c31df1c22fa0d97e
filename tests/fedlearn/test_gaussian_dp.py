"""The Gaussian mechanism's closed forms against dp_accounting's accountant."""

import math

import pytest

from iomt.fedlearn.gaussian_dp import composed_epsilon, delta_for, noise_multiplier


def test_delta_is_the_analytic_gaussian_curve() -> None:
    # mu = 1, epsilon = 1: Phi(-0.5) - e Phi(-1.5) (Balle and Wang, 2018, thm 8)
    phi = lambda x: 0.5 * math.erfc(-x / math.sqrt(2))  # noqa: E731
    assert delta_for(1.0, 1.0) == pytest.approx(phi(-0.5) - math.e * phi(-1.5), rel=1e-12)
    assert delta_for(2.0, 1.0) < delta_for(1.0, 1.0) < delta_for(1.0, 2.0)
    # epsilons in the hundreds (e^epsilon overflows a float) stay finite: SAFE-MED's
    # epsilon 50 over 30 rounds is z = 0.1498, 823.8 in all at delta 1e-5
    assert delta_for(823.83, math.sqrt(30) / 0.14976) == pytest.approx(1e-5, rel=0.01)


@pytest.mark.parametrize("epsilon", [0.5, 1.0, 5.0])
def test_one_release_matches_the_pld_accountant(epsilon: float) -> None:
    import dp_accounting
    from dp_accounting.pld import pld_privacy_accountant

    z = noise_multiplier(epsilon, 1e-5)
    assert delta_for(epsilon, 1 / z) == pytest.approx(1e-5, rel=1e-9)
    reference = dp_accounting.calibrate_dp_mechanism(
        pld_privacy_accountant.PLDAccountant, dp_accounting.GaussianDpEvent, epsilon, 1e-5
    )
    assert z == pytest.approx(reference, rel=1e-5)


def test_composition_is_exact_and_the_pld_bound_sits_just_above() -> None:
    import dp_accounting
    from dp_accounting.pld import pld_privacy_accountant

    z = noise_multiplier(0.5, 1e-5)
    exact = composed_epsilon(z, 30, 1e-5)
    pld = pld_privacy_accountant.PLDAccountant()
    pld.compose(dp_accounting.GaussianDpEvent(z), 30)
    assert exact <= pld.get_epsilon(1e-5) <= exact * 1.002
    # T releases at z are one release at z / sqrt(T)
    assert exact == pytest.approx(composed_epsilon(z / math.sqrt(30), 1, 1e-5), rel=1e-9)
    assert composed_epsilon(z, 1, 1e-5) == pytest.approx(0.5, rel=1e-9)
    assert composed_epsilon(1e6, 1, 1e-5) == 0.0  # noise so large no epsilon is spent


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        noise_multiplier(0.0, 1e-5)
    with pytest.raises(ValueError):
        composed_epsilon(1.0, 0, 1e-5)
