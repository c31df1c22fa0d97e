"""Launch a scenario: a broker, the FL server and every HMU, in one process or in many.

The same agent classes run in every shape: as tasks in this process (the default),
as separate ``iomt server`` / ``iomt hmu`` processes (``--processes``), or one at a
time on field hardware pointed at a remote broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from threadpoolctl import threadpool_limits

from iomt.adversary.mitm import MitmProxy, route_through, start_eves
from iomt.broker import BrokerHandle, client_kwargs, start_broker
from iomt.errors import UsageError
from iomt.fedlearn.model import init_weights
from iomt.fedlearn.pipeline import build_pipeline
from iomt.fedlearn.train import warm_up
from iomt.hmu_agent.runner import HmuAgent, HmuOutcome, HmuSetup
from iomt.monitoring.forwarder import ForwardLimits, MetricsForwarder
from iomt.monitoring.resources import ResourceSampler
from iomt.monitoring.sink import MetricsSink
from iomt.qkd_channel.agent import ChannelAgent, ChannelOutcome, ChannelSetup
from iomt.scenarios.data_plan import FederatedData, prepare_data
from iomt.scenarios.results import build_results, write_results
from iomt.scenarios.schema import Scenario, scenario_yaml
from iomt.server_agent.runner import ServerAgent, ServerOutcome, ServerSetup
from iomt.wire.topics import CHANNEL_ID, SERVER_ID

log = logging.getLogger(__name__)

RoundCallback = Callable[[dict[str, Any]], None]


def make_run_id(name: str) -> str:
    """``<name>-<UTC time>-<4 hex>``: unique, sortable and a valid topic level."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{name[:40]}-{stamp}-{secrets.token_hex(2)}"


def make_enrolment(hmus: list[str]) -> dict[str, bytes]:
    """A fresh 256-bit enrolment secret per HMU: it authenticates QKD post-processing."""
    return {h: secrets.token_bytes(32) for h in hmus}


def write_secret_file(path: Path, values: dict[str, str]) -> Path:
    """An owner-only YAML mapping (passwords, enrolment secrets) for agents' own processes."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(values, fh)
    return path


def channel_setup(scenario: Scenario, run_id: str, kwargs: dict[str, Any]) -> ChannelSetup:
    hmus = scenario.hmu_ids
    rng = np.random.default_rng([scenario.seed, 0xE5E])
    return ChannelSetup(
        run_id=run_id,
        hmus=hmus,
        qkd=scenario.qkd,
        eavesdroppers=scenario.qkd.eavesdroppers_for(hmus, rng),
        seed=scenario.seed,
        client_kwargs=kwargs,
    )


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """numpy's BLAS on one thread in this process for the duration.

    The agents' own numpy work (evaluation, aggregation, codecs) is small, and the cores
    belong to the training workers: OpenBLAS's spinning threads took 64 ms of CPU per
    round of 20 HMUs from them (bench/round_overhead.py, 1.46 -> 1.18 at K = 20, E = 2).
    """
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@contextlib.contextmanager
def run_log(run_dir: Path) -> Iterator[None]:
    """Send the testbed's log records to ``run_dir/run.log`` for the duration."""
    handler = logging.FileHandler(run_dir / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()


def prepare_run_dir(scenario: Scenario, out_root: Path, run_id: str) -> Path:
    run_dir = out_root / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    (run_dir / "scenario.yaml").write_text(scenario_yaml(scenario))
    return run_dir


def server_setup(
    scenario: Scenario,
    data: FederatedData,
    run_id: str,
    run_dir: Path,
    kwargs: dict[str, Any],
    on_round: RoundCallback | None,
    enrolment: dict[str, bytes] | None = None,
    handle: BrokerHandle | None = None,
    sink: MetricsSink | None = None,
) -> ServerSetup:
    forwarder = (
        MetricsForwarder(run_id, emit=sink.emit, limits=ForwardLimits.from_config(scenario.metrics))
        if sink is not None
        else None
    )
    return ServerSetup(
        run_id=run_id,
        hmus=scenario.hmu_ids,
        federation=scenario.federation,
        hidden=scenario.training.hidden,
        initial_weights=init_weights(data.n_features, scenario.training.hidden, scenario.seed),
        x_test=data.x_test,
        y_test=data.y_test,
        seed=scenario.seed,
        run_dir=run_dir,
        client_kwargs=kwargs,
        on_round=on_round,
        qkd=scenario.qkd,
        secrets=enrolment or {},
        revoke=handle.revoke if handle is not None else None,
        emit=sink.emit if sink is not None else None,
        forwarder=forwarder,
        defence=scenario.defence,
    )


def hmu_setup(
    scenario: Scenario,
    data: FederatedData,
    run_id: str,
    hmu: str,
    kwargs: dict[str, Any],
    secret: bytes | None = None,
) -> HmuSetup:
    x, y = data.parts[hmu]
    return HmuSetup(
        run_id=run_id,
        hmu_id=hmu,
        x=x,
        y=y,
        training=scenario.training,
        seed=scenario.seed,
        client_kwargs=kwargs,
        qkd=scenario.qkd,
        secret=secret,
        pipeline=build_pipeline(
            attacks=scenario.attacks,
            privacy=scenario.privacy,
            compression=scenario.compression,
            hmus=scenario.hmu_ids,
            seed=scenario.seed,
        ),
    )


def open_sink(scenario: Scenario, run_id: str, run_dir: Path | None) -> MetricsSink:
    """The run's metrics sink: ``metrics.lp`` in the run directory, and InfluxDB if set."""
    strategy = scenario.defence.aggregator + ("+qkd" if scenario.qkd.enabled else "")
    tags = {"run": run_id, "scenario": scenario.name, "strategy": strategy}
    return MetricsSink.from_config(scenario.metrics, run_dir=run_dir, tags=tags)


@dataclass
class RunOutput:
    run_dir: Path
    results: dict[str, Any]


async def launch(
    scenario: Scenario,
    out_root: Path,
    *,
    processes: bool = False,
    on_round: RoundCallback | None = None,
    on_start: Callable[[str, str], None] | None = None,
    executor: Executor | None = None,
) -> RunOutput:
    """Run ``scenario`` end to end and write its run directory."""
    started = time.monotonic()
    if scenario.traffic.source == "live":
        raise UsageError(
            "traffic.source live is for `iomt hmu` capturing on its own interface in a "
            "field trial; for a local run use traffic.source replay"
        )
    run_id = make_run_id(scenario.name)
    data = await asyncio.to_thread(prepare_data, scenario)
    run_dir = prepare_run_dir(scenario, out_root, run_id)
    hmus = scenario.hmu_ids
    with run_log(run_dir), single_threaded_blas():
        log.info("run %s: %d HMUs, %d rows from %s", run_id, len(hmus), data.rows, data.dataset)
        sink = open_sink(scenario, run_id, run_dir)
        sampler = _sample_resources(scenario, sink)
        try:
            async with start_broker(scenario.broker, run_dir, run_id, hmus) as handle:
                run = _Run(scenario, data, run_id, run_dir, handle, sink, on_round, executor)
                outcome, hmu_report, channel_outcome = await _run_agents(run, processes, on_start)
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
            mode="processes" if processes else "in-process",
            wall_time_s=time.monotonic() - started,
            hmus=hmu_report,
            channel=channel_outcome,
        )
        results["metrics"] = metrics.as_dict()
        write_results(run_dir, results)
        _report(run_dir)
        log.info("run %s: %s", run_id, outcome.reason)
    return RunOutput(run_dir, results)


