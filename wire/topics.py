"""Builders and parsers of every MQTT topic the testbed uses; they validate their parts.

Layout (one run never sees another's traffic)::

    iomt/{run}/status/{agent}                 retained online/offline, last will
    iomt/{run}/tier/{agg}/global              aggregator -> its members: round closed, run complete
    iomt/{run}/tier/{agg}/{member}/inbox      aggregator -> one member: training invitations
    iomt/{run}/tier/{agg}/{member}/update     one member -> its aggregator: model updates
    iomt/{run}/metrics/{agent}                any agent -> metrics forwarder
    iomt/{run}/qkd/{hmu}/quantum/{leg}        qubits: HMU -> channel "tx", channel -> server "rx"
    iomt/{run}/qkd/{hmu}/classical/{by}       authenticated post-processing, by "hmu" or "server"

**Tiers.**  Aggregation happens in tiers: each has one aggregator (the cloud server,
``server``, for the flat topology) and its members.  An agent's role is per tier: a
fog aggregator is the aggregator of its own tier and a member of the cloud's, so it
reads ``tier/fog-01/+/update`` and writes ``tier/server/fog-01/update``.  Every
builder of a tier topic takes ``aggregator`` (default: the cloud server).
"""

from __future__ import annotations

import re

ROOT = "iomt"
SERVER_ID = "server"
CHANNEL_ID = "qkd-channel"

_PART = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def check_part(value: str, what: str = "topic part") -> str:
    """Return ``value`` if it is a safe topic level (no wildcards, no slashes)."""
    if not isinstance(value, str) or not _PART.match(value):
        raise ValueError(f"{what} {value!r} must be 1-64 characters of a-z, 0-9, '-' or '_'")
    return value


def hmu_id(index: int) -> str:
    """The agent id of the HMU with 0-based ``index``: ``hmu-01``, ``hmu-02``..."""
    return f"hmu-{index + 1:02d}"


def hmu_ids(count: int) -> list[str]:
    """The ids of ``count`` HMUs: ``hmu-01`` .. in order."""
    return [hmu_id(i) for i in range(count)]


def run_prefix(run_id: str) -> str:
    return f"{ROOT}/{check_part(run_id, 'run id')}"


def status(run_id: str, agent: str) -> str:
    return f"{run_prefix(run_id)}/status/{check_part(agent, 'agent id')}"


def status_filter(run_id: str) -> str:
    return f"{run_prefix(run_id)}/status/+"


def tier_prefix(run_id: str, aggregator: str = SERVER_ID) -> str:
    """``iomt/{run}/tier/{aggregator}``: everything one tier's aggregator and members share."""
    return f"{run_prefix(run_id)}/tier/{check_part(aggregator, 'aggregator id')}"


def global_model(run_id: str, aggregator: str = SERVER_ID) -> str:
    return f"{tier_prefix(run_id, aggregator)}/global"


def inbox(run_id: str, member: str, aggregator: str = SERVER_ID) -> str:
    return f"{tier_prefix(run_id, aggregator)}/{check_part(member, 'member id')}/inbox"


def update(run_id: str, member: str, aggregator: str = SERVER_ID) -> str:
    return f"{tier_prefix(run_id, aggregator)}/{check_part(member, 'member id')}/update"


def update_filter(run_id: str, aggregator: str = SERVER_ID) -> str:
    return f"{tier_prefix(run_id, aggregator)}/+/update"


def metrics(run_id: str, agent: str) -> str:
    return f"{run_prefix(run_id)}/metrics/{check_part(agent, 'agent id')}"


def metrics_filter(run_id: str) -> str:
    return f"{run_prefix(run_id)}/metrics/+"


def quantum(run_id: str, hmu: str, leg: str) -> str:
    if leg not in ("tx", "rx"):
        raise ValueError(f"quantum leg {leg!r} must be 'tx' or 'rx'")
    return f"{run_prefix(run_id)}/qkd/{check_part(hmu, 'HMU id')}/quantum/{leg}"


def classical(run_id: str, hmu: str, by: str) -> str:
    if by not in ("hmu", "server"):
        raise ValueError(f"classical sender {by!r} must be 'hmu' or 'server'")
    return f"{run_prefix(run_id)}/qkd/{check_part(hmu, 'HMU id')}/classical/{by}"


def agent_of(topic: str, run_id: str) -> str | None:
    """The agent a status or metrics topic, or the member a tier's update or inbox, belongs to."""
    parts = topic.split("/")
    prefix = run_prefix(run_id).split("/")
    if parts[: len(prefix)] != prefix:
        return None
    rest = parts[len(prefix) :]
    if len(rest) == 2 and rest[0] in ("status", "metrics"):
        return rest[1]
    if len(rest) == 4 and rest[0] == "tier" and rest[3] in ("update", "inbox"):
        return rest[2]
    return None


def is_update(topic: str) -> bool:
    """``iomt/{run}/tier/{agg}/{member}/update``, for any run and tier."""
    parts = topic.split("/")
    return len(parts) == 6 and parts[0] == ROOT and parts[2] == "tier" and parts[5] == "update"


def qkd_link_of(topic: str, run_id: str) -> tuple[str, str] | None:
    """``(hmu, "quantum/tx" | "quantum/rx" | "classical/hmu" | "classical/server")`` or None."""
    parts = topic.split("/")
    prefix = run_prefix(run_id).split("/")
    rest = parts[len(prefix) :]
    if parts[: len(prefix)] != prefix or len(rest) != 4 or rest[0] != "qkd":
        return None
    leg = f"{rest[2]}/{rest[3]}"
    if leg not in ("quantum/tx", "quantum/rx", "classical/hmu", "classical/server"):
        return None
    return rest[1], leg
