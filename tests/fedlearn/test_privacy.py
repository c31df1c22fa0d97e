"""Tests of the clipping and noise mechanisms of local differential privacy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from iomt.fedlearn.defence_config import PrivacyConfig
from iomt.fedlearn.model import init_weights
from iomt.fedlearn.privacy import (
    clip_box,
    clip_l1,
    clip_l2,
    gaussian_mechanism,
    gaussian_noise_multiplier,
    laplace_mechanism,
    laplace_per_parameter,
    laplace_scale,
    noise_std,
    privatize,
)
from iomt.fedlearn.updates import delta, flatten


def test_clip_l1_bounds_the_norm_exactly_and_keeps_direction() -> None:
    v = np.random.default_rng(0).normal(size=1000)
    clipped = clip_l1(v, 3.0)
    assert np.abs(clipped).sum() == pytest.approx(3.0, rel=1e-12)
    np.testing.assert_allclose(clipped / np.abs(clipped).sum(), v / np.abs(v).sum())
    small = v * (1.0 / np.abs(v).sum())  # L1 norm 1 < 3: untouched
    np.testing.assert_array_equal(clip_l1(small, 3.0), small)


def test_clip_l2_bounds_the_norm_exactly_and_keeps_direction() -> None:
    v = np.random.default_rng(1).normal(size=1000)
    clipped = clip_l2(v, 0.5)
    assert np.linalg.norm(clipped) == pytest.approx(0.5, rel=1e-12)
    np.testing.assert_allclose(clipped / 0.5, v / np.linalg.norm(v))
    np.testing.assert_array_equal(clip_l2(v * 1e-6, 0.5), v * 1e-6)
    with pytest.raises(ValueError):
        clip_l2(v, 0.0)


def test_laplace_noise_has_scale_sensitivity_over_epsilon() -> None:
    # Mean |X| of Lap(0, b) is b; over 200k draws its relative error has sd 1/sqrt(2e5)
    # = 0.22 %, so a 1.5 % tolerance is more than 6 sd.
    n, sensitivity, epsilon = 200_000, 1.0, 0.5
    noisy = laplace_mechanism(np.zeros(n), sensitivity, epsilon, np.random.default_rng(2))
    assert laplace_scale(sensitivity, epsilon) == 2.0
    assert np.abs(noisy).mean() == pytest.approx(2.0, rel=0.015)
    assert abs(np.median(noisy)) < 0.05


def test_per_parameter_laplace_clips_each_entry_and_adds_noise_of_bound_over_epsilon() -> None:
    v = np.array([-3.0, -0.004, 0.0, 0.002, 5.0])
    np.testing.assert_array_equal(clip_box(v, 0.01), [-0.01, -0.004, 0.0, 0.002, 0.01])
    with pytest.raises(ValueError):
        clip_box(v, 0.0)
    # Mean |X| of Lap(0, b) with b = 0.01 / 0.5 = 0.02; 200k draws, tolerance 1.5 % (6 sd)
    noisy = laplace_per_parameter(np.full(200_000, 7.0), 0.01, 0.5, np.random.default_rng(4))
    assert np.abs(noisy - 0.01).mean() == pytest.approx(0.02, rel=0.015)


def test_per_parameter_unit_is_laplace_only() -> None:
    with pytest.raises(ValueError, match="laplace only"):
        PrivacyConfig(mechanism="gaussian", unit="parameter")
    assert PrivacyConfig(mechanism="laplace", unit="parameter").bound == 3e-2


def test_gaussian_multiplier_is_calibrated_by_the_library_and_beats_the_classic_bound() -> None:
    import dp_accounting
    from dp_accounting.pld import pld_privacy_accountant

    z = gaussian_noise_multiplier(0.5, 1e-5)
    acc = pld_privacy_accountant.PLDAccountant()
    acc.compose(dp_accounting.GaussianDpEvent(z))
    assert acc.get_epsilon(1e-5) == pytest.approx(0.5, abs=1e-3)
    classic = math.sqrt(2 * math.log(1.25 / 1e-5)) / 0.5
    assert 0.5 * classic < z < classic


def test_gaussian_noise_has_the_calibrated_sd() -> None:
    # sample sd over 200k draws: relative sd 1/sqrt(4e5) = 0.16 %; tolerance 1 %.
    z = gaussian_noise_multiplier(0.5, 1e-5)
    noisy = gaussian_mechanism(np.zeros(200_000), 0.01, 0.5, 1e-5, np.random.default_rng(3))
    assert noisy.std() == pytest.approx(z * 0.01, rel=0.01)
    cfg = PrivacyConfig(mechanism="gaussian", epsilon=0.5, delta=1e-5, clip=0.01)
    assert noise_std(cfg) == pytest.approx(z * 0.01)


def test_privatize_clips_the_update_and_adds_it_back_to_the_global_weights() -> None:
    g = init_weights(6, (5,), seed=0)
    local = init_weights(6, (5,), seed=1)
    update = flatten(delta(g, local))
    # epsilon so large that the noise (Laplace b = 5e-5, sd 7e-5) is small next to the
    # clipped update; 5e-4 is 7 sd
    cfg = PrivacyConfig(mechanism="laplace", epsilon=1e4, clip=0.5)
    out = privatize(g, local, cfg, np.random.default_rng(4))
    released = flatten(delta(g, out))
    assert np.abs(update).sum() > 0.5  # the bound binds
    np.testing.assert_allclose(released, clip_l1(update, 0.5), atol=5e-4)
    assert all(out[k].dtype == np.float32 and out[k].shape == g[k].shape for k in g)
    plain = privatize(g, local, PrivacyConfig(), np.random.default_rng(4))
    for key in g:
        np.testing.assert_allclose(plain[key], local[key], atol=1e-6)


def test_privatize_is_seeded_and_leaves_its_inputs_alone() -> None:
    g = init_weights(4, (3,), seed=0)
    local = init_weights(4, (3,), seed=1)
    before = {k: v.copy() for k, v in local.items()}
    cfg = PrivacyConfig(mechanism="gaussian", epsilon=0.5, clip=0.1)
    a = privatize(g, local, cfg, np.random.default_rng(5))
    b = privatize(g, local, cfg, np.random.default_rng(5))
    for key in g:
        np.testing.assert_array_equal(a[key], b[key])
        np.testing.assert_array_equal(local[key], before[key])
