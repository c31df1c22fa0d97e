"""The MQTT broker of a run: start a local Mosquitto (or amqtt), or attach to an external one.

    async with start_broker(config, run_dir, run_id, hmu_ids) as handle:
        async with aiomqtt.Client(**client_kwargs(handle, "hmu-01")) as client:
            ...

Synchronous code (a session-scoped pytest fixture, a launcher without a loop yet) can
use ``MosquittoBroker(...).start()``/``stop()`` or ``with MosquittoBroker(...) as handle``.

The names below are imported on first use, so that ``iomt.broker.acl`` (a pure core) can be
imported without pulling in asyncio, amqtt or subprocess handling.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from iomt.lazy import lazy_exports

_EXPORTS = {
    "AclRule": "iomt.broker.acl",
    "acl_for_run": "iomt.broker.acl",
    "render_mosquitto_acl": "iomt.broker.acl",
    "AmqttBroker": "iomt.broker.embedded",
    "BrokerConfig": "iomt.broker.config",
    "BrokerHandle": "iomt.broker.handle",
    "Credentials": "iomt.broker.credentials",
    "make_credentials": "iomt.broker.credentials",
    "mosquitto_hash": "iomt.broker.credentials",
    "MosquittoBroker": "iomt.broker.mosquitto",
    "find_mosquitto": "iomt.broker.mosquitto",
    "client_kwargs": "iomt.broker.client_options",
    "parse_broker_url": "iomt.broker.url",
    "free_port": "iomt.broker.ports",
    "start_broker": "iomt.broker.launcher",
}

__all__ = [
    "AclRule",
    "AmqttBroker",
    "BrokerConfig",
    "BrokerHandle",
    "Credentials",
    "MosquittoBroker",
    "acl_for_run",
    "client_kwargs",
    "find_mosquitto",
    "free_port",
    "make_credentials",
    "mosquitto_hash",
    "parse_broker_url",
    "render_mosquitto_acl",
    "start_broker",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


if TYPE_CHECKING:
    from iomt.broker.acl import AclRule, acl_for_run, render_mosquitto_acl
    from iomt.broker.client_options import client_kwargs
    from iomt.broker.config import BrokerConfig
    from iomt.broker.credentials import Credentials, make_credentials, mosquitto_hash
    from iomt.broker.embedded import AmqttBroker
    from iomt.broker.handle import BrokerHandle
    from iomt.broker.launcher import start_broker
    from iomt.broker.mosquitto import MosquittoBroker, find_mosquitto
    from iomt.broker.ports import free_port
    from iomt.broker.url import parse_broker_url
