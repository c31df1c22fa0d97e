"""What an HMU sends for a round: train, then run the update pipeline (attack, DP, compression).

The steps and their order come from the scenario (``iomt.fedlearn.pipeline``); the
AEAD seal comes last, in the runner.  Runs in a worker thread or process: the
pipeline goes in, and its carried state (compression's error-feedback residual) comes
back as arrays, as does the optimiser's state.  The pipeline itself does not come back:
its neural cipher's encoder would be unpickled in the agent's process every round.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from iomt.fedlearn.config import TrainingConfig
from iomt.fedlearn.model import Weights
from iomt.fedlearn.pipeline import RoundContext, Update, UpdatePipeline
from iomt.fedlearn.train import OptimiserState, TrainResult, train_local


@dataclass(frozen=True)
class LocalUpdate:
    """The update to send, the training figures, and the pipeline's state after this round."""

    update: Update
    result: TrainResult
    pipeline_state: dict[str, np.ndarray]


def local_update(
    global_w: Weights,
    x: np.ndarray,
    y: np.ndarray,
    training: TrainingConfig,
    seed: int,
    *,
    hmu: str = "hmu-01",
    round_: int = 1,
    pipeline: UpdatePipeline | None = None,
    optimiser_state: OptimiserState | None = None,
    cipher_key: bytes | None = None,
) -> LocalUpdate:
    """Train from ``global_w``, then run ``pipeline`` on the result.

    ``optimiser_state`` is the HMU's from its last round (``result.optimiser_state``);
    ``cipher_key`` the round's key material when the update goes out under a keyed cipher.
    """
    pipeline = pipeline or UpdatePipeline()
    ctx = RoundContext(hmu, round_, global_w, np.random.default_rng([seed, 0xA77]), cipher_key)
    x, y = pipeline.prepare(ctx, x, y)
    result = train_local(global_w, x, y, training, seed, optimiser_state)
    update = pipeline.encode(ctx, result.weights)
    return LocalUpdate(update, result, pipeline.state())
