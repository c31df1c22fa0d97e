"""Tests of the privacy, attack, defence and compression scenario sections."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from iomt.fedlearn.defence_config import (
    DEFAULT_GAUSSIAN_CLIP,
    DEFAULT_LAPLACE_SENSITIVITY,
    AttackConfig,
    CompressionConfig,
    DefenceConfig,
    PrivacyConfig,
)

YAML = """
privacy: {mechanism: gaussian, epsilon: 1.5, delta: 1.0e-6, clip: 0.2}
attacks:
  entries:
    - kind: sign-flip
      scale: 4
      schedule: {start_round: 5, share_start: 0.1, share_end: 0.3, ramp_rounds: 10}
    - kind: label-flip
      flip_fraction: 0.5
defence:
  aggregator: trust
  screening: {enabled: true, threshold: 3.0}
  trust: {decay: 0.8}
compression: {kind: topk-quant8, k: 0.05}
"""


def test_sections_load_from_yaml() -> None:
    raw = yaml.safe_load(YAML)
    privacy = PrivacyConfig.model_validate(raw["privacy"])
    assert (privacy.mechanism, privacy.bound, privacy.delta) == ("gaussian", 0.2, 1e-6)
    attacks = AttackConfig.model_validate(raw["attacks"])
    assert attacks.entries[0].schedule.final_share == 0.3
    assert attacks.entries[1].schedule.start_round == 1
    defence = DefenceConfig.model_validate(raw["defence"])
    assert defence.screening.threshold == 3.0 and defence.trust.decay == 0.8
    assert CompressionConfig.model_validate(raw["compression"]).k == 0.05


def test_defaults_are_plain_fedavg() -> None:
    assert PrivacyConfig().mechanism == "none"
    assert AttackConfig().entries == ()
    assert DefenceConfig().aggregator == "fedavg" and not DefenceConfig().screening.enabled
    assert CompressionConfig().kind == "none"
    assert PrivacyConfig(mechanism="laplace").bound == DEFAULT_LAPLACE_SENSITIVITY
    assert PrivacyConfig(mechanism="gaussian").bound == DEFAULT_GAUSSIAN_CLIP


@pytest.mark.parametrize(
    ("model", "raw", "message"),
    [
        (PrivacyConfig, {"mechanism": "gaussian", "delta": 0}, "needs delta > 0"),
        (PrivacyConfig, {"epsilon": 0}, "greater than 0"),
        (DefenceConfig, {"aggregator": "trust"}, "enable screening"),
        (DefenceConfig, {"aggregator": "bulyan"}, "Input should be"),
        (DefenceConfig, {"trim_fraction": 0.5}, "less than 0.5"),
        (AttackConfig, {"entries": [{"kind": "sign-flip", "sclae": 2}]}, "Extra inputs"),
        (CompressionConfig, {"k": 0}, "greater than 0"),
    ],
)
def test_bad_sections_are_refused(model: type, raw: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        model.model_validate(raw)
