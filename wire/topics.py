"""Builders and parsers of every MQTT topic the testbed uses; they validate their parts.

Layout (one run never sees another's traffic)::

    iomt/{run}/status/{agent}            retained online/offline, last will
    iomt/{run}/global                    server -> all: global model, run complete
    iomt/{run}/hmu/{hmu}/inbox           server -> one HMU: training invitations
    iomt/{run}/hmu/{hmu}/update          one HMU -> server: model updates
    iomt/{run}/metrics/{agent}           any agent -> metrics forwarder
    iomt/{run}/qkd/{hmu}/quantum/{leg}   qubits, HMU -> channel ("tx"), channel -> server ("rx")
    iomt/{run}/qkd/{hmu}/classical/{by}  authenticated post-processing, by "hmu" or "server"
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


def run_prefix(run_id: str) -> str:
    return f"{ROOT}/{check_part(run_id, 'run id')}"


def status(run_id: str, agent: str) -> str:
    return f"{run_prefix(run_id)}/status/{check_part(agent, 'agent id')}"


def status_filter(run_id: str) -> str:
    return f"{run_prefix(run_id)}/status/+"


def global_model(run_id: str) -> str:
    return f"{run_prefix(run_id)}/global"


def inbox(run_id: str, hmu: str) -> str:
    return f"{run_prefix(run_id)}/hmu/{check_part(hmu, 'HMU id')}/inbox"


def update(run_id: str, hmu: str) -> str:
    return f"{run_prefix(run_id)}/hmu/{check_part(hmu, 'HMU id')}/update"


def update_filter(run_id: str) -> str:
    return f"{run_prefix(run_id)}/hmu/+/update"


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
    """The agent or HMU id a status, update or metrics topic belongs to, else None."""
    parts = topic.split("/")
    prefix = run_prefix(run_id).split("/")
    if parts[: len(prefix)] != prefix:
        return None
    rest = parts[len(prefix) :]
    if len(rest) == 2 and rest[0] in ("status", "metrics"):
        return rest[1]
    if len(rest) == 3 and rest[0] == "hmu" and rest[2] in ("update", "inbox"):
        return rest[1]
    return None


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
