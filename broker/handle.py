"""What agents need to know about the broker of a run, whichever kind it is."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from iomt.broker.credentials import Credentials

BrokerKind = Literal["mosquitto", "amqtt", "external"]


class Revoker(Protocol):
    """The part of a broker that can withdraw an HMU's right to publish its updates."""

    async def revoke_async(self, hmu_id: str) -> bool: ...


@dataclass(frozen=True)
class BrokerHandle:
    """Address, trust anchor and per-agent credentials of the broker a run uses.

    ``port`` is the port agents should use: the TLS listener's when ``tls`` is true.
    ``plain_port`` is the local broker's plain listener (``None`` for external brokers),
    kept so tests and tools can reach a TLS-enabled broker both ways.
    """

    kind: BrokerKind
    host: str
    port: int
    tls: bool
    ca_file: Path | None
    credentials: dict[str, Credentials] = field(repr=False)
    plain_port: int | None = None
    log_file: Path | None = None
    revoker: Revoker | None = field(default=None, repr=False, compare=False)

    @property
    def url(self) -> str:
        """``mqtt://host:port`` or ``mqtts://host:port`` (no credentials in it)."""
        scheme = "mqtts" if self.tls else "mqtt"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    async def revoke(self, hmu_id: str) -> bool:
        """Stop the broker from accepting ``hmu_id``'s model updates.

        Returns True once the broker enforces it (later publishes to the HMU's update
        topic are dropped), False where the broker cannot do it (an external broker:
        the server must then ignore that HMU's updates itself).
        """
        if self.revoker is None:
            return False
        return await self.revoker.revoke_async(hmu_id)
