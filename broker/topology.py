"""The run's network shape: flat (every HMU on the cloud broker) or a fog tier.

With ``fog_nodes: N`` the HMUs are dealt to N fog nodes in turn (``hmu-01`` to
``fog-01``, ``hmu-02`` to ``fog-02``, ...), each fog node a Mosquitto broker of its own
bridged to the cloud broker (``iomt.broker.bridge``) plus a fog aggregator agent
(``iomt.server_agent.fog_agent``) that aggregates its HMUs' updates and sends one
partial upward; the cloud server aggregates the partials.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from iomt.strict import Strict


class TopologyConfig(Strict):
    """Flat (``fog_nodes: 0``) or HMUs behind fog nodes (SAFE-MED: 100 HMUs, 10 fogs)."""

    fog_nodes: int = Field(
        0, ge=0, le=100, description="fog brokers with an aggregator each; 0: flat, no fog tier"
    )


def fog_id(index: int) -> str:
    """The agent id of the fog node with 0-based ``index``: ``fog-01``, ``fog-02``..."""
    return f"fog-{index + 1:02d}"


def fog_members(hmus: Sequence[str], fog_nodes: int) -> dict[str, list[str]]:
    """``{fog: its HMUs}``: the HMUs dealt to ``fog_nodes`` fogs in turn."""
    if not 1 <= fog_nodes <= len(hmus):
        raise ValueError(f"{fog_nodes} fog nodes for {len(hmus)} HMUs: need 1..{len(hmus)}")
    return {fog_id(i): list(hmus[i::fog_nodes]) for i in range(fog_nodes)}
