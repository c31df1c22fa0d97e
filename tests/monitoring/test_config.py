"""Where the InfluxDB target comes from: the scenario first, then IOMT_INFLUX_*."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from iomt.errors import ScenarioError
from iomt.monitoring.config import InfluxConfig, MetricsConfig, resolve_influx

ENV = {
    "IOMT_INFLUX_URL": "http://influx.local:8086/",
    "IOMT_INFLUX_ORG": "hospital",
    "IOMT_INFLUX_BUCKET": "trial",
    "IOMT_INFLUX_TOKEN": "s3cret",
}


def test_no_url_anywhere_means_file_only() -> None:
    assert resolve_influx(InfluxConfig(), {}) is None


def test_the_environment_fills_what_the_scenario_leaves_unset() -> None:
    target = resolve_influx(InfluxConfig(bucket="mine"), ENV)
    assert target is not None
    assert (target.url, target.org, target.bucket, target.token) == (
        "http://influx.local:8086", "hospital", "mine", "s3cret",
    )  # fmt: skip
    assert "s3cret" not in repr(target)


def test_token_file_is_read(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("from-file\n")
    target = resolve_influx(InfluxConfig(url="https://db:8086", org="o", bucket="b",
                                         token_file=str(token)), {})  # fmt: skip
    assert target is not None and target.token == "from-file"


def test_incomplete_configuration_is_an_error_naming_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="org"):
        resolve_influx(InfluxConfig(url="http://db:8086", bucket="b"), {})
    with pytest.raises(ScenarioError, match="token_file"):
        resolve_influx(InfluxConfig(url="http://db:8086", org="o", bucket="b",
                                    token_file=str(tmp_path / "none")), {})  # fmt: skip
    with pytest.raises(ScenarioError, match="IOMT_INFLUX_URL"):
        resolve_influx(InfluxConfig(), {"IOMT_INFLUX_URL": "db:8086"})


def test_metrics_section_is_strict() -> None:
    with pytest.raises(ValidationError):
        MetricsConfig.model_validate({"batch_sise": 10})
    with pytest.raises(ValidationError):
        MetricsConfig.model_validate({"influx": {"url": "ftp://x", "token": "no"}})
    cfg = MetricsConfig.model_validate(
        {"influx": {"url": "http://db:8086"}, "hmu_transport": "mqtt"}
    )
    assert cfg.influx.url == "http://db:8086" and cfg.hmu_transport == "mqtt"
