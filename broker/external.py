"""Attach to a broker somebody else runs (field trials): parse its URL, load credentials.

Nothing is started.  The URL is ``mqtt://host[:port]`` (default 1883) or
``mqtts://host[:port]`` (default 8883); credentials never go in the URL but in a YAML
file ``{agent_id: password}`` named by ``broker.credentials_file``.  Whether the broker
enforces the run's ACL is up to whoever runs it (``iomt.broker.acl`` renders a Mosquitto
``acl_file`` they can install), and revocation cannot be done from here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import yaml

from iomt.broker.config import BrokerConfig
from iomt.broker.credentials import Credentials
from iomt.broker.handle import BrokerHandle
from iomt.broker.ports import accepts_connections
from iomt.broker.url import parse_broker_url
from iomt.errors import BrokerError

log = logging.getLogger(__name__)


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