def _sample_resources(scenario: Scenario, sink: MetricsSink) -> asyncio.Task[None] | None:
    interval = scenario.metrics.resources_interval_s
    if not scenario.metrics.enabled or interval <= 0:
        return None
    return asyncio.create_task(ResourceSampler("launcher", interval).run(sink.emit))


def _report(run_dir: Path) -> None:
    """The HTML report with plots; a failure here never loses the results."""
    try:
        from iomt.monitoring.report import render_report

        render_report(run_dir)
    except Exception as exc:  # plotting must not turn a finished run into a failed one
        log.warning("report not written: %s", exc)


@dataclass
class _Run:
    """One run's shared parts, handed to whichever shape runs the agents."""

    scenario: Scenario
    data: FederatedData
    run_id: str
    run_dir: Path
    handle: BrokerHandle
    sink: MetricsSink
    on_round: RoundCallback | None = None
    executor: Executor | None = None
    enrolment: dict[str, bytes] = field(default_factory=dict)
    eves: dict[str, MitmProxy] = field(default_factory=dict)

    def server(self) -> ServerAgent:
        kwargs = client_kwargs(self.handle, SERVER_ID)
        return ServerAgent(
            server_setup(
                self.scenario,
                self.data,
                self.run_id,
                self.run_dir,
                kwargs,
                self.on_round,
                self.enrolment,
                self.handle,
                self.sink,
            )
        )

    def hmu_kwargs(self, hmu: str) -> dict[str, Any]:
        """How an HMU reaches the broker: directly, or through Eve where she sits on its path."""
        kwargs = client_kwargs(self.handle, hmu)
        return route_through(kwargs, self.eves[hmu]) if hmu in self.eves else kwargs


async def _run_agents(
    run: _Run, processes: bool, on_start: Callable[[str, str], None] | None
) -> tuple[ServerOutcome, dict[str, Any], ChannelOutcome | None]:
    scenario, handle = run.scenario, run.handle
    log.info("broker: %s at %s", handle.kind, handle.url)
    if on_start is not None:
        on_start(run.run_id, handle.url)
    run.enrolment = make_enrolment(scenario.hmu_ids)
    channel_task = None
    if scenario.qkd.enabled:
        kwargs = client_kwargs(handle, CHANNEL_ID)
        channel = ChannelAgent(channel_setup(scenario, run.run_id, kwargs))
        channel_task = asyncio.create_task(channel.run(), name=CHANNEL_ID)
    eve_rng = np.random.default_rng([scenario.seed, 0xE7E])
    try:
        async with start_eves(scenario.mitm, handle.host, handle.port, eve_rng) as eves:
            run.eves = eves
            runner = _run_processes if processes else _run_in_process
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
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return None
    if task.exception() is not None:
        log.warning("the QKD channel agent failed: %s", task.exception())
        return None
    return task.result()


