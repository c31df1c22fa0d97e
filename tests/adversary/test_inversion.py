"""Gradient inversion: a plaintext single-step gradient of one record gives the record
back; the same gradient under DP with a small epsilon does not.  Seeded; records are
standardised rows of the real dataset where it is present."""

import numpy as np
import pytest

from iomt.adversary import inversion as inv
from iomt.fedlearn.config import TrainingConfig
from iomt.fedlearn.model import init_weights
from iomt.fedlearn.privacy import gaussian_mechanism
from iomt.fedlearn.train import train_local


@pytest.fixture(scope="module")
def rows() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 34)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


WEIGHTS = init_weights(34, (64, 64), 1)


@pytest.mark.parametrize("method", ["cosine", "l2"])
def test_one_records_plaintext_gradient_gives_the_record_back(rows, method):
    x, y = rows[0][:1], rows[1][:1]
    gradient = inv.batch_gradient(WEIGHTS, x, y)
    assert inv.idlg_label(WEIGHTS, gradient) == y[0]
    # three random starts, as an attacker would: DLG's L-BFGS from one bad start may
    # settle far from the record (the CPU's rounding decides which start is bad)
    result = inv.invert(WEIGHTS, gradient, 1, method=method, steps=600, seed=1, restarts=3)
    scores = inv.score(result.rows, x)
    assert scores["ssim"] > 0.95 and scores["psnr"] > 25
    assert result.labels[0] == y[0]


def test_the_start_left_nearest_the_gradient_is_kept(rows):
    x, y = rows[0][:1], rows[1][:1]
    gradient = inv.batch_gradient(WEIGHTS, x, y)
    tries = [inv.invert(WEIGHTS, gradient, 1, method="l2", steps=50, seed=s) for s in (1, 2, 3)]
    best = inv.invert(WEIGHTS, gradient, 1, method="l2", steps=50, seed=1, restarts=3)
    assert best.distance == min(t.distance for t in tries)
    with pytest.raises(ValueError, match="restarts"):
        inv.invert(WEIGHTS, gradient, 1, restarts=0)


def test_under_dp_with_a_small_epsilon_the_record_is_not_recovered(rows):
    x, y = rows[0][:1], rows[1][:1]
    gradient = inv.batch_gradient(WEIGHTS, x, y)
    noisy = gaussian_mechanism(gradient, 1.0, 1.0, 1e-5, np.random.default_rng(2))
    result = inv.invert(WEIGHTS, noisy, 1, labels=y, steps=600, seed=1, restarts=3)
    assert inv.score(result.rows, x)["ssim"] < 0.3


def test_a_batch_is_recovered_worse_than_one_record_and_the_rows_are_paired(rows):
    x, y = rows[0][:8], rows[1][:8]
    result = inv.invert(WEIGHTS, inv.batch_gradient(WEIGHTS, x, y), 8, labels=y, steps=600)
    scores = inv.score(result.rows, x)
    assert 0 < scores["ssim"] < 0.95 and len(scores["r2_per_feature"]) == 34
    shuffled = inv.score(x[::-1] + 1e-3, x)  # pairing undoes the order
    assert shuffled["ssim"] > 0.99 and shuffled["r2_median"] > 0.99
    with pytest.raises(ValueError, match="labels"):
        inv.invert(WEIGHTS, inv.batch_gradient(WEIGHTS, x, y), 8)


def test_a_multi_step_sgd_updates_direction_still_points_at_its_record(rows):
    x, y = rows[0][:1], rows[1][:1]
    cfg = TrainingConfig(epochs=2, batch_size=1, class_weight="none", optimizer="sgd")
    local = train_local(WEIGHTS, x, y, cfg, seed=0).weights
    direction = inv.update_direction(WEIGHTS, local)
    result = inv.invert(WEIGHTS, direction, 1, steps=600, seed=1)
    assert inv.score(result.rows, x)["ssim"] > 0.8
