"""An HMU's round message: training, then attack or privacy noise, then compression."""

import numpy as np
import pytest

from iomt.fedlearn.compression import decompress
from iomt.fedlearn.config import TrainingConfig
from iomt.fedlearn.defence_config import (
    AttackConfig,
    AttackEntry,
    AttackSchedule,
    CompressionConfig,
    PrivacyConfig,
)
from iomt.fedlearn.model import init_weights
from iomt.fedlearn.pipeline import build_pipeline
from iomt.hmu_agent.local_update import local_update

CFG = TrainingConfig(epochs=1)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 6)).astype(np.float32)
    y = (x[:, 0] > 0.8).astype(np.int64)
    return init_weights(6, CFG.hidden, 0), x, y


def pipeline(
    attack: AttackEntry | None = None,
    privacy: PrivacyConfig | None = None,
    compression: CompressionConfig | None = None,
):
    """The steps for hmu-01, which attacks from round 1 when ``attack`` is given."""
    attacks = AttackConfig(entries=(attack,) if attack else ())
    return build_pipeline(
        attacks=attacks,
        privacy=privacy or PrivacyConfig(),
        compression=compression or CompressionConfig(),
        hmus=("hmu-01",),
        seed=0,
    )


def norm(a, b):
    return float(np.sqrt(sum(((a[k] - b[k]) ** 2).sum() for k in a)))


def test_honest_dense_update_is_the_trained_weights(data):
    w, x, y = data
    update = local_update(w, x, y, CFG, seed=1)
    assert update.update.encoding == ()
    assert norm(update.update.tensors, update.result.weights) == 0.0


def test_sign_flip_attack_reverses_and_scales_the_update(data):
    w, x, y = data
    honest = local_update(w, x, y, CFG, seed=1).update
    every_round = AttackSchedule(start_round=1, share_start=1.0)
    attack = AttackEntry(kind="sign-flip", scale=10.0, schedule=every_round)
    steps = pipeline(attack, privacy=PrivacyConfig(mechanism="laplace"))
    evil = local_update(w, x, y, CFG, seed=1, pipeline=steps).update
    assert evil.poisoned
    for k in w:  # no DP noise on the attacker's update: exactly -10 x the honest step
        np.testing.assert_allclose(
            evil.tensors[k] - w[k], -10 * (honest.tensors[k] - w[k]), atol=1e-5
        )


def test_privacy_noise_is_added_only_by_honest_hmus(data):
    w, x, y = data
    plain = local_update(w, x, y, CFG, seed=1).update
    steps = pipeline(privacy=PrivacyConfig(mechanism="gaussian", epsilon=1.0))
    noisy = local_update(w, x, y, CFG, seed=1, pipeline=steps).update
    assert norm(noisy.tensors, plain.tensors) > 0.01


def test_compressed_update_decodes_close_to_the_dense_one(data):
    w, x, y = data
    steps = pipeline(compression=CompressionConfig(kind="quant8"))
    packed = local_update(w, x, y, CFG, seed=1, pipeline=steps)
    assert packed.update.encoding == ("quant8",)
    restored = decompress(packed.update.tensors, w)
    dense = packed.result.weights
    assert norm(restored, dense) < 0.05 * norm(dense, w) + 1e-6


def test_training_hands_back_the_pipeline_state_for_the_agent_to_carry(data):
    """A worker process trains a copy of the pipeline: what comes back is its state
    (top-k's error-feedback residual here), which the agent restores into its own."""
    w, x, y = data
    worker_copy = pipeline(compression=CompressionConfig(kind="topk", k=0.1))
    done = local_update(w, x, y, CFG, seed=1, pipeline=worker_copy)
    assert set(done.pipeline_state) == {"0.residual"}
    assert np.abs(done.pipeline_state["0.residual"]).sum() > 0  # 90 % of the update held back
    agents = pipeline(compression=CompressionConfig(kind="topk", k=0.1))
    agents.restore(done.pipeline_state)
    np.testing.assert_array_equal(agents.state()["0.residual"], done.pipeline_state["0.residual"])
