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

from typing import TYPE_CHECKING

from iomt.lazy import lazy_exports

_EXPORTS = {
    "MitmConfig": "iomt.adversary.config",
    "Decision": "iomt.adversary.policy",
    "EveCounters": "iomt.adversary.policy",
    "EvePolicy": "iomt.adversary.policy",
    "Observation": "iomt.adversary.policy",
    "PassThrough": "iomt.adversary.policy",
    "Policy": "iomt.adversary.policy",
    "MitmProxy": "iomt.adversary.mitm",
    "ProxyStats": "iomt.adversary.mitm",
    "route_through": "iomt.adversary.mitm",
    "start_eves": "iomt.adversary.mitm",
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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


if TYPE_CHECKING:
    from iomt.adversary.config import MitmConfig
    from iomt.adversary.mitm import MitmProxy, ProxyStats, route_through, start_eves
    from iomt.adversary.policy import (
        Decision,
        EveCounters,
        EvePolicy,
        Observation,
        PassThrough,
        Policy,
    )
