"""Typed settings of the federation and of local IDS training (scenario sections)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from iomt.strict import Strict


class PartitionConfig(Strict):
    """How the training split is dealt out to the HMUs."""

    kind: Literal["iid", "dirichlet", "time"] = "iid"
    alpha: float = Field(0.5, gt=0, description="Dirichlet concentration over labels")
    min_samples: int = Field(10, ge=1, description="every HMU gets at least this many rows")


class FederationConfig(Strict):
    """Who takes part and for how long."""

    hmus: int = Field(5, ge=1, le=1000)
    clients_per_round: int = Field(5, ge=1)
    rounds: int = Field(10, ge=1, le=100_000)
    round_deadline_s: float = Field(30.0, gt=0, le=3600, description="a round closes at this age")
    online_timeout_s: float = Field(60.0, gt=0, le=3600, description="wait this long for HMUs")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="stratified held-out split")
    validation_fraction: float = Field(
        0.0,
        ge=0,
        le=0.8,
        description="share of the held-out rows the server keeps to choose the alarm"
        " threshold that maximises macro-F1; the rest is the test split (0: threshold 0.5)",
    )
    partition: PartitionConfig = PartitionConfig()
    server_gone_s: float = Field(
        60.0, gt=0, le=86_400, description="an HMU leaves when its server is offline this long"
    )
    min_updates: int = Field(
        1, ge=0, description="a round closing with fewer updates ends the run as not completed"
    )
    mode: Literal["sync", "async"] = Field(
        "sync",
        description="sync: rounds; async: K train at once, every buffer_size updates"
        " are aggregated (server_agent/async_coordinator.py)",
    )
    buffer_size: int | None = Field(
        None, ge=1, description="async: updates per aggregation (default: half of K, at least 1)"
    )
    staleness_bound: int = Field(
        5, ge=0, le=1000, description="async: an update more versions behind is refused"
    )
    staleness_exponent: float = Field(
        0.5, ge=0, le=10, description="async: an update of staleness s weighs (1 + s)^-a"
    )
    server_lr: float = Field(
        1.0,
        gt=0,
        le=1,
        description="the model moves this share of the way to each aggregate"
        " (FedBuff's server learning rate; 1: to the aggregate)",
    )

    churn: float = Field(
        0.0,
        ge=0,
        le=0.9,
        description="each invitation, an HMU drops off the network with this"
        " probability instead of training (hmu_agent/churn.py)",
    )
    churn_offline_s: tuple[float, float] = Field(
        (2.0, 8.0), description="how long a dropped HMU stays away: uniform in [min, max] s"
    )

    @property
    def buffer(self) -> int:
        """Updates per asynchronous aggregation."""
        return self.buffer_size or max(1, self.clients_per_round // 2)

    @model_validator(mode="after")
    def _k_within_hmus(self) -> FederationConfig:
        if self.clients_per_round > self.hmus:
            raise ValueError(
                f"clients_per_round ({self.clients_per_round}) exceeds hmus ({self.hmus})"
            )
        if self.min_updates > self.clients_per_round:
            raise ValueError(
                f"min_updates ({self.min_updates}) exceeds clients_per_round "
                f"({self.clients_per_round}): no round could ever count"
            )
        low, high = self.churn_offline_s
        if not 0 < low <= high <= 3600:
            raise ValueError(
                f"churn_offline_s {list(self.churn_offline_s)}: 0 < min <= max <= 3600"
            )
        if self.buffer_size is not None and self.buffer_size > self.clients_per_round:
            raise ValueError(
                f"buffer_size ({self.buffer_size}) exceeds clients_per_round "
                f"({self.clients_per_round}): the buffer could never fill"
            )
        if self.mode == "async" and self.min_updates > self.buffer:
            raise ValueError(
                f"min_updates ({self.min_updates}) exceeds the buffer ({self.buffer}): "
                "no asynchronous aggregation could ever count"
            )
        return self


class TrainingConfig(Strict):
    """Local training of the IDS MLP at each HMU."""

    hidden: tuple[Annotated[int, Field(ge=1, le=4096)], ...] = Field(
        (64, 64), min_length=1, max_length=16
    )
    # Defaults tuned for K = 20 iid HMUs, 30 rounds, on the 34 non-identifier features
    # (bench/quality.py --ablation; plain z-scores, fedlearn.scaling): 8 epochs of
    # Adam at 5e-3 in batches of 64, class weights ~ 1/sqrt(n_c), and each HMU keeping
    # its Adam moments between rounds reach accuracy 0.938 / macro-F1 0.835 (seeds
    # 0-4), where FedAvg's 2 epochs at 1e-3 in batches of 32 plateau at 0.930 / 0.790.
    # Fully balanced class weights overshoot (accuracy 0.85 at 0.5); 16 epochs or 60
    # rounds add under 0.01.
    epochs: int = Field(8, ge=1, le=10_000)
    batch_size: int = Field(64, ge=1, le=1_000_000)
    learning_rate: float = Field(5e-3, gt=0)
    optimizer: Literal["adam", "sgd"] = "adam"
    keep_optimiser_state: bool = Field(
        True, description="an HMU carries its optimiser's moments from round to round"
    )
    class_weight: Literal["none", "sqrt", "balanced"] = "sqrt"
    threads: int = Field(1, ge=1, le=256, description="BLAS threads per trainer")


class LinksConfig(Strict):
    """Each HMU's link and processor, drawn per HMU and round from these ranges and
    enforced in the HMU's transport (``hmu_agent/link_profile.py``: an emulation)."""

    bandwidth_kbps: tuple[float, float] | None = Field(
        None, description="[min, max] kbit/s each way (SAFE-MED: [100, 500]); null: unlimited"
    )
    latency_ms: tuple[float, float] = Field((0.0, 0.0), description="[min, max] one-way delay")
    compute_ghz: tuple[float, float] | None = Field(
        None,
        description="[min, max] clock (SAFE-MED: [0.5, 2.0]); training is stretched by"
        " reference_ghz / ghz; null: as fast as this machine",
    )
    reference_ghz: float = Field(2.0, gt=0, le=10, description="the clock this machine counts as")
    shaping: Literal["pacer", "tc"] = Field(
        "pacer",
        description="who enforces bandwidth and latency: the HMU's transport (pacer), or"
        " the kernel (tc netem on a veth pair into a network namespace per HMU process:"
        " root and --processes only)",
    )

    @model_validator(mode="after")
    def _ranges(self) -> LinksConfig:
        for name, span, top in (("bandwidth_kbps", self.bandwidth_kbps, 1e7),
                                ("latency_ms", self.latency_ms, 1e4),
                                ("compute_ghz", self.compute_ghz, 10.0)):  # fmt: skip
            if span is not None and not (0 <= span[0] <= span[1] <= top):
                raise ValueError(f"{name} {list(span)}: 0 <= min <= max <= {top:g}")
        for name, span in (
            ("bandwidth_kbps", self.bandwidth_kbps),
            ("compute_ghz", self.compute_ghz),
        ):
            if span is not None and span[0] <= 0:
                raise ValueError(f"{name} {list(span)}: min must be above 0")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.bandwidth_kbps or self.compute_ghz or self.latency_ms[1])
