"""Launch a scenario: a broker, the FL server and every HMU, in one process or in many.

The same agent classes run in every shape: as tasks in this process (the default),
as separate ``iomt server`` / ``iomt hmu`` processes (``--processes``), or one at a
time on field hardware pointed at a remote broker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import BrokenExecutor, CancelledError, Executor, Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from iomt.adversary.mitm import start_eves
from iomt.atomic import new_run_dir, write_text_atomically
from iomt.blas import single_threaded_blas, single_threaded_torch
from iomt.broker import client_kwargs, start_broker
from iomt.errors import UsageError
from iomt.monitoring.resources import ResourceSampler
from iomt.monitoring.sink import MetricsSink
from iomt.qkd_channel.agent import ChannelAgent, ChannelOutcome
from iomt.scenarios.data_plan import prepare_data
from iomt.scenarios.fog_nodes import cloud_tiers, start_fogs
from iomt.scenarios.hmu_netns import kernel_network, kernel_shaped, refuse_unshapeable
from iomt.scenarios.in_process import run_in_process
from iomt.scenarios.processes import run_processes
from iomt.scenarios.ray_hosts import ray_cluster, run_on_ray
from iomt.scenarios.results import RESULTS_FILE, build_results
from iomt.scenarios.run_end import RunEnd, finish_run, run_log
from iomt.scenarios.schema import Scenario, scenario_yaml
from iomt.scenarios.setups import (
    RoundCallback,
    RunParts,
    channel_setup,
    make_cipher,
    make_enrolment,
    make_he_keys,
    open_sink,
)
from iomt.server_agent.checkpoint import Checkpoint, read_checkpoint
from iomt.server_agent.setup import ServerOutcome
from iomt.stopping import cancel_and_wait
from iomt.wire.topics import CHANNEL_ID

Runner = Callable[[RunParts], Awaitable[tuple[ServerOutcome, dict[str, Any]]]]
"""How the HMUs of a run are placed: in this process, one process each, or on Ray."""

log = logging.getLogger(__name__)


def make_run_id(name: str) -> str:
    """``<name>-<UTC time>-<4 hex>``: unique, sortable and a valid topic level."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{name[:40]}-{stamp}-{secrets.token_hex(2)}"


def prepare_run_dir(scenario: Scenario, out_root: Path, run_id: str) -> Path:
    """A new run directory holding the resolved scenario."""
    run_dir = new_run_dir(out_root, run_id)
    write_text_atomically(run_dir / "scenario.yaml", scenario_yaml(scenario))
    return run_dir


@dataclass
class RunOutput:
    """A run's directory and results; with ``pending``, the end of the run (its leakage,
    ``results.json``) is still being done in ``end_in`` and ``results`` lacks the leakage:
    ``finished()`` waits for it."""

    run_dir: Path
    results: dict[str, Any]
    pending: Future[dict[str, Any]] | None = None
    end: RunEnd | None = None

    def finished(self) -> dict[str, Any]:
        """The complete results, once ``results.json`` is written; a worker lost on the
        way (killed, out of memory) leaves the end to be done here."""
        if self.pending is None:
            return self.results
        try:
            self.results = self.pending.result()
        except (BrokenExecutor, CancelledError) as exc:
            if self.end is None:
                raise
            log.warning("%s: finishing the run here (%s)", self.run_dir, exc or "cancelled")
            self.results = finish_run(self.end)
        self.pending = None
        return self.results


def resumable(run_dir: Path, scenario: Scenario) -> Checkpoint:
    """The checkpoint of an unfinished run of ``scenario`` in ``run_dir``; ``UsageError`` if
    there is none, the run completed, or it ran another scenario."""
    results = run_dir / RESULTS_FILE
    if results.is_file() and json.loads(results.read_text()).get("completed"):
        raise UsageError(f"{run_dir}: the run completed; there is nothing to resume")
    recorded = run_dir / "scenario.yaml"
    if not recorded.is_file() or recorded.read_text() != scenario_yaml(scenario):
        raise UsageError(
            f"{recorded}: the run was started with another scenario; resume with this file"
        )
    return read_checkpoint(run_dir)


async def launch(
    scenario: Scenario,
    out_root: Path,
    *,
    processes: bool = False,
    on_round: RoundCallback | None = None,
    on_start: Callable[[str, str], None] | None = None,
    executor: Executor | None = None,
    resume: Path | None = None,
    ray_address: str | None = None,
    end_in: Executor | None = None,
) -> RunOutput:
    """Run ``scenario`` end to end and write its run directory; with ``resume`` (a run
    directory holding this scenario), continue that run from its last checkpoint; with
    ``ray_address`` (``auto`` or HOST:PORT) the HMUs run on that Ray cluster; with
    ``end_in``, a leakage measurement runs there and the run returns before it ends
    (``RunOutput.pending``, ``iomt.scenarios.run_end``)."""
    if scenario.traffic.source == "live":
        raise UsageError(
            "traffic.source live is for `iomt hmu` capturing on its own interface in a "
            "field trial; for a local run use traffic.source replay"
        )
    if scenario.traffic.detect.enabled:
        raise UsageError(
            "traffic.detect watches one interface from a field HMU (`iomt hmu --id`);"
            " for a local run set traffic.detect.enabled: false"
        )
    if ray_address is not None and (processes or scenario.topology.fog_nodes or resume):
        raise UsageError("--executor ray places the HMUs of a fresh run of a flat topology;"
                         " drop --processes, --resume and topology.fog_nodes")  # fmt: skip
    if scenario.topology.fog_nodes and (processes or resume is not None):
        raise UsageError(
            "topology.fog_nodes: fog runs are in-process and start afresh (yet);"
            " drop --processes and --resume, or set topology.fog_nodes: 0"
        )
    if kernel_shaped(scenario):
        refuse_unshapeable(scenario, processes=processes and ray_address is None)
    checkpoint = resumable(resume, scenario) if resume is not None else None
    run = functools.partial(_launch, scenario, out_root, on_round=on_round, on_start=on_start,
                            executor=executor, checkpoint=checkpoint, resume=resume,
                            end_in=end_in)  # fmt: skip
    if ray_address is None:
        if processes:
            return await run(run_processes, "processes")
        return await run(run_in_process, "in-process")
    with ray_cluster(ray_address) as ray:  # joined before any run directory is made
        return await run(functools.partial(run_on_ray, ray=ray), "ray")


