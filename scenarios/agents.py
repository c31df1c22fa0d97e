"""One agent at a time against an existing broker: ``iomt server`` and ``iomt hmu``.

Both derive their share of the data from the scenario and its seed (see
``iomt.scenarios.data_plan``), so they agree with each other without exchanging rows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import yaml

from iomt.blas import single_threaded_blas
from iomt.broker import BrokerHandle, client_kwargs
from iomt.broker.external import attach_external
from iomt.errors import UsageError
from iomt.hmu_agent.setup import HmuOutcome
from iomt.qkd_channel.agent import ChannelAgent
from iomt.scenarios.data_plan import cache_dir, capture_share, prepare_data
from iomt.scenarios.hmu_service import serve_hmus
from iomt.scenarios.launcher import prepare_run_dir, resumable, stop_channel
from iomt.scenarios.results import build_results, write_results
from iomt.scenarios.run_end import run_log
from iomt.scenarios.schema import Scenario
from iomt.scenarios.setups import channel_setup, hmu_setup, open_sink, server_setup
from iomt.server_agent.runner import ServerAgent
from iomt.wire import topics
from iomt.wire.topics import SERVER_ID, check_part


def _handle(
    scenario: Scenario, url: str | None, creds: Path | None, ca: Path | None
) -> BrokerHandle:
    """The broker named on the command line, else the scenario's ``broker.url``."""
    config = scenario.broker.model_copy(
        update={
            k: str(v)
            for k, v in (("url", url), ("credentials_file", creds), ("ca_file", ca))
            if v is not None
        }
    )
    if config.url is None or config.credentials_file is None:
        raise UsageError(
            "give --broker-url and --credentials (or broker.url and broker.credentials_file)"
        )
    return attach_external(config)


def load_enrolment(scenario: Scenario, path: Path | None) -> dict[str, bytes]:
    """HMU enrolment secrets ``{hmu: hex}`` from ``path``; required when QKD is on."""
    if not scenario.qkd.enabled:
        return {}
    if path is None:
        raise UsageError("this scenario uses QKD: give --enrolment FILE ({hmu_id: hex secret})")
    try:
        raw = yaml.safe_load(path.read_text())
        secrets = {str(k): bytes.fromhex(str(v)) for k, v in (raw or {}).items()}
    except (OSError, yaml.YAMLError, ValueError, AttributeError) as exc:
        raise UsageError(
            f"--enrolment {path}: expected a YAML mapping hmu_id: hex secret ({exc})"
        ) from None
    if not secrets:
        raise UsageError(f"--enrolment {path}: no secrets in it")
    return secrets


def field_ready(scenario: Scenario) -> None:
    """What agents on separate machines cannot run yet: a ``UsageError`` naming the key."""
    if scenario.topology.fog_nodes:
        raise UsageError(
            f"topology.fog_nodes {scenario.topology.fog_nodes}: fog aggregators run only"
            " inside iomt run for now; run it there, or set topology.fog_nodes: 0"
        )
    if scenario.update_encryption.kind != "none":
        raise UsageError(
            f"update_encryption.kind {scenario.update_encryption.kind}: the agents of a field"
            " trial have no way to receive the run's keys or cipher yet; run it with iomt run"
        )


def _run_id(scenario: Scenario, run_id: str | None) -> str:
    try:
        return check_part(run_id or scenario.name, "run id")
    except ValueError as exc:
        raise UsageError(str(exc)) from None


