"""Local differential privacy of a model update at the HMU: clipping and noise mechanisms.

Both mechanisms act on the update ``u = local - global`` flattened into one vector of
``d`` parameters, and hand back ``global + noisy(u)``:

* **Laplace** (FedQ eq. 1, ``M(D) = f(D) + Lap(Delta f / epsilon)``; Dwork et al., 2006):
  ``u`` is scaled down to L1 norm at most ``C`` (``u * min(1, C / ||u||_1)``), then every
  parameter gets independent ``Lap(0, b)`` noise with ``b = C / epsilon``.  After the
  clipping the L1 sensitivity of the whole vector is ``Delta f = C``, so one release is
  ``epsilon``-DP.
* **Gaussian** (SAFE-MED; Dwork and Roth, 2014, sec. 3.5.3): ``u`` is scaled down to L2
  norm at most ``C``, then every parameter gets ``N(0, (z C)^2)``.  The noise multiplier
  ``z`` is the smallest for which one release is ``(epsilon, delta)``-DP, solved from
  the Gaussian mechanism's exact privacy curve (the analytic Gaussian of Balle and
  Wang, 2018; ``iomt.fedlearn.gaussian_dp``), not from the classic
  ``sqrt(2 ln(1.25 / delta)) / epsilon`` bound, which is looser.

**Per parameter** (``unit: parameter``, FedQ's reading of eq. 1, which perturbs "the
local model" with ``Lap(Delta f / epsilon)`` and calls the result epsilon-DP): every
parameter is clipped to ``[-C, C]`` and gets ``Lap(0, C / epsilon)``.  Each parameter on
its own is then ``epsilon``-DP, but the update is ``d`` such releases about the same
data, so the update is only ``d * epsilon``-DP (basic composition; equivalently the L1
sensitivity of the box-clipped vector is ``d C``).  The accountant reports that figure.

Neighbouring updates are one HMU's clipped update and the zero update (add/remove
one HMU, as in DP-FedAvg, McMahan et al., 2018, and dp_accounting's default
``ADD_OR_REMOVE_ONE``).  Under replace-one neighbouring the sensitivity doubles and the
same noise gives ``2 epsilon``.

What this does to utility: the noise added per parameter is ``C / epsilon`` (Laplace)
or ``z C`` (Gaussian) whatever ``C`` is, while a clipped update carries at most ``C``
in total, so the noise-to-signal ratio is about ``d / epsilon`` (Laplace, L1) or
``z sqrt(d)`` (Gaussian, L2) once the bound binds, independent of ``C``.  With FedQ's
``epsilon = 0.5`` per round and the 6.5k-parameter IDS MLP the noise swamps every
update: a small ``C`` only keeps the noisy model near its starting point instead of
letting the noise random-walk it away.  bench/robustness.py measures it, and
``iomt.fedlearn.defence_config`` explains the default bounds.
"""

from __future__ import annotations

import functools
import logging

import numpy as np

from iomt.fedlearn.defence_config import PrivacyConfig
from iomt.fedlearn.model import Weights
from iomt.fedlearn.updates import apply_delta, delta, flatten, unflatten

log = logging.getLogger(__name__)


def clip_l1(vector: np.ndarray, bound: float) -> np.ndarray:
    """``vector * min(1, bound / ||vector||_1)``: L1 norm at most ``bound``, direction kept."""
    if bound <= 0:
        raise ValueError(f"the L1 bound must be positive, got {bound}")
    vector = np.asarray(vector, np.float64)
    norm = float(np.abs(vector).sum())
    return vector * (bound / norm) if norm > bound else vector.copy()


def clip_l2(vector: np.ndarray, bound: float) -> np.ndarray:
    """``vector * min(1, bound / ||vector||_2)``: L2 norm at most ``bound``, direction kept."""
    if bound <= 0:
        raise ValueError(f"the L2 bound must be positive, got {bound}")
    vector = np.asarray(vector, np.float64)
    norm = float(np.linalg.norm(vector))
    return vector * (bound / norm) if norm > bound else vector.copy()