async def _launch(
    scenario: Scenario,
    out_root: Path,
    runner: Runner,
    mode: str,
    *,
    on_round: RoundCallback | None,
    on_start: Callable[[str, str], None] | None,
    executor: Executor | None,
    checkpoint: Checkpoint | None,
    resume: Path | None,
    end_in: Executor | None,
) -> RunOutput:
    started = time.monotonic()
    run_id = checkpoint.run_id if checkpoint else make_run_id(scenario.name)
    data = await asyncio.to_thread(prepare_data, scenario)
    run_dir = resume if resume is not None else prepare_run_dir(scenario, out_root, run_id)
    hmus = scenario.hmu_ids
    with run_log(run_dir), single_threaded_blas():
        log.info("run %s: %d HMUs, %d rows from %s", run_id, len(hmus), data.rows, data.dataset)
        sink = open_sink(scenario, run_id, run_dir)
        sampler = _sample_resources(scenario, sink)
        try:
            tiers = cloud_tiers(scenario)
            cloud_hmus = [] if tiers else hmus  # behind fogs, HMUs use their fog's broker
            with kernel_network(scenario) as network:
                also_on = network.address if network is not None else None
                async with (
                    start_broker(scenario.broker, run_dir, run_id, cloud_hmus, tiers,
                                 also_on) as handle,
                    start_fogs(scenario, run_dir, run_id, handle) as fogs,
                ):  # fmt: skip
                    run = RunParts(scenario, data, run_id, run_dir, handle, sink, on_round,
                                   executor)  # fmt: skip
                    run.resume, run.fogs, run.network = checkpoint, fogs, network
                    outcome, hmu_report, channel_outcome = await _run_agents(run, runner, on_start)
        finally:
            if sampler is not None:
                sampler.cancel()
            metrics = await sink.aclose()
        results = build_results(
            scenario,
            run_id,
            handle,
            data,
            outcome,
            mode=mode,
            wall_time_s=time.monotonic() - started,
            hmus=hmu_report,
            channel=channel_outcome,
        )
        results["metrics"] = metrics.as_dict()
        if checkpoint is not None:
            results["resumed_after_round"] = checkpoint.completed_rounds
        log.info("run %s: %s", run_id, outcome.reason)
    end = RunEnd(run_dir, results, scenario, data, outcome.weights)
    if end_in is not None and end.measures:
        return RunOutput(run_dir, results, end_in.submit(finish_run, end), end)
    return RunOutput(run_dir, await asyncio.to_thread(finish_run, end))


def _sample_resources(scenario: Scenario, sink: MetricsSink) -> asyncio.Task[None] | None:
    interval = scenario.metrics.resources_interval_s
    if not scenario.metrics.enabled or interval <= 0:
        return None
    return asyncio.create_task(ResourceSampler("launcher", interval).run(sink.emit))


async def _run_agents(
    run: RunParts, runner: Runner, on_start: Callable[[str, str], None] | None
) -> tuple[ServerOutcome, dict[str, Any], ChannelOutcome | None]:
    scenario, handle = run.scenario, run.handle
    log.info("broker: %s at %s", handle.kind, handle.url)
    if on_start is not None:
        on_start(run.run_id, handle.url)
    run.enrolment = make_enrolment(scenario.hmu_ids)
    run.he_keys = await asyncio.to_thread(make_he_keys, scenario)
    run.cipher = await asyncio.to_thread(make_cipher, scenario)
    channel_task = None
    if scenario.qkd.enabled:
        kwargs = client_kwargs(handle, CHANNEL_ID)
        channel = ChannelAgent(channel_setup(scenario, run.run_id, kwargs))
        channel_task = asyncio.create_task(channel.run(), name=CHANNEL_ID)
    eve_rng = np.random.default_rng([scenario.seed, 0xE7E])
    try:
        async with start_eves(scenario.mitm, handle.host, handle.port, eve_rng) as eves:
            run.eves = eves
            with single_threaded_torch():  # the cipher is trained: the cores go to training
                outcome, hmu_report = await runner(run)
            outcome.mitm = {
                h: {**p.policy.report(), "proxy": dataclasses.asdict(p.stats)}  # type: ignore[attr-defined]
                for h, p in eves.items()
            }
    finally:
        channel_outcome = await stop_channel(channel_task)
    return outcome, hmu_report, channel_outcome


async def stop_channel(task: asyncio.Task[ChannelOutcome] | None) -> ChannelOutcome | None:
    """The channel agent's outcome; it leaves on the run-complete message."""
    if task is None:
        return None
    done, _ = await asyncio.wait([task], timeout=5.0)
    if not done:
        await cancel_and_wait([task])
        return None
    if task.exception() is not None:
        log.warning("the QKD channel agent failed: %s", task.exception())
        return None
    return task.result()
