"""Fog brokers bridged to the cloud broker: only the fog's own topics cross, each way.

Real Mosquitto processes: a cloud broker and two fog brokers with three HMUs each,
every fog bridged to the cloud with the credentials the cloud issued to its aggregator.
An administrator subscribed to every run topic at the cloud checks what crosses, and
the cloud broker's log what even tried to (its ACL would refuse an HMU's topic too).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from iomt.broker import BrokerConfig, BrokerHandle, MosquittoBroker
from iomt.broker.bridge import fog_bridge, render_bridge
from iomt.broker.mosquitto import find_mosquitto
from iomt.wire import topics
from tests.broker.mqtt_probe import GRACE_S, Probe

RUN = "bridge-tests"
FOGS = {"fog-1": ["hmu-01", "hmu-02", "hmu-03"], "fog-2": ["hmu-04", "hmu-05", "hmu-06"]}


def test_the_bridge_names_each_crossing_topic_and_logs_in_as_the_fog():
    bridge = fog_bridge(RUN, "fog-1", "127.0.0.1", 1883, "secret")
    lines = render_bridge(bridge)
    crossing = [line.split() for line in lines if line.startswith("topic ")]
    assert {(t, way) for _, t, way, _ in crossing} == {
        (topics.update(RUN, "fog-1"), "out"),
        (topics.status(RUN, "fog-1"), "out"),
        (topics.metrics(RUN, "fog-1"), "out"),
        (topics.global_model(RUN), "in"),
        (topics.inbox(RUN, "fog-1"), "in"),
    }
    assert not any({"+", "#"} & set(t) for _, t, _, _ in crossing)
    assert "remote_username fog-1" in lines and "address 127.0.0.1:1883" in lines
    assert not any(line.startswith("bridge_cafile") for line in lines)
    assert "secret" not in repr(bridge)
    tls = render_bridge(fog_bridge(RUN, "fog-1", "::1", 8883, "s", Path("/ca.crt")))
    assert "address [::1]:8883" in tls and "bridge_cafile /ca.crt" in tls
    with pytest.raises(ValueError, match="whitespace"):
        render_bridge(fog_bridge(RUN, "fog-1", "127.0.0.1", 1883, "two words"))


def fog_broker(tmp_path: Path, fog: str, cloud: BrokerHandle) -> MosquittoBroker:
    """Fog ``fog``'s broker: its HMUs' tier, its aggregator in the cloud's, bridged up."""
    bridge = fog_bridge(RUN, fog, cloud.host, cloud.port, cloud.credentials[fog].password)
    tiers = {topics.SERVER_ID: [fog], fog: FOGS[fog]}
    config = BrokerConfig(persistence=False)
    return MosquittoBroker(config, tmp_path / fog, RUN, FOGS[fog], tiers=tiers, bridge=bridge)


@pytest.mark.integration
@pytest.mark.skipif(find_mosquitto() is None, reason="Mosquitto is not installed")
async def test_hmu_updates_stay_on_their_fog_and_partials_and_globals_cross(tmp_path: Path):
    cloud = MosquittoBroker(
        BrokerConfig(persistence=False), tmp_path / "cloud", RUN, [],
        tiers={topics.SERVER_ID: list(FOGS)}, observers=["admin"],
    )  # fmt: skip
    with cloud as cloud_handle, contextlib.ExitStack() as brokers:
        fog_brokers = {fog: fog_broker(tmp_path, fog, cloud_handle) for fog in FOGS}
        fog_handles = {fog: brokers.enter_context(b) for fog, b in fog_brokers.items()}
        async with contextlib.AsyncExitStack() as stack:

            async def probe(handle, agent, *filters):
                p = await stack.enter_async_context(Probe(handle, agent))
                await p.subscribe(*filters)
                return p

            admin = await probe(cloud_handle, "admin", f"{topics.run_prefix(RUN)}/#")
            server = await probe(cloud_handle, topics.SERVER_ID, topics.update_filter(RUN))
            fogs = {
                fog: await probe(h, fog, topics.update_filter(RUN, fog), topics.global_model(RUN))
                for fog, h in fog_handles.items()
            }
            hmus = {
                hmu: await probe(fog_handles[fog], hmu, topics.global_model(RUN, fog))
                for fog, members in FOGS.items()
                for hmu in members
            }
            await asyncio.sleep(1.0)  # the bridges have connected and subscribed

            async def a_round(number: int, live: dict[str, list[str]]) -> None:
                for fog, members in live.items():
                    for hmu in members:
                        await hmus[hmu].publish(topics.update(RUN, hmu, fog), f"{number}".encode())
                    for hmu in members:
                        await fogs[fog].wait_for(topics.update(RUN, hmu, fog), f"{number}".encode())
                    await fogs[fog].publish(topics.update(RUN, fog), f"partial {number}".encode())
                for fog in live:
                    await server.wait_for(topics.update(RUN, fog), f"partial {number}".encode())
                await server.publish(topics.global_model(RUN), f"global {number}".encode())
                for fog in live:
                    await fogs[fog].wait_for(topics.global_model(RUN), f"global {number}".encode())

            await a_round(1, FOGS)
            # an HMU cannot pass for its fog at the cloud: its fog broker refuses the topic
            await hmus["hmu-01"].publish(topics.update(RUN, "fog-1"), b"forged")
            fog_brokers["fog-2"].stop()  # a fog broker dies: the other fog goes on
            await a_round(2, {"fog-1": FOGS["fog-1"]})
            await asyncio.sleep(GRACE_S)

        assert cloud_handle.log_file is not None
        cloud_log = cloud_handle.log_file.read_text()  # every PUBLISH in, even a refused one
        assert topics.update(RUN, "fog-1") in cloud_log
        assert not any(topics.tier_prefix(RUN, fog) in cloud_log for fog in FOGS)
        crossed = {topic for topic, _ in admin.received}
        assert crossed == {topics.update(RUN, fog) for fog in FOGS} | {topics.global_model(RUN)}
        assert b"forged" not in server.got(topics.update(RUN, "fog-1"))
        assert server.got(topics.update(RUN, "fog-1")) == [b"partial 1", b"partial 2"]
        assert server.got(topics.update(RUN, "fog-2")) == [b"partial 1"]
