"""A fog broker's bridge to the cloud broker: what crosses it, and its config lines.

A fog node is a Mosquitto broker of its own, bridged to the cloud broker by Mosquitto's
bridge (a ``connection`` block in the fog broker's config), plus a fog aggregator agent
that is the server of its HMUs' tier and a member of the cloud's tier.  Only what must
cross the bridge crosses it, each topic named exactly (no wildcards):

========  ================================================================================
out       the fog aggregator's partial update to the cloud tier, its status (last will)
          and its metrics
in        the cloud's global model and the fog's inbox at the cloud
========  ================================================================================

Every topic of the fog's own tier (its HMUs' updates, inboxes and the fog's global
model) stays on the fog broker: the cloud never sees an HMU's update.  Topics keep
their names on both sides (no prefix remapping): the tier in a topic already says
which broker it belongs to, and naming each crossing topic is what restricts the flow.

The bridge logs in at the cloud broker as the fog aggregator, with the password the
cloud broker issued to it, so the cloud's ACL bounds what a compromised fog broker can
publish there as tightly as it bounds the aggregator itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from iomt.wire import topics

QOS = 1


@dataclass(frozen=True)
class Bridge:
    """One fog broker's connection to the cloud broker."""

    fog_id: str
    host: str
    port: int
    password: str = field(repr=False)
    out_topics: tuple[str, ...]
    in_topics: tuple[str, ...]
    ca_file: Path | None = None
    """The cloud broker's CA: the bridge then speaks TLS and checks the cloud's certificate."""


def fog_bridge(
    run_id: str, fog_id: str, host: str, port: int, password: str, ca_file: Path | None = None
) -> Bridge:
    """The bridge of fog ``fog_id`` to the cloud broker at ``host:port``."""
    return Bridge(
        fog_id=topics.check_part(fog_id, "fog id"),
        host=host,
        port=port,
        password=password,
        out_topics=(
            topics.update(run_id, fog_id),
            topics.status(run_id, fog_id),
            topics.metrics(run_id, fog_id),
        ),
        in_topics=(topics.global_model(run_id), topics.inbox(run_id, fog_id)),
        ca_file=ca_file,
    )


def render_bridge(bridge: Bridge) -> list[str]:
    """The ``connection`` block of ``bridge`` for the fog broker's ``mosquitto.conf``."""
    for text in (bridge.host, bridge.password, str(bridge.ca_file or "")):
        if any(c.isspace() for c in text):
            raise ValueError("a bridge's host, password and CA path cannot hold whitespace")
    host = f"[{bridge.host}]" if ":" in bridge.host else bridge.host
    lines = [
        f"connection {bridge.fog_id}",
        f"address {host}:{bridge.port}",
        f"remote_username {bridge.fog_id}",
        f"remote_password {bridge.password}",
        f"remote_clientid {bridge.fog_id}-bridge",
        "bridge_protocol_version mqttv311",
        "try_private false",  # the cloud may be any MQTT 3.1.1 broker
        "cleansession true",
        "notifications false",  # no $SYS state topic at the cloud: its ACL would refuse it
        "restart_timeout 1 5",  # reconnect after 1 s, backing off to 5 s
        *(f"topic {topic} out {QOS}" for topic in bridge.out_topics),
        *(f"topic {topic} in {QOS}" for topic in bridge.in_topics),
    ]
    if bridge.ca_file is not None:
        lines += [f"bridge_cafile {bridge.ca_file}", "bridge_insecure false"]
    return lines
