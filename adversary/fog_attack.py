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

import numpy as np

from iomt.fedlearn.defence_config import MaliciousFog
from iomt.fedlearn.model import Weights


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
