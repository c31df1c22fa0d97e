"""Classical adversaries on the MQTT path: Eve, a man-in-the-middle between an HMU and the broker.

    policy = EvePolicy.from_config(config.mitm, rng)
    async with MitmProxy(handle.host, handle.port, policy=policy) as eve:
        async with aiomqtt.Client(**route_through(client_kwargs(handle, "hmu-01"), eve)):
            ...

Against plaintext FedAvg she reads and alters updates; against AEAD-sealed frames she
can only drop them, and every alteration is detected by the server.  ``mqtt_codec``,
``policy`` and ``config`` are pure; only ``mitm`` does I/O, and it is imported on first
use of its names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "MitmConfig": "adversary.config",
    "Decision": "adversary.policy",
    "EveCounters": "adversary.policy",
    "EvePolicy": "adversary.policy",
    "Observation": "adversary.policy",
    "PassThrough": "adversary.policy",
    "Policy": "adversary.policy",
    "MitmProxy": "adversary.mitm",
    "ProxyStats": "adversary.mitm",
    "route_through": "adversary.mitm",
    "start_eves": "adversary.mitm",
}

__all__ = [
    "Decision",
    "EveCounters",
    "EvePolicy",
    "MitmConfig",
    "MitmProxy",
    "Observation",
    "PassThrough",
    "Policy",
    "ProxyStats",
    "route_through",
    "start_eves",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'adversary' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from adversary.config import MitmConfig
    from adversary.mitm import MitmProxy, ProxyStats, route_through, start_eves
    from adversary.policy import (
        Decision,
        EveCounters,
        EvePolicy,
        Observation,
        PassThrough,
        Policy,
    )