async def run_server_alone(
    scenario: Scenario,
    run_id: str | None,
    url: str | None,
    creds: Path | None,
    ca: Path | None,
    out_root: Path,
    enrolment_file: Path | None = None,
    resume: Path | None = None,
) -> dict[str, Any]:
    started = time.monotonic()
    field_ready(scenario)
    enrolment = load_enrolment(scenario, enrolment_file)
    handle = _handle(scenario, url, creds, ca)
    checkpoint = resumable(resume, scenario) if resume is not None else None
    rid = checkpoint.run_id if checkpoint else _run_id(scenario, run_id)
    if checkpoint and run_id not in (None, rid):
        raise UsageError(f"--run-id {run_id}: the run in {resume} is {rid}")
    data = await asyncio.to_thread(prepare_data, scenario)
    run_dir = resume if resume is not None else prepare_run_dir(scenario, out_root, rid)
    channel = None
    if scenario.qkd.enabled:
        if topics.CHANNEL_ID not in handle.credentials:
            raise UsageError(f"--credentials lacks {topics.CHANNEL_ID!r}, the QKD channel agent")
        kwargs = client_kwargs(handle, topics.CHANNEL_ID)
        channel = asyncio.create_task(ChannelAgent(channel_setup(scenario, rid, kwargs)).run())
    with run_log(run_dir), single_threaded_blas():
        sink = open_sink(scenario, rid, run_dir)
        try:
            setup = server_setup(
                scenario,
                data,
                rid,
                run_dir,
                client_kwargs(handle, SERVER_ID),
                None,
                enrolment,
                handle,
                sink,
                checkpoint,
            )
            outcome = await ServerAgent(setup).run()
        finally:
            metrics = await sink.aclose()
            channel_outcome = await stop_channel(channel)
        results = build_results(
            scenario,
            rid,
            handle,
            data,
            outcome,
            mode="server-only",
            wall_time_s=time.monotonic() - started,
            channel=channel_outcome,
        )
        results["metrics"] = metrics.as_dict()
        if checkpoint is not None:
            results["resumed_after_round"] = checkpoint.completed_rounds
        write_results(run_dir, results)
    return results


def pick_hmus(spec: str, known: list[str]) -> list[str]:
    """The HMUs ``spec`` names: ids and ``first..last`` ranges of the scenario's ids,
    comma-separated (``hmu-01..hmu-20,hmu-25``); ``UsageError`` naming what is wrong."""
    picked: list[str] = []
    for item in (part.strip() for part in spec.split(",")):
        first, dots, last = item.partition("..")
        for end in (first, last) if dots else (first,):
            if end not in known:
                raise UsageError(
                    f"--ids {spec}: {end or '(empty)'} is not an HMU of the scenario"
                    f" ({known[0]}..{known[-1]})"
                )
        span = known[known.index(first) : known.index(last) + 1] if dots else [first]
        if not span:
            raise UsageError(f"--ids {spec}: {item} runs backwards")
        picked += [h for h in span if h not in picked]
    return picked


async def run_hmus_alone(
    scenario: Scenario,
    hmus: list[str],
    run_id: str | None,
    url: str | None,
    creds: Path | None,
    ca: Path | None,
    enrolment_file: Path | None = None,
    state_dir: Path | None = None,
) -> list[HmuOutcome]:
    """``hmus`` against a broker from this one process (``iomt hmu --id`` / ``--ids``);
    with several, ``state_dir`` holds one folder per HMU."""
    for hmu in hmus:
        if hmu not in scenario.hmu_ids:
            raise UsageError(f"--id {hmu}: the scenario has {', '.join(scenario.hmu_ids[:3])}...")
    if (scenario.traffic.source == "live" or scenario.traffic.detect.enabled) and len(hmus) > 1:
        raise UsageError("traffic live/detect watch one interface: give one HMU (--id)")
    field_ready(scenario)
    enrolment = load_enrolment(scenario, enrolment_file)
    missing = [h for h in hmus if scenario.qkd.enabled and h not in enrolment]
    if missing:
        raise UsageError(f"--enrolment has no secret for {', '.join(missing)}")
    handle = _handle(scenario, url, creds, ca)
    unknown = [h for h in hmus if h not in handle.credentials]
    if unknown:
        raise UsageError(f"--credentials has no password for {', '.join(unknown)}")
    rid = _run_id(scenario, run_id)
    data = await asyncio.to_thread(prepare_data, scenario)
    if scenario.traffic.source == "live":
        (hmu,) = hmus
        out = cache_dir(scenario) / "live" / f"{rid}-{hmu}.pcap"
        out.parent.mkdir(parents=True, exist_ok=True)
        share = await asyncio.to_thread(capture_share, scenario, data, out)
        data = dataclasses.replace(data, parts={**data.parts, hmu: share})
    setups = [
        hmu_setup(
            scenario,
            data,
            rid,
            hmu,
            client_kwargs(handle, hmu),
            enrolment.get(hmu),
            state_dir / hmu if state_dir is not None and len(hmus) > 1 else state_dir,
        )  # fmt: skip
        for hmu in hmus
    ]
    return await serve_hmus(scenario, setups, data.scaler)
