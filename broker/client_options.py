"""Keyword arguments of ``aiomqtt.Client`` for one agent of a run."""

from __future__ import annotations

import socket
from typing import Any

from aiomqtt import TLSParameters

from iomt.broker.handle import BrokerHandle
from iomt.errors import BrokerError

# Mosquitto's own per-client default; enough to pipeline model updates on loopback.
MAX_INFLIGHT = 20


def client_kwargs(
    handle: BrokerHandle, agent_id: str, *, identifier: str | None = None
) -> dict[str, Any]:
    """``aiomqtt.Client(**client_kwargs(handle, "hmu-01"))`` connects as that agent.

    TCP_NODELAY is set on the client socket: with TLS and ~28 KB messages Nagle's
    algorithm otherwise adds ~88 ms per round trip (measured, see TOOLCHAIN.md).
    ``identifier`` defaults to the agent id; give another one to open a second
    connection with the same credentials (Mosquitto drops the older of two clients
    sharing an id).
    """
    creds = handle.credentials.get(agent_id)
    if creds is None:
        raise BrokerError(f"the broker at {handle.url} has no credentials for agent {agent_id!r}")
    kwargs: dict[str, Any] = {
        "hostname": handle.host,
        "port": handle.port,
        "username": creds.username,
        "password": creds.password,
        "identifier": identifier or agent_id,
        "socket_options": [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        "max_inflight_messages": MAX_INFLIGHT,
    }
    if handle.tls:
        ca = str(handle.ca_file) if handle.ca_file is not None else None
        kwargs["tls_params"] = TLSParameters(ca_certs=ca)  # None: the system's CAs
    return kwargs
