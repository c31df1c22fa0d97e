"""Privacy budget spent by an HMU over a run: composition of its per-round releases.

Each round an HMU takes part in, it releases one privatised update (``iomt.fedlearn.privacy``).

* **Laplace** releases are pure ``epsilon``-DP; ``T`` of them compose to
  ``T * epsilon`` (basic composition, Dwork et al., 2006; Dwork and Roth, 2014, thm 3.16).
  Under ``unit: parameter`` (FedQ's reading) one update is ``d`` per-parameter
  releases of ``epsilon`` each, so one round costs ``d * epsilon``.
* **Gaussian** releases with noise multiplier ``z`` compose exactly to one
  ``sqrt(T) / z``-GDP mechanism (``gdp``, the default: Dong, Roth and Su, 2022;
  ``iomt.fedlearn.gaussian_dp``), or by dp_accounting (Google's maintained library):
  the privacy loss distribution accountant (``pld``; Koskela et al., 2020; Doroshenko
  et al., 2022), a pessimistic discretisation within 0.2 % of the exact figure that
  takes half a minute at ``z`` = 0.15, or Rényi DP (``rdp``; Mironov, 2017), which is
  looser.  The total epsilon is stated at the scenario's ``delta``.

No amplification by subsampling is claimed: the server knows whom it invites, so an
HMU that is selected spends its full per-round budget.
"""

from __future__ import annotations

import functools
from typing import Any

from iomt.fedlearn.defence_config import PrivacyConfig
from iomt.fedlearn.privacy import gaussian_noise_multiplier

ACCOUNTANTS = {"gdp": "gaussian-dp-exact", "pld": "dp-accounting-pld", "rdp": "dp-accounting-rdp"}


@functools.lru_cache(maxsize=256)
def _gaussian_epsilon(z: float, releases: int, delta: float, accountant: str) -> float:
    if accountant == "gdp":
        from iomt.fedlearn.gaussian_dp import composed_epsilon

        return composed_epsilon(z, releases, delta)
    import dp_accounting

    if accountant == "pld":
        from dp_accounting.pld import pld_privacy_accountant

        acc: Any = pld_privacy_accountant.PLDAccountant()
    else:
        from dp_accounting.rdp import rdp_privacy_accountant

        acc = rdp_privacy_accountant.RdpAccountant()
    acc.compose(dp_accounting.GaussianDpEvent(z), releases)
    return float(acc.get_epsilon(delta))


def epsilon_per_update(cfg: PrivacyConfig, parameters: int | None = None) -> float:
    """Epsilon of one released update: ``cfg.epsilon``, or ``d`` times it per parameter.

    ``parameters`` (``d``) is needed only under ``unit: parameter``.
    """
    if cfg.unit == "update":
        return cfg.epsilon
    if parameters is None or parameters < 1:
        raise ValueError("unit: parameter needs the number of parameters in an update")
    return parameters * cfg.epsilon


def epsilon_total(cfg: PrivacyConfig, releases: int, parameters: int | None = None) -> float:
    """Epsilon of ``releases`` updates released under ``cfg`` (0.0 for none).

    Gaussian totals hold at ``cfg.delta``; Laplace totals are pure (delta 0).  Without a
    mechanism there is no guarantee at all, which ``privacy_report`` states as ``None``.
    ``parameters`` is the update's size, needed only under ``unit: parameter``.
    """
    if releases < 0:
        raise ValueError(f"releases must be non-negative, got {releases}")
    if cfg.mechanism == "none" or releases == 0:
        return 0.0
    if cfg.mechanism == "laplace":
        return releases * epsilon_per_update(cfg, parameters)
    z = gaussian_noise_multiplier(cfg.epsilon, cfg.delta)
    return _gaussian_epsilon(z, releases, cfg.delta, cfg.accountant)


def privacy_report(
    cfg: PrivacyConfig, releases: int, parameters: int | None = None
) -> dict[str, Any]:
    """The ``privacy`` entry of one HMU in results.json.

    ``{mechanism, epsilon_per_round, epsilon_total, delta}`` plus ``unit``, ``rounds``
    (updates released), ``clip``, ``noise_std`` (per parameter) and ``accountant``.
    ``epsilon_per_round`` is what one whole update costs; under ``unit: parameter`` it
    is ``d`` times the configured ``epsilon``, which is kept as ``epsilon_per_parameter``.
    Without a mechanism the epsilons and delta are ``None``: no guarantee.
    """
    from iomt.fedlearn.privacy import noise_std

    if cfg.mechanism == "none":
        return {
            "mechanism": "none",
            "unit": cfg.unit,
            "epsilon_per_round": None,
            "epsilon_total": None,
            "delta": None,
            "rounds": releases,
            "clip": None,
            "noise_std": 0.0,
            "accountant": None,
        }
    laplace = cfg.mechanism == "laplace"
    report = {
        "mechanism": cfg.mechanism,
        "unit": cfg.unit,
        "epsilon_per_round": epsilon_per_update(cfg, parameters) if laplace else cfg.epsilon,
        "epsilon_total": epsilon_total(cfg, releases, parameters),
        "delta": 0.0 if laplace else cfg.delta,
        "rounds": releases,
        "clip": cfg.bound,
        "noise_std": noise_std(cfg),
        "accountant": "basic-composition" if laplace else ACCOUNTANTS[cfg.accountant],
    }
    if cfg.unit == "parameter":
        report["epsilon_per_parameter"] = cfg.epsilon
    return report


class PrivacyAccountant:
    """Counts one HMU's releases and reports what they cost; ``record`` once per update sent."""

    def __init__(self, cfg: PrivacyConfig, parameters: int | None = None) -> None:
        self.cfg = cfg
        self.parameters = parameters
        self.rounds: list[int] = []

    def record(self, round_no: int) -> None:
        """Note that an update privatised under ``cfg`` was released in ``round_no``."""
        if round_no in self.rounds:
            raise ValueError(f"round {round_no} already recorded")
        self.rounds.append(round_no)

    @property
    def releases(self) -> int:
        """How many updates were released so far."""
        return len(self.rounds)

    def epsilon_spent(self) -> float:
        """Total epsilon so far (at ``cfg.delta`` for Gaussian)."""
        return epsilon_total(self.cfg, self.releases, self.parameters)

    def report(self) -> dict[str, Any]:
        """``privacy_report`` for the releases recorded so far."""
        return privacy_report(self.cfg, self.releases, self.parameters)
