"""Typed scenario sections for privacy, attacks, defences and compression.

The lead adds them to the ``Scenario`` as ``privacy``, ``attacks``, ``defence`` and
``compression``.  Every default leaves the federation as plain FedAvg: no noise, no
attacker, no screening, dense float32 updates.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from iomt.strict import Strict

DEFAULT_LAPLACE_SENSITIVITY = 1e-2
"""Default L1 bound (= sensitivity) of a Laplace-privatised update.

Chosen for FedQ's epsilon = 0.5 per round, where no bound keeps utility (see
``iomt.fedlearn.privacy``): in bench/robustness.py (K = 20, 30 rounds) 0.01 did the least
harm (ROC AUC 0.70 against 0.85 without DP and 0.67 at initialisation; 1 and 30, near
the L1 norm of an honest update, gave 0.26).  With a larger epsilon raise it towards
the honest L1 norm (about 25 to 90 for the IDS MLP).
"""
DEFAULT_GAUSSIAN_CLIP = 0.5
"""Default L2 bound of a Gaussian-privatised update: about the L2 norm of an honest
update of the IDS MLP (0.4 to 1.3 measured), the usual choice (Abadi et al., 2016).
At epsilon = 50 per round it keeps ROC AUC at 0.85 (0.85 without DP); at 0.5 no bound
keeps utility.
"""

DEFAULT_PARAMETER_SENSITIVITY = 3e-2
"""Default per-parameter bound of ``unit: parameter`` (FedQ's reading of eq. 1).

A few times the RMS size of one parameter's honest update (an update's L2 norm of 0.4
to 1.3 over 6.5k parameters), so clipping keeps most of the signal while the noise
``Lap(C / epsilon)``, averaged over K = 20 HMUs, stays below it.  bench/robustness.py
(privacy section, K = 20, 30 rounds, epsilon 0.5 per parameter, seed 0): accuracy
0.924 at 0.003, 0.920 at 0.01, 0.927 at 0.03, 0.916 at 0.1, 0.899 at 0.3.
"""


class PrivacyConfig(Strict):
    """Local differential privacy of each HMU's update, applied before encryption.

    ``epsilon`` and ``delta`` are per round: what one released update costs.  ``clip``
    is the L1 bound of the update (= the sensitivity ``Delta f`` of FedQ eq. 1) for
    ``laplace`` and its L2 bound for ``gaussian``; ``None`` takes the module default.

    ``unit: parameter`` is FedQ's reading of eq. 1 (Laplace only): every parameter is a
    query of its own, clipped to ``[-clip, clip]`` and given ``Lap(clip / epsilon)``.
    ``epsilon`` then protects one parameter; the update of ``d`` parameters is
    ``d * epsilon``-DP, and the accountant reports that (see ``iomt.fedlearn.privacy``).
    """

    mechanism: Literal["none", "laplace", "gaussian"] = "none"
    epsilon: float = Field(0.5, gt=0, le=1e4, description="per-round epsilon")
    delta: float = Field(1e-5, ge=0, lt=1, description="per-round delta (gaussian only)")
    clip: float | None = Field(None, gt=0, description="L1 (laplace) or L2 (gaussian) bound")
    accountant: Literal["gdp", "pld", "rdp"] = Field(
        "gdp",
        description="how Gaussian rounds compose: exactly (Gaussian DP), or by "
        "dp-accounting's privacy loss distributions or RDP",
    )
    unit: Literal["update", "parameter"] = Field(
        "update",
        description="what epsilon protects: the whole update, or each parameter (FedQ)",
    )

    @model_validator(mode="after")
    def _gaussian_needs_delta(self) -> PrivacyConfig:
        if self.mechanism == "gaussian" and self.delta <= 0:
            raise ValueError("the gaussian mechanism needs delta > 0")
        if self.unit == "parameter" and self.mechanism != "laplace":
            raise ValueError("unit: parameter applies to mechanism: laplace only; use unit: update")
        return self

    @property
    def bound(self) -> float:
        """The clipping bound in force: ``clip`` or the mechanism's default."""
        if self.clip is not None:
            return self.clip
        if self.mechanism == "gaussian":
            return DEFAULT_GAUSSIAN_CLIP
        if self.unit == "parameter":
            return DEFAULT_PARAMETER_SENSITIVITY
        return DEFAULT_LAPLACE_SENSITIVITY


AttackKind = Literal["label-flip", "sign-flip", "scaling", "gaussian"]


