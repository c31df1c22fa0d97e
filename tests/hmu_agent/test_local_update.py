"""An HMU's round message: training, then attack or privacy noise, then compression."""

import numpy as np
import pytest

from fedlearn.compression import Compressor, decompress
from fedlearn.config import TrainingConfig
from fedlearn.defence_config import AttackEntry, CompressionConfig, PrivacyConfig
from fedlearn.model import init_weights
from hmu_agent.local_update import local_update

CFG = TrainingConfig(epochs=1)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 6)).astype(np.float32)
    y = (x[:, 0] > 0.8).astype(np.int64)
    return init_weights(6, CFG.hidden, 0), x, y


def norm(a, b):
    return float(np.sqrt(sum(((a[k] - b[k]) ** 2).sum() for k in a)))


def test_honest_dense_update_is_the_trained_weights(data):
    w, x, y = data
    update = local_update(w, x, y, CFG, seed=1)
    assert update.encoding == "dense"
    assert norm(update.tensors, update.result.weights) == 0.0


def test_sign_flip_attack_reverses_and_scales_the_update(data):
    w, x, y = data
    honest = local_update(w, x, y, CFG, seed=1)
    attack = AttackEntry(kind="sign-flip", scale=10.0)
    evil = local_update(
        w, x, y, CFG, seed=1, attack=attack, privacy=PrivacyConfig(mechanism="laplace")
    )
    for k in w:  # no DP noise on the attacker's update: exactly -10 x the honest step
        np.testing.assert_allclose(
            evil.tensors[k] - w[k], -10 * (honest.tensors[k] - w[k]), atol=1e-5
        )


def test_privacy_noise_is_added_only_by_honest_hmus(data):
    w, x, y = data
    plain = local_update(w, x, y, CFG, seed=1)
    noisy = local_update(
        w, x, y, CFG, seed=1, privacy=PrivacyConfig(mechanism="gaussian", epsilon=1.0)
    )
    assert norm(noisy.tensors, plain.tensors) > 0.01


def test_compressed_update_decodes_close_to_the_dense_one(data):
    w, x, y = data
    cfg = CompressionConfig(kind="quant8")
    packed = local_update(w, x, y, CFG, seed=1, compression=cfg, compressor=Compressor(cfg))
    assert packed.encoding == "quant8"
    restored = decompress(packed.tensors, w)
    dense = packed.result.weights
    assert norm(restored, dense) < 0.05 * norm(dense, w) + 1e-6
