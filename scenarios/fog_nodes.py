"""A run's fog tier (``topology.fog_nodes``): a bridged Mosquitto and an aggregator per fog.

The cloud broker serves the server and the fog aggregators only; each fog broker serves
its fog's HMUs and aggregator and is bridged up to the cloud with the credentials the
cloud issued to that fog (``iomt.broker.bridge``). Agents start once every bridge has
connected and subscribed at the cloud, so nothing the cloud sends a fog is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from iomt.broker import BrokerHandle, MosquittoBroker, client_kwargs
from iomt.broker.bridge import fog_bridge
from iomt.broker.launcher import running
from iomt.broker.topology import fog_members
from iomt.errors import BrokerError
from iomt.scenarios.schema import Scenario
from iomt.server_agent.fog_agent import FogSetup
from iomt.wire.topics import SERVER_ID

BRIDGE_WAIT_S = 15.0


def cloud_tiers(scenario: Scenario) -> dict[str, list[str]] | None:
    """The cloud broker's tiers: the server over the fogs (None: flat, over the HMUs)."""
    n = scenario.topology.fog_nodes
    return {SERVER_ID: list(fog_members(scenario.hmu_ids, n))} if n else None


@dataclass(frozen=True)
class FogBrokers:
    """The fog brokers of a run and who sits behind which."""

    members: dict[str, list[str]]
    handles: dict[str, BrokerHandle]

    def fog_of(self, hmu: str) -> str:
        return next(fog for fog, hmus in self.members.items() if hmu in hmus)

    def setup(self, scenario: Scenario, run_id: str, fog: str) -> FogSetup:
        """Fog ``fog``'s aggregator: invites its share of the cloud's clients_per_round."""
        fed, hmus = scenario.federation, self.members[fog]
        share = max(1, math.ceil(fed.clients_per_round * len(hmus) / fed.hmus))
        bad = scenario.attacks.malicious_fog
        return FogSetup(
            run_id, fog, hmus, share, scenario.defence, scenario.seed,
            client_kwargs(self.handles[fog], fog), scenario.broker.reconnect_s,
            tamper=bad if bad is not None and bad.fog == fog else None,
        )  # fmt: skip


@contextlib.asynccontextmanager
async def start_fogs(
    scenario: Scenario, run_dir: Path, run_id: str, cloud: BrokerHandle
) -> AsyncIterator[FogBrokers | None]:
    """The fog brokers of ``scenario`` bridged to ``cloud`` (None for a flat run)."""
    n = scenario.topology.fog_nodes
    if not n:
        yield None
        return
    members = fog_members(scenario.hmu_ids, n)
    async with contextlib.AsyncExitStack() as stack:
        handles = {}
        for fog, hmus in members.items():
            password = cloud.credentials[fog].password
            ca = cloud.ca_file if cloud.tls else None  # the bridge speaks TLS when agents do
            bridge = fog_bridge(run_id, fog, cloud.host, cloud.port, password, ca)
            tiers = {SERVER_ID: [fog], fog: hmus}
            broker = MosquittoBroker(
                scenario.broker, run_dir / "fogs" / fog, run_id, hmus, tiers=tiers, bridge=bridge
            )
            handles[fog] = await stack.enter_async_context(running(broker))
        await _bridged(cloud, list(members))
        yield FogBrokers(members, handles)


async def _bridged(cloud: BrokerHandle, fogs: list[str]) -> None:
    """Wait until every fog's bridge has subscribed at the cloud (read from its log)."""
    assert cloud.log_file is not None
    deadline = asyncio.get_running_loop().time() + BRIDGE_WAIT_S
    while True:
        text = cloud.log_file.read_text(encoding="utf-8", errors="replace")
        missing = [f for f in fogs if f"Received SUBSCRIBE from {f}-bridge" not in text]
        if not missing:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise BrokerError(
                f"the bridges of {', '.join(missing)} did not reach the cloud broker within"
                f" {BRIDGE_WAIT_S:g} s (see {cloud.log_file})"
            )
        await asyncio.sleep(0.05)