class AttackSchedule(Strict):
    """When an attack starts and what share of the HMUs it holds, round by round.

    Before ``start_round`` nobody attacks.  From it the share rises linearly from
    ``share_start`` to ``share_end`` over ``ramp_rounds`` rounds and then stays; with
    ``ramp_rounds = 0`` (or no ``share_end``) it is ``share_end`` (or ``share_start``)
    at once.  Rounds count from 1, as the server numbers them.
    """

    start_round: int = Field(1, ge=1, le=100_000)
    share_start: float = Field(0.1, ge=0, le=1)
    share_end: float | None = Field(None, ge=0, le=1)
    ramp_rounds: int = Field(0, ge=0, le=100_000)

    @property
    def final_share(self) -> float:
        """The share once the ramp is over."""
        return self.share_start if self.share_end is None else self.share_end


class AttackEntry(Strict):
    """One kind of Byzantine behaviour and the HMUs that show it.

    ``scale`` means: the factor of the flipped update (``sign-flip``), the boosting
    factor (``scaling``), the per-parameter noise standard deviation (``gaussian``);
    ``label-flip`` ignores it and flips ``flip_fraction`` of the local labels.
    """

    kind: AttackKind
    scale: float = Field(1.0, ge=0)
    flip_fraction: float = Field(1.0, gt=0, le=1)
    schedule: AttackSchedule = AttackSchedule()


class FloodAttack(Strict):
    """One HMU's credentials used for a denial of service: from its first invitation at or
    after ``start_round`` it publishes ``messages`` random payloads of ``size_bytes`` on its
    own update topic as fast as the broker takes them, and never trains."""

    hmu: str
    messages: int = Field(10_000, ge=0, le=1_000_000)
    size_bytes: int = Field(4096, ge=1, le=1_048_576)
    start_round: int = Field(1, ge=1, le=100_000)


FogAction = Literal["flip", "scale", "replace", "drop"]


class MaliciousFog(Strict):
    """``attacks.malicious_fog``: which fog is compromised, what it does, from when."""

    fog: str = Field(pattern=r"^fog-[0-9]{2,3}$", description="fog-01 .. the compromised fog")
    action: FogAction = "flip"
    scale: float = Field(10.0, ge=0, description="factor (flip, scale) or noise std (replace)")
    start_round: int = Field(1, ge=1, le=100_000)


class AttackConfig(Strict):
    """Byzantine HMUs injected by the scenario; an HMU takes part in at most one entry."""

    entries: tuple[AttackEntry, ...] = ()
    flood: FloodAttack | None = None
    malicious_fog: MaliciousFog | None = None
    """A compromised fog aggregator (``topology.fog_nodes`` > 0; ``adversary/fog_attack.py``)."""


class ScreeningConfig(Strict):
    """Z-score anomaly screening of the round's updates (SAFE-MED), before aggregation.

    Features: ``norm`` (log of the update's L2 norm, flagged when ``|z| > threshold``)
    and ``cosine`` (cosine to the coordinate-wise median update, flagged when
    ``z < -threshold``).  ``estimator`` picks the centre and spread of the z-score:
    ``shorth`` (the shortest half, Rousseeuw's LMS; holds up to almost half attackers),
    ``mad`` (median and MAD, Iglewicz and Hoaglin, 1993) or ``std`` (mean and standard
    deviation, the textbook z-score); see ``iomt.fedlearn.screening``.
    """

    enabled: bool = False
    threshold: float = Field(3.5, gt=0)
    features: tuple[Literal["norm", "cosine"], ...] = Field(("norm", "cosine"), min_length=1)
    estimator: Literal["shorth", "mad", "std"] = "shorth"
    min_clients: int = Field(4, ge=3, description="screen only rounds with this many updates")
    history: int = Field(
        0,
        ge=0,
        le=10_000,
        description="norm: also score against the log-norms of this many recent updates"
        " that were not flagged (0: this round's only); lets a small round be screened",
    )


class TrustConfig(Strict):
    """Trust per HMU: ``t <- decay * t + (1 - decay) * (0 if flagged else 1)``."""

    initial: float = Field(1.0, gt=0, le=1)
    decay: float = Field(0.7, ge=0, lt=1)
    floor: float = Field(0.5, ge=0, lt=1, description="below this trust an HMU is left out")


class FloodGuardConfig(Strict):
    """An HMU whose messages the server refuses ``refusals`` times within ``window_s`` is
    flooding: it is isolated at the broker, as an eavesdropped HMU is (0: never)."""

    refusals: int = Field(200, ge=0, le=1_000_000)
    window_s: float = Field(2.0, gt=0, le=3600)