def clip_box(vector: np.ndarray, bound: float) -> np.ndarray:
    """Every entry clipped to ``[-bound, bound]``: an L-infinity bound of ``bound``."""
    if bound <= 0:
        raise ValueError(f"the per-parameter bound must be positive, got {bound}")
    return np.clip(np.asarray(vector, np.float64), -bound, bound)


def laplace_scale(sensitivity: float, epsilon: float) -> float:
    """The Laplace noise scale ``b = Delta f / epsilon`` of FedQ eq. 1."""
    if sensitivity <= 0 or epsilon <= 0:
        raise ValueError(f"sensitivity and epsilon must be positive: {sensitivity}, {epsilon}")
    return sensitivity / epsilon


@functools.lru_cache(maxsize=64)
def gaussian_noise_multiplier(epsilon: float, delta: float) -> float:
    """Smallest ``z = sigma / C`` making one Gaussian release ``(epsilon, delta)``-DP.

    Exact, from the Gaussian mechanism's closed form (``iomt.fedlearn.gaussian_dp``);
    it agrees with dp_accounting's privacy loss distribution calibration to 1e-6.
    """
    from iomt.fedlearn.gaussian_dp import noise_multiplier

    z = noise_multiplier(epsilon, delta)
    log.debug("gaussian noise multiplier for (%g, %g)-DP: %.4f", epsilon, delta, z)
    return z


def noise_std(cfg: PrivacyConfig) -> float:
    """Standard deviation of the noise added to each parameter (0 without a mechanism)."""
    if cfg.mechanism == "none":
        return 0.0
    if cfg.mechanism == "laplace":
        return float(np.sqrt(2.0) * laplace_scale(cfg.bound, cfg.epsilon))
    return gaussian_noise_multiplier(cfg.epsilon, cfg.delta) * cfg.bound


def laplace_mechanism(
    vector: np.ndarray, sensitivity: float, epsilon: float, rng: np.random.Generator
) -> np.ndarray:
    """Clip ``vector`` to L1 norm ``sensitivity``, add ``Lap(sensitivity / epsilon)`` per entry."""
    clipped = clip_l1(vector, sensitivity)
    return clipped + rng.laplace(0.0, laplace_scale(sensitivity, epsilon), size=clipped.shape)


def laplace_per_parameter(
    vector: np.ndarray, bound: float, epsilon: float, rng: np.random.Generator
) -> np.ndarray:
    """Clip every entry to ``[-bound, bound]``, add ``Lap(bound / epsilon)`` per entry."""
    clipped = clip_box(vector, bound)
    return clipped + rng.laplace(0.0, laplace_scale(bound, epsilon), size=clipped.shape)


def gaussian_mechanism(
    vector: np.ndarray, clip: float, epsilon: float, delta: float, rng: np.random.Generator
) -> np.ndarray:
    """Clip ``vector`` to L2 norm ``clip``, add ``N(0, (z clip)^2)`` per entry (z calibrated)."""
    clipped = clip_l2(vector, clip)
    sigma = gaussian_noise_multiplier(epsilon, delta) * clip
    return clipped + rng.normal(0.0, sigma, size=clipped.shape)


def privatize_update(
    vector: np.ndarray, cfg: PrivacyConfig, rng: np.random.Generator
) -> np.ndarray:
    """The update vector after ``cfg``'s mechanism (a copy when the mechanism is ``none``)."""
    if cfg.mechanism == "none":
        return np.array(vector, dtype=np.float64)
    if cfg.mechanism == "laplace" and cfg.unit == "parameter":
        return laplace_per_parameter(vector, cfg.bound, cfg.epsilon, rng)
    if cfg.mechanism == "laplace":
        return laplace_mechanism(vector, cfg.bound, cfg.epsilon, rng)
    return gaussian_mechanism(vector, cfg.bound, cfg.epsilon, cfg.delta, rng)


def privatize(
    global_w: Weights, local_w: Weights, cfg: PrivacyConfig, rng: np.random.Generator
) -> Weights:
    """Local weights to release: ``global + mechanism(local - global)`` (FedQ eq. 1).

    With ``mechanism = "none"`` the local weights come back unchanged (as float32).
    """
    update = delta(global_w, local_w)
    noisy = privatize_update(flatten(update), cfg, rng)
    return apply_delta(global_w, unflatten(noisy, update))
