"""What an HMU sends for a round: train, then (if scheduled) attack, privatise, compress.

The order is the one a real HMU would follow: a Byzantine HMU poisons its data
(label flipping) or its update (sign flipping, scaling, noise); an honest HMU clips
and adds its differential-privacy noise to the update; every HMU compresses (top-k
with error feedback, 8-bit codes). Encryption comes last, in the runner. Runs in a
worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedlearn.attacks import apply_update_attack, flip_labels
from fedlearn.compression import Compressor
from fedlearn.config import TrainingConfig
from fedlearn.defence_config import AttackEntry, CompressionConfig, PrivacyConfig
from fedlearn.model import Weights
from fedlearn.privacy import privatize
from fedlearn.train import OptimiserState, TrainResult, train_local


@dataclass(frozen=True)
class LocalUpdate:
    """The tensors to send, how they are encoded, and the training figures.

    ``compressor`` is the compressor after this round (its error-feedback residual
    moved on); when the work ran in another process it is the copy to keep.
    """

    tensors: dict[str, np.ndarray]
    encoding: str
    result: TrainResult
    compressor: Compressor | None = None


def local_update(
    global_w: Weights,
    x: np.ndarray,
    y: np.ndarray,
    training: TrainingConfig,
    seed: int,
    *,
    attack: AttackEntry | None = None,
    privacy: PrivacyConfig | None = None,
    compression: CompressionConfig | None = None,
    compressor: Compressor | None = None,
    optimiser_state: OptimiserState | None = None,
) -> LocalUpdate:
    """Train from ``global_w``, then poison, privatise and compress as configured.

    ``optimiser_state`` is the HMU's from its last round (``result.optimiser_state``).
    """
    rng = np.random.default_rng([seed, 0xA77])
    if attack is not None and attack.kind == "label-flip":
        y = flip_labels(y, rng, attack.flip_fraction)
    result = train_local(global_w, x, y, training, seed, optimiser_state)
    weights = result.weights
    if attack is not None and attack.kind != "label-flip":
        weights = apply_update_attack(global_w, weights, attack.kind, attack.scale, rng)
    if attack is None and privacy is not None and privacy.mechanism != "none":
        # an attacker wants its poison to arrive intact, so it adds no noise
        weights = privatize(global_w, weights, privacy, rng)
    if compression is not None and compression.kind != "none":
        assert compressor is not None, "compression needs the HMU's compressor (error feedback)"
        payload = compressor.compress(global_w, weights)
        return LocalUpdate(payload, compression.kind, result, compressor)
    return LocalUpdate(weights, "dense", result)
