"""Attach to a broker somebody else runs (field trials): parse its URL, load credentials.

Nothing is started.  The URL is ``mqtt://host[:port]`` (default 1883) or
``mqtts://host[:port]`` (default 8883); credentials never go in the URL but in a YAML
file ``{agent_id: password}`` named by ``broker.credentials_file``.  Whether the broker
enforces the run's ACL is up to whoever runs it (``iomt.broker.acl`` renders a Mosquitto
``acl_file`` they can install), and revocation cannot be done from here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from iomt.broker.config import BrokerConfig
from iomt.broker.credentials import Credentials
from iomt.broker.handle import BrokerHandle
from iomt.broker.ports import accepts_connections
from iomt.errors import BrokerError

log = logging.getLogger(__name__)

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


def load_credentials_file(path: Path) -> dict[str, Credentials]:
    """``{agent_id: Credentials}`` from a YAML mapping of agent id to password."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BrokerError(f"cannot read broker credentials file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BrokerError(f"broker credentials file {path} is not valid YAML: {reason}") from exc
    if not isinstance(data, dict) or not data:
        raise BrokerError(f"broker credentials file {path} must be a mapping agent_id: password")
    creds: dict[str, Credentials] = {}
    for agent, password in data.items():
        if not isinstance(agent, str) or not isinstance(password, str) or not password:
            raise BrokerError(
                f"broker credentials file {path}: entry {agent!r} must map a name to a "
                "non-empty string password"
            )
        creds[agent] = Credentials(agent, password)
    return creds


class _NoRevocation:
    async def revoke_async(self, hmu_id: str) -> bool:
        log.warning(
            "cannot revoke %s at an external broker; the server must ignore its updates itself",
            hmu_id,
        )
        return False


def attach_external(config: BrokerConfig, *, probe_timeout_s: float = 3.0) -> BrokerHandle:
    """A handle on the broker at ``config.url``, checked to accept TCP connections."""
    if config.url is None:
        raise BrokerError("broker.url is not set")
    where = parse_broker_url(config.url)
    if config.credentials_file is None:
        raise BrokerError(f"broker {config.url} needs broker.credentials_file (agent_id: password)")
    ca_file: Path | None = None
    if config.ca_file is not None:
        if not where.tls:
            raise BrokerError(f"broker.ca_file is only used with mqtts:// URLs, not {config.url}")
        ca_file = Path(config.ca_file)
        if not ca_file.is_file():
            raise BrokerError(f"broker.ca_file {ca_file} does not exist")
    credentials = load_credentials_file(Path(config.credentials_file))
    if not accepts_connections(where.host, where.port, timeout=probe_timeout_s):
        raise BrokerError(
            f"cannot reach the broker at {where.host}:{where.port}; is it running and reachable?"
        )
    handle = BrokerHandle(
        kind="external",
        host=where.host,
        port=where.port,
        tls=where.tls,
        ca_file=ca_file,
        credentials=credentials,
        revoker=_NoRevocation(),
    )
    log.info("attached to external broker %s (%d credentials)", handle.url, len(credentials))
    return handle
