"""Typed settings of quantum key distribution: the scenario section ``qkd``."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from iomt.errors import QkdError, ScenarioError
from iomt.qkd_channel.amplification import binary_entropy, secure_length
from iomt.qkd_channel.estimation import clopper_pearson_upper
from iomt.qkd_channel.eve import Eavesdropper, make_eavesdropper
from iomt.qkd_channel.link import LinkParams, honest_rates
from iomt.qkd_channel.verification import VERIFY_BITS
from iomt.strict import Strict
from iomt.wire.messages import MAX_QUBITS
from iomt.wire.topics import check_part

EveModel = Literal["intercept-resend", "intercept-resend-b92", "helstrom", "usd"]
CASCADE_EFFICIENCY = 1.2  # leaked bits per bit of h(Q), measured for our Cascade


class EavesdropperConfig(Strict):
    """Eve on some links: listed HMU ids, or a fraction of all HMUs drawn at random."""

    hmus: list[str] | float = Field(
        description="HMU ids (e.g. [hmu-01]) or the fraction of HMUs attacked, in [0, 1]"
    )
    model: EveModel = "intercept-resend"
    fraction: float = Field(1.0, ge=0, le=1, description="fraction of qubits attacked")

    @field_validator("hmus")
    @classmethod
    def _hmus(cls, value: list[str] | float) -> list[str] | float:
        if isinstance(value, list):
            for hmu in value:
                check_part(hmu, "HMU id")
            if len(set(value)) != len(value):
                raise ValueError("an HMU is listed twice")
        elif not 0.0 <= value <= 1.0:
            raise ValueError(f"fraction of HMUs {value} must be within [0, 1]")
        return value


class QkdConfig(Strict):
    """B92 links between each HMU and the server, and what the keys are used for."""

    enabled: bool = False
    backend: Literal["numpy", "qiskit"] = "numpy"
    qubits: int = Field(2**18, ge=64, le=MAX_QUBITS, description="qubits sent per session")
    target_key_bits: int | None = Field(
        None,
        ge=64,
        le=1 << 20,
        description="if set, send enough qubits for this many final key bits",
    )
    fibre_km: float = Field(10.0, ge=0, le=1000)
    db_per_km: float = Field(0.2, ge=0, le=10)
    detector_efficiency: float = Field(0.9, gt=0, le=1)
    dark_count_prob: float = Field(1e-6, ge=0, lt=1)
    depolarising: float = Field(0.01, ge=0, le=1)
    qber_threshold: float = Field(
        0.03, gt=0, lt=0.5, description="abort when the QBER upper bound exceeds this"
    )
    confidence: float = Field(
        1 - 1e-6, gt=0.5, lt=1, description="of the QBER bound and of the rate bands"
    )
    sample_fraction: float = Field(0.1, gt=0, lt=1, description="sifted bits disclosed")
    min_key_bits: int = Field(
        256, ge=8, le=1 << 24, description="shorter final keys abort the session"
    )
    rekey_rounds: int = Field(
        10, ge=0, le=100_000, description="fresh QKD session every N rounds; 0 never"
    )
    cipher: Literal["aes-gcm", "otp"] = "aes-gcm"
    eavesdroppers: list[EavesdropperConfig] = []

    def link(self) -> LinkParams:
        """The physical link parameters."""
        return LinkParams(
            fibre_km=self.fibre_km,
            db_per_km=self.db_per_km,
            detector_efficiency=self.detector_efficiency,
            dark_count_prob=self.dark_count_prob,
            depolarising=self.depolarising,
        )

    def planned_qubits(self) -> int:
        """Qubits per session: ``qubits``, or enough for ``target_key_bits`` on an honest link.

        The estimate uses the expected rates of the link, the expected Clopper-Pearson
        bound and a Cascade leak of 1.2 h(Q) per bit, then adds a quarter as margin.
        """
        if self.target_key_bits is None:
            return self.qubits
        rates = honest_rates(self.link())
        if rates.qber >= self.qber_threshold:
            raise QkdError(
                f"expected QBER {rates.qber:.4f} of this link is not below the threshold "
                f"{self.qber_threshold}: no number of qubits yields a key"
            )
        n = 4096
        while n <= MAX_QUBITS:
            sifted = n * rates.conclusive
            sample = max(1, round(self.sample_fraction * sifted))
            rest = sifted - sample
            upper = clopper_pearson_upper(round(rates.qber * sample), sample, self.confidence)
            leak = CASCADE_EFFICIENCY * binary_entropy(rates.qber) * rest + VERIFY_BITS
            if upper <= self.qber_threshold and (
                secure_length(int(rest), upper, math.ceil(leak)) >= 1.25 * self.target_key_bits
            ):
                return n
            n *= 2
        raise QkdError(
            f"no number of qubits yields {self.target_key_bits} key bits on this link "
            f"(expected QBER {rates.qber:.4f}, threshold {self.qber_threshold})"
        )

    def eavesdroppers_for(
        self, hmu_ids: list[str], rng: np.random.Generator
    ) -> dict[str, Eavesdropper]:
        """Which HMU's link carries which Eve; fractions of HMUs are drawn with ``rng``.

        A fraction ``x`` of ``N`` HMUs attacks ``round(x N)`` of them (at least one
        when ``x > 0``), drawn among those no earlier entry attacks.
        """
        known = set(hmu_ids)
        out: dict[str, Eavesdropper] = {}
        for entry in self.eavesdroppers:
            eve = make_eavesdropper(entry.model, entry.fraction)
            if isinstance(entry.hmus, list):
                chosen = list(entry.hmus)
                unknown = sorted(set(chosen) - known)
                if unknown:
                    raise ScenarioError(f"qkd.eavesdroppers names unknown HMUs: {unknown}")
            else:
                free = [h for h in hmu_ids if h not in out]
                count = math.floor(entry.hmus * len(hmu_ids) + 0.5)
                if entry.hmus > 0:
                    count = max(1, count)
                count = min(count, len(free))
                chosen = [free[i] for i in sorted(rng.choice(len(free), count, replace=False))]
            twice = sorted(set(chosen) & set(out))
            if twice:
                raise ScenarioError(f"qkd.eavesdroppers attack these HMUs twice: {twice}")
            out.update({hmu: eve for hmu in chosen})
        return out


__all__ = ["EavesdropperConfig", "EveModel", "QkdConfig"]
