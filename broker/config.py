"""Typed settings of the broker section of a scenario."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from iomt.broker.url import parse_broker_url
from iomt.errors import BrokerError
from iomt.strict import Strict


class BrokerConfig(Strict):
    """Which broker a run uses.

    With ``url`` unset the run starts its own broker on 127.0.0.1 (Mosquitto, or the
    embedded amqtt broker where no ``mosquitto`` binary exists).  With ``url`` set
    (``mqtt://host:port`` or ``mqtts://host:port``) agents attach to that broker with
    the credentials in ``credentials_file``; that is what field trials use.
    """

    kind: Literal["auto", "mosquitto", "amqtt"] = "auto"
    url: str | None = None
    credentials_file: str | None = Field(
        None, description="YAML of {agent_id: password} for an external broker"
    )
    ca_file: str | None = Field(None, description="CA certificate for mqtts:// URLs")
    tls: bool = Field(False, description="local broker: also open a TLS listener and use it")
    max_packet_mb: float = Field(16.0, gt=0, le=256)
    persistence: bool = True
    reconnect_s: float = Field(
        30.0, ge=0, le=3600, description="agents reconnect this long to a lost broker; 0: never"
    )

    @field_validator("url")
    @classmethod
    def _url_parses(cls, url: str | None) -> str | None:
        if url is not None:
            try:
                parse_broker_url(url)
            except BrokerError as exc:
                raise ValueError(str(exc)) from None
        return url
