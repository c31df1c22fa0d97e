"""Tests of the privacy accountant over rounds."""

from __future__ import annotations

import pytest

from iomt.fedlearn.accountant import PrivacyAccountant, epsilon_total, privacy_report
from iomt.fedlearn.defence_config import PrivacyConfig
from iomt.fedlearn.privacy import gaussian_noise_multiplier

GAUSS = PrivacyConfig(mechanism="gaussian", epsilon=0.5, delta=1e-5, clip=0.1)


def test_laplace_composes_by_basic_composition() -> None:
    cfg = PrivacyConfig(mechanism="laplace", epsilon=0.5)
    assert [epsilon_total(cfg, t) for t in (0, 1, 2, 30)] == [0.0, 0.5, 1.0, 15.0]


def test_gaussian_total_is_monotonic_and_starts_at_the_per_round_epsilon() -> None:
    rounds = (1, 2, 3, 5, 10)
    totals = [epsilon_total(GAUSS, t) for t in rounds]
    assert totals[0] == pytest.approx(0.5, abs=2e-3)
    assert all(b > a for a, b in zip(totals, totals[1:], strict=False))
    # composition beats basic composition (T * eps) but grows at least like sqrt(T)
    assert totals[-1] < 10 * 0.5
    assert totals[-1] > totals[0] * 10**0.5 * 0.8


def test_gaussian_total_agrees_with_the_library() -> None:
    import dp_accounting
    from dp_accounting.pld import pld_privacy_accountant
    from dp_accounting.rdp import rdp_privacy_accountant

    z = gaussian_noise_multiplier(0.5, 1e-5)
    pld = pld_privacy_accountant.PLDAccountant()
    pld.compose(dp_accounting.GaussianDpEvent(z), 30)
    pld_cfg = GAUSS.model_copy(update={"accountant": "pld"})
    assert epsilon_total(pld_cfg, 30) == pytest.approx(pld.get_epsilon(1e-5), rel=1e-9)
    rdp = rdp_privacy_accountant.RdpAccountant()
    rdp.compose(dp_accounting.GaussianDpEvent(z), 30)
    rdp_cfg = GAUSS.model_copy(update={"accountant": "rdp"})
    assert epsilon_total(rdp_cfg, 30) == pytest.approx(rdp.get_epsilon(1e-5), rel=1e-9)
    # the default is exact: just under PLD's pessimistic figure; RDP is looser, not wildly
    exact = epsilon_total(GAUSS, 30)
    assert GAUSS.accountant == "gdp" and exact <= epsilon_total(pld_cfg, 30) <= 1.002 * exact
    assert exact < epsilon_total(rdp_cfg, 30) < 1.5 * exact


def test_report_per_hmu() -> None:
    report = privacy_report(GAUSS, 30)
    assert report["mechanism"] == "gaussian"
    assert report["epsilon_per_round"] == 0.5
    assert report["delta"] == 1e-5
    assert report["epsilon_total"] == pytest.approx(epsilon_total(GAUSS, 30))
    laplace = privacy_report(PrivacyConfig(mechanism="laplace", epsilon=0.5, clip=0.01), 4)
    assert (laplace["epsilon_total"], laplace["delta"], laplace["clip"]) == (2.0, 0.0, 0.01)
    none = privacy_report(PrivacyConfig(), 30)
    assert none["epsilon_total"] is None and none["mechanism"] == "none"


def test_per_parameter_laplace_costs_d_times_epsilon_per_update() -> None:
    cfg = PrivacyConfig(mechanism="laplace", epsilon=0.5, unit="parameter")
    report = privacy_report(cfg, 30, parameters=6593)
    assert report["epsilon_per_parameter"] == 0.5
    assert report["epsilon_per_round"] == pytest.approx(0.5 * 6593)
    assert report["epsilon_total"] == pytest.approx(30 * 0.5 * 6593)
    acc = PrivacyAccountant(cfg, parameters=10)
    acc.record(1)
    acc.record(2)
    assert acc.epsilon_spent() == pytest.approx(10.0)
    with pytest.raises(ValueError, match="number of parameters"):
        epsilon_total(cfg, 3)


def test_accountant_counts_releases() -> None:
    acc = PrivacyAccountant(PrivacyConfig(mechanism="laplace", epsilon=0.25))
    for round_no in (1, 2, 5):
        acc.record(round_no)
    assert acc.releases == 3
    assert acc.epsilon_spent() == 0.75
    assert acc.report()["epsilon_total"] == 0.75
    with pytest.raises(ValueError, match="already recorded"):
        acc.record(5)
