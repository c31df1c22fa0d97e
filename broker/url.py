"""A broker URL, ``mqtt://host:port`` or ``mqtts://host:port``, parsed and checked (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from iomt.errors import BrokerError

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class BrokerUrl:
    """The parts of an ``mqtt://`` or ``mqtts://`` URL the agents need."""

    host: str
    port: int
    tls: bool


def parse_broker_url(url: str) -> BrokerUrl:
    """Parse ``url``; every malformed URL is a one-line ``BrokerError`` saying what to fix."""
    if not isinstance(url, str) or not url.strip() or any(c.isspace() for c in url):
        raise BrokerError(f"broker URL {url!r} is empty or contains whitespace")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise BrokerError(f"broker URL {url!r} is malformed: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise BrokerError(f"broker URL {url!r} must start with mqtt:// or mqtts://")
    if parts.username is not None or parts.password is not None:
        raise BrokerError(
            f"broker URL for {parts.hostname} must not carry credentials: "
            "put them in the file named by broker.credentials_file"
        )
    if not parts.hostname:
        raise BrokerError(f"broker URL {url!r} has no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise BrokerError(f"broker URL {url!r} must be only scheme://host:port")
    if port == 0:
        raise BrokerError(f"broker URL {url!r} has port 0")
    return BrokerUrl(
        host=parts.hostname,
        port=port if port is not None else DEFAULT_PORTS[scheme],
        tls=scheme == "mqtts",
    )
