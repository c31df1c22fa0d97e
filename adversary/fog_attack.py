"""An insider at the fog tier: a compromised fog aggregator that tampers with its partial.

SAFE-MED separates a "semi-trustworthy" fog (it aggregates honestly) from a "fully
compromised" one. The compromised fog here does one of (``action``):

* ``flip``: sends ``previous - scale * (partial - previous)``, its HMUs' progress
  reversed and boosted;
* ``scale``: sends ``previous + scale * (partial - previous)``, boosted;
* ``replace``: sends ``previous`` plus Gaussian noise of standard deviation ``scale``
  per parameter, a model of its own making;
* ``drop``: drops its HMUs' work and sends ``previous`` unchanged with their samples,
  a free rider that slows the federation.

It always claims the samples of the HMUs it heard from, so its partial weighs what an
honest one would. ``tamper`` is pure; the fog aggregator calls it just before sending.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from iomt.fedlearn.model import Weights
from iomt.strict import Strict

FogAction = Literal["flip", "scale", "replace", "drop"]


class MaliciousFog(Strict):
    """``attacks.malicious_fog``: which fog is compromised, what it does, from when."""

    fog: str = Field(pattern=r"^fog-[0-9]{2,3}$", description="fog-01 .. the compromised fog")
    action: FogAction = "flip"
    scale: float = Field(10.0, ge=0, description="factor (flip, scale) or noise std (replace)")
    start_round: int = Field(1, ge=1, le=100_000)


def tamper(
    partial: Weights, previous: Weights, attack: MaliciousFog, rng: np.random.Generator
) -> Weights:
    """The partial the compromised fog sends instead of ``partial``."""
    if attack.action == "drop":
        return {k: v.copy() for k, v in previous.items()}
    if attack.action == "replace":
        return {
            k: (v + rng.normal(0.0, attack.scale, v.shape)).astype(v.dtype)
            for k, v in previous.items()
        }
    factor = -attack.scale if attack.action == "flip" else attack.scale
    return {k: (previous[k] + factor * (partial[k] - previous[k])).astype(partial[k].dtype)
            for k in partial}  # fmt: skip
