"""A hung or killed HMU never hangs the run; a peer's garbage never kills the server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import aiomqtt
import numpy as np
import pytest

from iomt.broker import client_kwargs, start_broker
from iomt.fedlearn.train import warm_up
from iomt.hmu_agent.runner import HmuAgent
from iomt.scenarios.agent_commands import agent_command, write_credentials
from iomt.scenarios.data_plan import prepare_data
from iomt.scenarios.schema import scenario_yaml, validate_scenario
from iomt.scenarios.setups import hmu_setup, server_setup
from iomt.server_agent.runner import ServerAgent
from iomt.wire import topics
from iomt.wire.envelope import new_envelope
from iomt.wire.frame import decode_frame, encode_frame
from iomt.wire.messages import ModelUpdate, Status
from iomt.wire.stamp import stamp

pytestmark = pytest.mark.integration


def scenario_for(dataset: Path, **federation):
    fed = {"hmus": 3, "clients_per_round": 3, "rounds": 2, "round_deadline_s": 4.0}
    fed.update(federation)
    return validate_scenario(
        {
            "name": "failures",
            "seed": 5,
            "federation": fed,
            "training": {"epochs": 1},
            "data": {"dataset": str(dataset)},
        }
    )


async def wait_online(handle, run_id: str, expected: set[str], timeout: float = 90.0) -> None:
    kwargs = client_kwargs(handle, topics.SERVER_ID, identifier="watcher")
    online: set[str] = set()
    async with aiomqtt.Client(**kwargs) as watcher:
        await watcher.subscribe(topics.status_filter(run_id), qos=1)
        async with asyncio.timeout(timeout):
            async for message in watcher.messages:
                frame = decode_frame(message.payload)
                if frame.message.state == "online":
                    online.add(frame.envelope.sender)
                if expected <= online:
                    return


async def test_hung_then_killed_hmu_does_not_hang_the_run(tmp_path: Path, dataset_path: Path):
    scenario = scenario_for(dataset_path)
    run_id = "hung-hmu"
    hmus = scenario.hmu_ids
    scenario_file = tmp_path / "scenario.yaml"
    scenario_file.write_text(scenario_yaml(scenario))
    data = prepare_data(scenario)
    procs: dict[str, subprocess.Popen] = {}
    async with start_broker(scenario.broker, tmp_path, run_id, hmus) as handle:
        try:
            for h in hmus:
                creds = write_credentials(tmp_path, handle, h)
                cmd = [*agent_command("hmu", scenario_file, run_id, handle, creds), "--id", h]
                procs[h] = subprocess.Popen(
                    cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            await wait_online(handle, run_id, set(hmus))
            os.kill(procs["hmu-03"].pid, signal.SIGSTOP)  # hung: connected, silent

            def kill_after_first_round(record):
                if record["round"] == 1:
                    procs["hmu-03"].kill()  # and now dead: the broker sends its last will

            setup = server_setup(
                scenario,
                data,
                run_id,
                tmp_path,
                client_kwargs(handle, topics.SERVER_ID),
                kill_after_first_round,
            )
            started = time.monotonic()
            outcome = await ServerAgent(setup).run()
            elapsed = time.monotonic() - started
        finally:
            for proc in procs.values():
                proc.kill()
                proc.wait()
    assert outcome.completed
    first, second = outcome.rounds
    assert "hmu-03" in first["selected"]
    assert first["timed_out"] and first["received"] == ["hmu-01", "hmu-02"]
    assert second["received"] == ["hmu-01", "hmu-02"]
    assert elapsed < 2 * scenario.federation.round_deadline_s + 10


async def test_garbage_and_forged_updates_are_counted_not_fatal(tmp_path: Path, dataset_path: Path):
    """hmu-02 answers its invitation with junk, a forged sender and a wrong-shape model."""
    scenario = scenario_for(
        dataset_path, hmus=2, clients_per_round=2, rounds=1, round_deadline_s=8.0
    )
    run_id = "garbage"
    data = prepare_data(scenario)
    warm_up()
    async with start_broker(scenario.broker, tmp_path, run_id, scenario.hmu_ids) as handle:
        good = HmuAgent(
            hmu_setup(scenario, data, run_id, "hmu-01", client_kwargs(handle, "hmu-01"))
        )
        good_task = asyncio.create_task(good.run())
        async with aiomqtt.Client(**client_kwargs(handle, "hmu-02")) as bad:
            await bad.subscribe(topics.inbox(run_id, "hmu-02"), qos=1)
            env = new_envelope(run_id, 0, "hmu-02", "*", "status", **stamp())
            await bad.publish(
                topics.status(run_id, "hmu-02"),
                encode_frame(env, Status(role="hmu", state="online")),
                qos=1,
                retain=True,
            )
            setup = server_setup(
                scenario, data, run_id, tmp_path, client_kwargs(handle, topics.SERVER_ID), None
            )
            server = asyncio.create_task(ServerAgent(setup).run())
            async with asyncio.timeout(30):
                invite = decode_frame((await anext(bad.messages)).payload)
            own = topics.update(run_id, "hmu-02")
            update = ModelUpdate(num_samples=5, loss=0.0, train_seconds=0.0, tensors=[])
            wrong_shape = {"w": np.zeros(3, np.float32)}
            for sender, payload in (
                ("hmu-02", b"\x00garbage"),
                ("hmu-01", None),  # claims to be someone else
                ("hmu-02", wrong_shape),  # right sender, tensors that fit no model
            ):
                if payload is None or isinstance(payload, dict):
                    env = new_envelope(
                        run_id, invite.envelope.round, sender, "server", "update", **stamp()
                    )
                    payload = encode_frame(env, update, payload or invite.tensors)
                await bad.publish(own, payload, qos=1)
            outcome = await asyncio.wait_for(server, timeout=60)
        await asyncio.wait_for(good_task, timeout=10)
    assert outcome.completed
    (record,) = outcome.rounds
    assert record["received"] == ["hmu-01"] and record["timed_out"]
    assert outcome.rejected == {"DecodeError": 2, "ProtocolViolation": 1}


async def test_an_hmu_leaves_when_its_server_stays_offline(tmp_path: Path, dataset_path: Path):
    scenario = scenario_for(dataset_path, server_gone_s=1.0)
    run_id = "server-gone"
    data = prepare_data(scenario)
    async with start_broker(scenario.broker, tmp_path, run_id, scenario.hmu_ids) as handle:
        setup = hmu_setup(scenario, data, run_id, "hmu-01", client_kwargs(handle, "hmu-01"))
        hmu = asyncio.create_task(HmuAgent(setup).run())
        await wait_online(handle, run_id, {"hmu-01"})
        topic = topics.status(run_id, topics.SERVER_ID)

        def status(state: str) -> bytes:
            env = new_envelope(run_id, 0, topics.SERVER_ID, "*", "status", **stamp())
            return encode_frame(env, Status(role="server", state=state))

        async with aiomqtt.Client(**client_kwargs(handle, topics.SERVER_ID)) as server:
            await server.publish(topic, status("offline"), qos=1, retain=True)  # its last will
            await asyncio.sleep(0.4)
            await server.publish(topic, status("online"), qos=1, retain=True)  # back in time
            await asyncio.sleep(1.2)
            assert not hmu.done()  # the clock stopped when the server came back
            await server.publish(topic, status("offline"), qos=1, retain=True)
            started = time.monotonic()
            outcome = await asyncio.wait_for(hmu, timeout=10)
        assert "server offline for 1 s" in outcome.reason
        assert 0.8 < time.monotonic() - started < 5.0
