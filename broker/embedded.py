"""The fallback broker: amqtt running inside the event loop, with the run's credentials and ACL.

Used where no ``mosquitto`` binary exists, or with ``broker.kind: amqtt``.  It reads the
very files Mosquitto would (``iomt.broker.files``): the ``$7$`` password hashes and the ACL
file, through two plugins of its own, because amqtt 0.12.1's packaged plugins do not fit:
its ``FileAuthPlugin`` only verifies argon2/bcrypt hashes, and its
``TopicAccessControlListPlugin`` refuses a ``subscribe_acl`` option (its config class has
no such field, so the strict loader rejects it) while its ``acl`` option emits a
DeprecationWarning (an error under pytest's strict warnings).

What is enforced, and how it differs from Mosquitto:

* anonymous clients and wrong passwords are refused at CONNECT (CONNACK "not
  authorised"), as with Mosquitto;
* a PUBLISH outside the sender's write grants is dropped silently, as with Mosquitto;
* read grants are enforced on delivery (amqtt's ``RECEIVE`` check) and on retained
  messages (see ``_RunBroker``); a SUBSCRIBE whose filter is not wholly inside one read
  grant is refused with SUBACK 0x80, where Mosquitto grants it and then delivers only
  the messages the client may read;
* revocation rewrites the ACL file and reloads it in memory, immediately.

Gaps: no ``max_packet_size`` (amqtt has no such limit), no persistence across restarts,
and amqtt 0.12.1 takes over a connected session when *any* client, even one that then
fails authentication, connects with the same client id (Mosquitto authenticates
first), so an outsider can disconnect an agent whose client id it knows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action, BaseContext
from amqtt.errors import BrokerError as AmqttBrokerError
from amqtt.plugins import manager as amqtt_manager
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from iomt.broker.acl import (
    AclRule,
    acl_for_run,
    can_read,
    can_subscribe,
    can_write,
    parse_mosquitto_acl,
    topic_matches,
)
from iomt.broker.config import BrokerConfig
from iomt.broker.credentials import parse_password_file, verify_mosquitto_hash
from iomt.broker.files import BrokerFiles, prepare_broker_files, write_acl
from iomt.broker.handle import BrokerHandle
from iomt.broker.ports import free_port
from iomt.errors import BrokerError

log = logging.getLogger(__name__)

_START_ATTEMPTS = 3


class PasswordFileAuthPlugin(BaseAuthPlugin):
    """Accept a CONNECT only with a username and password matching the ``$7$`` file."""

    @dataclass
    class Config:
        password_file: str = ""

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        self._hashes: dict[str, str] = {}
        self.reload()

    def reload(self) -> None:
        """Re-read the password file (the embedded counterpart of Mosquitto's SIGHUP)."""
        path = Path(self.config.password_file)
        self._hashes = parse_password_file(path.read_text(encoding="utf-8"))

    async def authenticate(self, *, session: Session) -> bool:
        hashed = self._hashes.get(session.username or "")
        if hashed is None:  # anonymous, or a user we do not know
            return False
        return verify_mosquitto_hash(session.password or "", hashed)


class AclFilePlugin(BaseTopicPlugin):
    """Enforce the run's ACL file on publish, subscribe and delivery."""

    @dataclass
    class Config:
        acl_file: str = ""

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        self._rules: dict[str, list[AclRule]] = {}
        self.reload()

    def reload(self) -> None:
        """Re-read the ACL file; later checks use the new rules at once."""
        path = Path(self.config.acl_file)
        self._rules = parse_mosquitto_acl(path.read_text(encoding="utf-8"))

    def allows(self, username: str | None, topic: str, action: Action) -> bool:
        rules = self._rules.get(username or "", [])
        if action == Action.PUBLISH:
            return can_write(rules, topic)
        if action == Action.SUBSCRIBE:
            return can_subscribe(rules, topic)
        return can_read(rules, topic)

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool:
        if session is None or not topic or action is None:
            return False
        allowed = self.allows(session.username, topic, action)
        if not allowed:
            log.debug("amqtt ACL: %s may not %s %s", session.username, action.value, topic)
        return allowed


class _RunBroker(Broker):
    """amqtt's broker with read grants applied to retained messages too.

    amqtt 0.12.1 sends retained messages without its RECEIVE check, and on every
    CONNECT it replays the retained messages of *every* client's subscription
    filters to the new client.  Here a retained message goes only to a session that
    holds a subscription matching it and may read its topic.
    """

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        topic_filter, qos = subscription
        holders = self._subscriptions.get(topic_filter, [])
        if not any(held is session for held, _ in holders):
            return
        handler = self._get_handler(session)
        if handler is None:
            return
        for topic, retained in list(self._retained_messages.items()):
            if not topic_matches(topic_filter, topic):
                continue
            if not await self._topic_filtering(session, topic, Action.RECEIVE):
                continue
            await handler.mqtt_publish(
                retained.topic, retained.data, min(qos, retained.qos or qos), retain=True
            )


async def _close_listeners(broker: Broker) -> None:
    """Close what a failed ``Broker.start`` left open (amqtt leaves listeners bound)."""
    for server in list(broker._servers.values()):  # noqa: SLF001 - no public way exists
        await server.close_instance()


class AmqttBroker:
    """An embedded amqtt broker for one run; ``async with AmqttBroker(...) as handle``."""

    def __init__(
        self,
        config: BrokerConfig,
        run_dir: Path,
        run_id: str,
        hmu_ids: Sequence[str],
        *,
        host: str = "127.0.0.1",
    ) -> None:
        if config.url is not None:
            raise BrokerError("broker.url is set: attach to that broker instead of starting one")
        self.config = config
        self.directory = Path(run_dir).resolve() / "broker"
        self.run_id = run_id
        self.hmu_ids = list(hmu_ids)
        acl_for_run(run_id, self.hmu_ids)
        self.host = host
        self.namespace = f"iomt.amqtt.{run_id}.{id(self):x}"
        self._files: BrokerFiles | None = None
        self._broker: Broker | None = None
        self._revoked: set[str] = set()
        self._handle: BrokerHandle | None = None

    @property
    def handle(self) -> BrokerHandle:
        if self._handle is None:
            raise BrokerError("the embedded amqtt broker is not running")
        return self._handle

    async def start(self) -> BrokerHandle:
        """Write the run's broker files and start listening; retries if a port was taken."""
        if self._broker is not None:
            raise BrokerError("this amqtt broker was already started")
        files = prepare_broker_files(self.directory, self.run_id, self.hmu_ids, tls=self.config.tls)
        self._files = files
        if self.config.persistence:
            log.info("the embedded amqtt broker keeps no persistence; messages live in memory")
        last: Exception | None = None
        for _ in range(_START_ATTEMPTS):
            try:
                port = free_port(self.host)
                tls_port = free_port(self.host) if files.tls is not None else None
                while tls_port == port:
                    tls_port = free_port(self.host)
            except OSError as exc:
                raise BrokerError(f"cannot listen on {self.host}: {exc.strerror}") from exc
            broker = _RunBroker(
                self._broker_config(files, port, tls_port), plugin_namespace=self.namespace
            )
            try:
                await broker.start()
            except (AmqttBrokerError, OSError) as exc:
                last = exc
                await _close_listeners(broker)
                amqtt_manager.plugins_manager.pop(self.namespace, None)
                continue
            except BaseException:
                await _close_listeners(broker)
                amqtt_manager.plugins_manager.pop(self.namespace, None)
                raise
            self._broker = broker
            self._handle = BrokerHandle(
                kind="amqtt",
                host=self.host,
                port=tls_port if tls_port is not None else port,
                tls=tls_port is not None,
                ca_file=files.tls.ca_cert if files.tls is not None else None,
                credentials=dict(files.credentials),
                plain_port=port,
                revoker=self,
            )
            log.info("embedded amqtt broker serves run %s at %s", self.run_id, self._handle.url)
            return self._handle
        raise BrokerError(f"the embedded amqtt broker cannot listen on {self.host}: {last}")

    async def stop(self) -> None:
        """Close every session and listener; idempotent."""
        broker, self._broker = self._broker, None
        self._handle = None
        if broker is None:
            return
        try:
            await broker.shutdown()
        finally:
            amqtt_manager.plugins_manager.pop(self.namespace, None)

    async def revoke_async(self, hmu_id: str) -> bool:
        """Withdraw ``hmu_id``'s right to publish its update topic, effective at once."""
        if hmu_id not in self.hmu_ids:
            raise ValueError(f"{hmu_id!r} is not an HMU of run {self.run_id}")
        if self._broker is None or self._files is None:
            raise BrokerError(f"cannot revoke {hmu_id}: the amqtt broker is not running")
        self._revoked.add(hmu_id)
        write_acl(
            self._files.acl_file, acl_for_run(self.run_id, self.hmu_ids, revoked=self._revoked)
        )
        plugin = self._broker.plugins_manager.get_plugin(AclFilePlugin.__name__)
        if not isinstance(plugin, AclFilePlugin):
            raise BrokerError("the embedded broker lost its ACL plugin")
        plugin.reload()
        log.info("HMU %s may no longer publish updates (amqtt ACL reloaded)", hmu_id)
        return True

    async def __aenter__(self) -> BrokerHandle:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _broker_config(self, files: BrokerFiles, port: int, tls_port: int | None) -> dict[str, Any]:
        listeners: dict[str, Any] = {"default": {"type": "tcp", "bind": f"{self.host}:{port}"}}
        if files.tls is not None and tls_port is not None:
            listeners["tls"] = {
                "type": "tcp",
                "bind": f"{self.host}:{tls_port}",
                "ssl": True,
                "certfile": str(files.tls.server_cert),
                "keyfile": str(files.tls.server_key),
            }
        return {
            "listeners": listeners,
            "plugins": {
                f"{__name__}.{PasswordFileAuthPlugin.__name__}": {
                    "password_file": str(files.password_file)
                },
                f"{__name__}.{AclFilePlugin.__name__}": {"acl_file": str(files.acl_file)},
            },
        }
