"""Typed settings of the metrics section of a scenario, and where the InfluxDB target comes from.

Every run writes its metrics as line protocol into ``metrics.lp`` in the run directory.
When an InfluxDB v2 server is configured, in the scenario (``metrics.influx``) or with
``IOMT_INFLUX_URL``, ``IOMT_INFLUX_ORG``, ``IOMT_INFLUX_BUCKET`` and ``IOMT_INFLUX_TOKEN``,
the same points also go to its write API.  A value set in the scenario wins; the
environment fills in what the scenario leaves unset.  The token is never part of the
scenario (``scenario.yaml`` is copied into every run directory): it comes from
``IOMT_INFLUX_TOKEN`` or from the file ``metrics.influx.token_file`` names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field

from iomt.errors import ScenarioError
from iomt.strict import Strict

ENV_URL = "IOMT_INFLUX_URL"
ENV_ORG = "IOMT_INFLUX_ORG"
ENV_BUCKET = "IOMT_INFLUX_BUCKET"
ENV_TOKEN = "IOMT_INFLUX_TOKEN"


class InfluxConfig(Strict):
    """Where the InfluxDB v2 write API is; every unset value is taken from ``IOMT_INFLUX_*``."""

    url: str | None = Field(None, pattern=r"^https?://\S+$", description="http(s)://host:8086")
    org: str | None = None
    bucket: str | None = None
    token_file: str | None = Field(None, description="file holding the API token")
    timeout_ms: int = Field(3000, ge=100, le=120_000, description="per HTTP request")


class MetricsConfig(Strict):
    """The ``metrics:`` section of a scenario.

    Batching, buffering and retries bound what an outage of the InfluxDB server can
    cost: a run never waits for it, at most ``buffer_points`` points wait for it, and
    a point that still cannot be written after the retries is counted as dropped (it
    stays in ``metrics.lp`` whatever happens).
    """

    enabled: bool = Field(True, description="false: agents emit nothing, no metrics.lp")
    influx: InfluxConfig = InfluxConfig()
    batch_size: int = Field(1000, ge=1, le=100_000, description="points per write request")
    flush_interval_ms: int = Field(
        1000, ge=10, le=60_000, description="longest a point waits in memory"
    )
    buffer_points: int = Field(
        50_000, ge=100, le=10_000_000, description="points waiting for InfluxDB, at most"
    )
    retries: int = Field(3, ge=0, le=20, description="retries of a failed write request")
    retry_interval_ms: int = Field(
        1000, ge=10, le=60_000, description="first retry delay, doubled each time"
    )
    max_retry_time_ms: int = Field(
        10_000, ge=100, le=600_000, description="give a request up after this"
    )
    close_timeout_s: float = Field(5.0, gt=0, le=300, description="wait this long at exit")
    resources_interval_s: float = Field(
        5.0, ge=0, le=3600, description="CPU/RSS sampling period per agent process; 0 disables"
    )
    broker_stats: bool = Field(True, description="record the broker's $SYS counters")
    hmu_transport: Literal["direct", "mqtt"] = Field(
        "direct",
        description="direct: an HMU writes its own points; mqtt: it publishes them on its "
        "metrics topic and the server's forwarder writes them",
    )
    forward_max_bytes: int = Field(65_536, ge=256, le=1_048_576, description="one MQTT payload")
    forward_max_lines: int = Field(1000, ge=1, le=100_000, description="lines in one payload")


@dataclass(frozen=True)
class InfluxTarget:
    """A resolved InfluxDB v2 endpoint: everything the write API needs."""

    url: str
    org: str
    bucket: str
    token: str = field(repr=False, default="")
    timeout_ms: int = 3000


def resolve_influx(
    config: InfluxConfig, env: Mapping[str, str] | None = None
) -> InfluxTarget | None:
    """The InfluxDB target of ``config`` completed from ``env``; None when no URL is set.

    Raises ``ScenarioError`` when a URL is set but the organisation or bucket is not,
    or the token file cannot be read.
    """
    env = os.environ if env is None else env
    url = config.url or env.get(ENV_URL) or None
    if url is None:
        return None
    if not url.startswith(("http://", "https://")):
        raise ScenarioError(f"{ENV_URL}={url!r}: expected http://host:port or https://host:port")
    org = config.org or env.get(ENV_ORG) or None
    bucket = config.bucket or env.get(ENV_BUCKET) or None
    missing = [
        name
        for name, value in (("metrics.influx.org / " + ENV_ORG, org),
                            ("metrics.influx.bucket / " + ENV_BUCKET, bucket))
        if not value
    ]  # fmt: skip
    if missing:
        raise ScenarioError(f"InfluxDB at {url} is configured but {' and '.join(missing)} unset")
    if config.token_file is not None:
        try:
            token = Path(config.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ScenarioError(f"metrics.influx.token_file: cannot read: {exc}") from None
    else:
        token = env.get(ENV_TOKEN, "")
    assert org is not None and bucket is not None
    return InfluxTarget(url.rstrip("/"), org, bucket, token, config.timeout_ms)
