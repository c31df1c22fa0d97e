"""QKD over a real Mosquitto: keys seal all FL traffic, an eavesdropped HMU is cut off."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt
import pytest

from iomt.broker import client_kwargs, start_broker
from iomt.fedlearn.train import warm_up
from iomt.hmu_agent.runner import HmuAgent
from iomt.qkd_channel.agent import ChannelAgent
from iomt.scenarios.data_plan import prepare_data
from iomt.scenarios.schema import validate_scenario
from iomt.scenarios.setups import channel_setup, hmu_setup, make_enrolment, server_setup
from iomt.server_agent.runner import ServerAgent
from iomt.wire import topics
from iomt.wire.frame import peek_envelope

pytestmark = pytest.mark.integration

EVE = "hmu-04"


def qkd_scenario(dataset: Path):
    return validate_scenario(
        {
            "name": "qkd-it",
            "seed": 11,
            "federation": {"hmus": 4, "clients_per_round": 4, "rounds": 2, "round_deadline_s": 20},
            "training": {"epochs": 1},
            "data": {"dataset": str(dataset)},
            "qkd": {
                "enabled": True,
                "qubits": 131072,
                "depolarising": 0.005,
                "eavesdroppers": [{"hmus": [EVE], "model": "intercept-resend", "fraction": 1.0}],
            },
        }
    )


async def delivered(handle, run_id: str, sender: str, payload: bytes, wait_s: float) -> bool:
    """Publish ``payload`` as ``sender`` on its update topic; did a server-side reader get it?"""
    topic = topics.update(run_id, sender)
    reader_kw = client_kwargs(handle, topics.SERVER_ID, identifier="probe-reader")
    writer_kw = client_kwargs(handle, sender, identifier=f"probe-{sender}")
    async with aiomqtt.Client(**reader_kw) as reader, aiomqtt.Client(**writer_kw) as writer:
        await reader.subscribe(topic, qos=1)
        await writer.publish(topic, payload, qos=1)
        try:
            async with asyncio.timeout(wait_s):
                async for message in reader.messages:
                    return message.payload == payload
        except TimeoutError:
            return False
    return False


async def test_eavesdropped_hmu_is_isolated_and_the_rest_train_sealed(
    tmp_path: Path, dataset_path: Path
):
    scenario = qkd_scenario(dataset_path)
    run_id = "qkd-it"
    hmus = scenario.hmu_ids
    data = prepare_data(scenario)
    enrolment = make_enrolment(hmus)
    warm_up()
    captured: list[bytes] = []
    async with start_broker(scenario.broker, tmp_path, run_id, hmus) as handle:
        channel = asyncio.create_task(
            ChannelAgent(
                channel_setup(scenario, run_id, client_kwargs(handle, topics.CHANNEL_ID))
            ).run()
        )
        agents = [
            asyncio.create_task(
                HmuAgent(
                    hmu_setup(scenario, data, run_id, h, client_kwargs(handle, h), enrolment[h])
                ).run()
            )
            for h in hmus
        ]

        async def replay_and_tamper():
            """Watch hmu-01's sealed updates as an observer, then send one back twice."""
            spy_kw = client_kwargs(handle, topics.SERVER_ID, identifier="spy")
            mitm_kw = client_kwargs(handle, "hmu-01", identifier="mitm")
            async with aiomqtt.Client(**spy_kw) as spy, aiomqtt.Client(**mitm_kw) as mitm:
                await spy.subscribe(topics.update(run_id, "hmu-01"), qos=1)
                async for message in spy.messages:
                    original = bytes(message.payload)
                    captured.append(original)
                    # flip a bit of the nonce counter (first byte of the sealed payload):
                    # a fresh counter gets past the replay window, so only the tag can catch it
                    at = 6 + int.from_bytes(original[4:6], "big")
                    tampered = original[:at] + bytes([original[at] ^ 0x80]) + original[at + 1 :]
                    await mitm.publish(topics.update(run_id, "hmu-01"), original, qos=1)  # replay
                    await mitm.publish(topics.update(run_id, "hmu-01"), tampered, qos=1)
                    return

        spy_task = asyncio.create_task(replay_and_tamper())
        setup = server_setup(
            scenario,
            data,
            run_id,
            tmp_path,
            client_kwargs(handle, topics.SERVER_ID),
            None,
            enrolment,
            handle,
        )
        outcome = await asyncio.wait_for(ServerAgent(setup).run(), timeout=120)
        await asyncio.wait_for(asyncio.gather(*agents, channel), timeout=15)
        await asyncio.wait_for(spy_task, timeout=5)
        # the isolated HMU still holds valid MQTT credentials, but the broker drops its updates
        assert not await delivered(handle, run_id, EVE, b"after isolation", wait_s=1.5)
        assert await delivered(handle, run_id, "hmu-02", b"control", wait_s=10)

    assert outcome.completed
    assert outcome.isolated == [EVE]
    report = outcome.qkd
    assert report[EVE]["status"] == "isolated" and report[EVE]["qber"] > 0.2
    for h in ("hmu-01", "hmu-02", "hmu-03"):
        assert report[h]["status"] == "accepted" and report[h]["qber_upper"] < 0.03
        assert report[h]["final_key_bits"] >= 256
    for record in outcome.rounds:
        assert EVE not in record["selected"]
        assert record["received"] == ["hmu-01", "hmu-02", "hmu-03"]
    # every update on the wire was sealed under the QKD-derived key
    assert captured and peek_envelope(captured[0]).cipher == "aes-256-gcm"
    assert outcome.rejected.get("ReplayError", 0) >= 1
    assert outcome.rejected.get("AuthenticationError", 0) >= 1
    assert 0.5 < outcome.final["accuracy"] <= 1.0
