"""The MQTT broker of a run: start a local Mosquitto (or amqtt), or attach to an external one.

    async with start_broker(config, run_dir, run_id, hmu_ids) as handle:
        async with aiomqtt.Client(**client_kwargs(handle, "hmu-01")) as client:
            ...

Synchronous code (a session-scoped pytest fixture, a launcher without a loop yet) can
use ``MosquittoBroker(...).start()``/``stop()`` or ``with MosquittoBroker(...) as handle``.

The names below are imported on first use, so that ``broker.acl`` (a pure core) can be
imported without pulling in asyncio, amqtt or subprocess handling.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from iomt_testbed.lazy import lazy_exports

_EXPORTS = {
    "AclRule": "broker.acl",
    "acl_for_run": "broker.acl",
    "render_mosquitto_acl": "broker.acl",
    "AmqttBroker": "broker.embedded",
    "BrokerConfig": "broker.config",
    "BrokerHandle": "broker.handle",
    "Credentials": "broker.credentials",
    "make_credentials": "broker.credentials",
    "mosquitto_hash": "broker.credentials",
    "MosquittoBroker": "broker.mosquitto",
    "find_mosquitto": "broker.mosquitto",
    "client_kwargs": "broker.client_options",
    "parse_broker_url": "broker.external",
    "free_port": "broker.ports",
    "start_broker": "broker.launcher",
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
    from broker.acl import AclRule, acl_for_run, render_mosquitto_acl
    from broker.client_options import client_kwargs
    from broker.config import BrokerConfig
    from broker.credentials import Credentials, make_credentials, mosquitto_hash
    from broker.embedded import AmqttBroker
    from broker.external import parse_broker_url
    from broker.handle import BrokerHandle
    from broker.launcher import start_broker
    from broker.mosquitto import MosquittoBroker, find_mosquitto
    from broker.ports import free_port
