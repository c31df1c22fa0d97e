"""Typed settings of the ``mitm`` scenario section: where Eve sits and what she does."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from iomt.strict import Strict
from iomt.wire.topics import check_part

Alteration = Literal["scale", "noise", "zero"]
OnSealed = Literal["tamper", "drop"]


class MitmConfig(Strict):
    """A classical man-in-the-middle on the MQTT path of the listed HMUs.

    Plaintext updates she reads and alters (``action``): ``scale`` multiplies every
    float tensor by ``scale`` (-10: sign flip and boost), ``noise`` adds Gaussian noise
    of standard deviation ``noise_std``, ``zero`` zeroes the weights.  Sealed updates she
    cannot read: ``tamper`` flips one ciphertext bit (the AEAD tag then fails at the
    server), ``drop`` discards them and acknowledges them to the HMU herself.
    """

    enabled: bool = False
    hmus: list[str] = Field(default_factory=list, description="HMU ids whose path Eve sits on")
    action: Alteration = "scale"
    scale: float = Field(-10.0, description="factor of the 'scale' action")
    noise_std: float = Field(1.0, ge=0, description="standard deviation of the 'noise' action")
    on_sealed: OnSealed = "tamper"

    @field_validator("hmus")
    @classmethod
    def _hmus(cls, value: list[str]) -> list[str]:
        for hmu in value:
            check_part(hmu, "HMU id")
        if len(set(value)) != len(value):
            raise ValueError("an HMU is listed twice")
        return value

    @model_validator(mode="after")
    def _someone_attacked(self) -> MitmConfig:
        if self.enabled and not self.hmus:
            raise ValueError("mitm is enabled but lists no HMUs to sit in front of")
        return self
