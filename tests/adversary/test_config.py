"""The mitm scenario section: strict, with defaults that do nothing."""

import pytest
from pydantic import ValidationError

from iomt.adversary.config import MitmConfig


def test_defaults_are_off_and_sign_flip_scaling():
    config = MitmConfig()
    assert not config.enabled and config.hmus == []
    assert (config.action, config.scale, config.on_sealed) == ("scale", -10.0, "tamper")


def test_a_full_section_validates():
    config = MitmConfig.model_validate(
        {
            "enabled": True,
            "hmus": ["hmu-01", "hmu-03"],
            "action": "noise",
            "noise_std": 0.3,
            "on_sealed": "drop",
        }
    )
    assert config.hmus == ["hmu-01", "hmu-03"] and config.on_sealed == "drop"


@pytest.mark.parametrize(
    "raw",
    [
        {"enabled": True},  # on nobody's path
        {"hmus": ["hmu-01", "hmu-01"]},
        {"hmus": ["HMU 1"]},
        {"action": "flip"},
        {"on_sealed": "read"},
        {"noise_std": -1},
        {"enable": True},  # typo
    ],
)
def test_bad_sections_are_refused(raw):
    with pytest.raises(ValidationError):
        MitmConfig.model_validate(raw)


def test_frozen():
    with pytest.raises(ValidationError):
        MitmConfig().enabled = True  # type: ignore[misc]