class DefenceConfig(Strict):
    """The server's aggregation rule and the screening in front of it."""

    aggregator: Literal["fedavg", "krum", "multi-krum", "median", "trimmed-mean", "trust"] = (
        "fedavg"
    )
    screening: ScreeningConfig = ScreeningConfig()
    trim_fraction: float = Field(0.2, ge=0, lt=0.5, description="trimmed mean: cut per side")
    krum_f: int | None = Field(
        None, ge=0, description="Byzantine HMUs Krum assumes; None: the most it tolerates"
    )
    multi_krum_m: int | None = Field(None, ge=1, description="updates multi-Krum keeps; None: n-f")
    trust: TrustConfig = TrustConfig()
    flood_guard: FloodGuardConfig = FloodGuardConfig()

    @model_validator(mode="after")
    def _trust_needs_screening(self) -> DefenceConfig:
        if self.aggregator == "trust" and not self.screening.enabled:
            raise ValueError("the trust aggregator learns from screening: enable screening")
        return self


class CompressionConfig(Strict):
    """Update compression at the HMU, before encryption (SAFE-MED).

    ``topk`` keeps the fraction ``k`` of largest-magnitude entries of the update, with
    error feedback (the dropped rest is added to the next round's update); ``quant8``
    sends 8-bit codes with a per-tensor scale and zero point; ``topk-quant8`` does both.
    """

    kind: Literal["none", "topk", "quant8", "topk-quant8"] = "none"
    k: float = Field(0.1, gt=0, le=1)
    error_feedback: bool = True


class NeuralCipherConfig(Strict):
    """SAFE-MED's adversarial neural cipher (``iomt.fedlearn.neural_cipher``)."""

    width: int = Field(128, ge=8, le=1024, description="ciphertext values per 128-value block")
    hidden: tuple[int, ...] = Field(
        (256, 128, 64),
        min_length=1,
        max_length=6,
        description="the encoder's hidden layers, mirrored in the decoder (SAFE-MED's: "
        "256, 128, 64, whose 64-wide layer keeps about half of a block)",
    )
    compression_ratio: float = Field(
        1.0, gt=0, le=1, description="the share of ``width`` sent (SAFE-MED: 0.25)"
    )
    adversarial: bool = Field(True, description="false: NeuralCrypto-FL, reconstruction only")
    keyed: bool = Field(False, description="encoder and decoder also take the HMU's QKD key")
    unbiased: bool = Field(
        False,
        description="keyed only: the server divides each decoded update by the decoder's"
        " gain, so that the average of many is not shrunk (iomt.fedlearn.decoder_gain)",
    )
    key_bits: int = Field(64, ge=8, le=256)
    adversary_weight: float = Field(1.0, ge=0, le=100)
    dropout: float = Field(0.2, ge=0, lt=1)
    lr: float = Field(1e-3, gt=0, le=1)
    batch: int = Field(256, ge=2, le=65_536)
    max_epochs: int = Field(200, ge=1, le=10_000)
    patience: int = Field(10, ge=1, le=1000)
    train_blocks: int = Field(
        20_000, ge=16, le=1_000_000, description="random 128-value blocks the cipher is trained on"
    )

    @model_validator(mode="after")
    def _unbiased_needs_a_key(self) -> NeuralCipherConfig:
        if self.unbiased and not self.keyed:
            raise ValueError(
                "unbiased needs keyed: true (a keyless cipher loses the same part of every"
                " HMU's update, which dividing by the gain would amplify)"
            )
        return self

    @property
    def cipher_width(self) -> int:
        """Values of ciphertext per block: ``width * compression_ratio``, at least 8."""
        return max(8, math.ceil(self.width * self.compression_ratio))


class UpdateEncryptionConfig(Strict):
    """How updates are hidden from the aggregator, whatever the transport does (the AEAD
    seal under QKD keys protects the link, not the update from the server).

    ``none``: the server reads every update.  ``ckks``: FL + HE: each HMU encrypts its
    update under a CKKS key the server never holds; the server adds ciphertexts and an
    HMU of the round decrypts the sum (``iomt.fedlearn.ckks`` states who holds what).
    ``neural``: SAFE-MED's cipher: every HMU encodes with the same encoder, the server
    decodes (``iomt.fedlearn.cipher_enrolment`` states who holds what).
    """

    kind: Literal["none", "ckks", "neural"] = "none"
    neural: NeuralCipherConfig = NeuralCipherConfig()