def training_pool(workers: int | None = None) -> Executor:
    """Worker processes for the HMUs' local training, one per core.

    Training is Python-heavy (small batches through a small MLP), so threads would
    serialise on the GIL; processes use every core. Each worker pays torch's import
    and warm-up once, and the launcher itself never imports torch.
    """
    return ProcessPoolExecutor(
        max_workers=workers or os.cpu_count() or 2,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=warm_up,
    )


def _start_workers(pool: Executor) -> None:
    """Start (and warm up) every worker before the first round is timed."""
    workers = getattr(pool, "_max_workers", 1)
    list(pool.map(time.sleep, [0.05] * workers))


async def _run_in_process(run: _Run) -> tuple[ServerOutcome, dict[str, Any]]:
    scenario, executor = run.scenario, run.executor
    own_executor = executor is None
    pool = executor or training_pool()
    try:
        await asyncio.to_thread(_start_workers, pool)
        agents = [
            HmuAgent(
                hmu_setup(scenario, run.data, run.run_id, h, run.hmu_kwargs(h), run.enrolment[h]),
                pool,
            )
            for h in scenario.hmu_ids
        ]
        hmu_tasks = [asyncio.create_task(a.run(), name=a.setup.hmu_id) for a in agents]
        try:
            outcome = await run.server().run()
        finally:
            # HMUs leave on the run-complete message; give them a moment, then stop them
            done, pending = await asyncio.wait(hmu_tasks, timeout=5.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        report: dict[str, Any] = {}
        for task in hmu_tasks:
            if task.cancelled():
                report[task.get_name()] = {"state": "cancelled"}
            elif task.exception() is not None:
                report[task.get_name()] = {"state": "failed", "error": str(task.exception())}
            else:
                result: HmuOutcome = task.result()
                report[result.hmu_id] = {
                    "state": "done",
                    "rounds_trained": result.rounds_trained,
                    "key_sessions": result.key_sessions,
                    "rejected": result.rejected,
                    "failures": result.failures,
                    "bytes": result.bytes,
                }
        return outcome, report
    finally:
        if own_executor:
            pool.shutdown(wait=False, cancel_futures=True)


def write_credentials(run_dir: Path, handle: BrokerHandle) -> Path:
    """The agents' passwords for their own processes (owner-only file in the run directory)."""
    passwords = {k: c.password for k, c in handle.credentials.items()}
    return write_secret_file(run_dir / "credentials.yaml", passwords)


def write_enrolment(run_dir: Path, enrolment: dict[str, bytes]) -> Path:
    """Each HMU's enrolment secret, hex, for agents' own processes (owner-only)."""
    return write_secret_file(run_dir / "enrolment.yaml", {h: k.hex() for h, k in enrolment.items()})


def agent_command(
    role: str,
    scenario_file: Path,
    run_id: str,
    handle: BrokerHandle,
    creds: Path,
    enrolment: Path | None = None,
    broker_url: str | None = None,
) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "iomt.scenarios.cli",
        role,
        "--scenario",
        str(scenario_file),
        "--run-id",
        run_id,
        "--broker-url",
        broker_url or handle.url,
        "--credentials",
        str(creds),
    ]
    if enrolment is not None:
        cmd += ["--enrolment", str(enrolment)]
    if handle.ca_file is not None:
        cmd += ["--ca-file", str(handle.ca_file)]
    return cmd


async def _run_processes(run: _Run) -> tuple[ServerOutcome, dict[str, Any]]:
    """Each HMU as its own OS process; the server stays here so progress can be shown."""
    run_dir, handle = run.run_dir, run.handle
    creds = write_credentials(run_dir, handle)
    enrolment_file = write_enrolment(run_dir, run.enrolment) if run.scenario.qkd.enabled else None
    scenario_file = run_dir / "scenario.yaml"
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = run_dir / "agents"
    logs.mkdir(exist_ok=True)
    try:
        for hmu in run.scenario.hmu_ids:
            proxy = run.eves.get(hmu)
            url = f"mqtt://{proxy.host}:{proxy.port}" if proxy is not None else None
            cmd = [
                *agent_command(
                    "hmu", scenario_file, run.run_id, handle, creds, enrolment_file, url
                ),
                "--id",
                hmu,
            ]
            with (logs / f"{hmu}.log").open("wb") as out:
                procs[hmu] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        outcome = await run.server().run()
        deadline = time.monotonic() + 15.0
        report: dict[str, Any] = {}
        for hmu, proc in procs.items():
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            report[hmu] = {
                "state": "done" if proc.returncode == 0 else "failed",
                "exit": proc.returncode,
            }
        return outcome, report
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
