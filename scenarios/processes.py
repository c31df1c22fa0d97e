"""Every HMU of a run as its own OS process, forked from a server that has torch loaded.

Importing torch costs a process a second or two of CPU and a few hundred MB of private
memory; fifty HMU processes that each import it start slowly and fill the machine.
Here a *fork server* (multiprocessing's ``forkserver`` start method) imports torch
and the HMU agent once and warms torch up (``iomt.scenarios.hmu_preload``), and every
HMU process is forked from it, sharing those pages copy-on-write.  The fork server is
a fresh interpreter started for this (not a fork of the launcher, which runs threads
and an event loop), and it never starts an OpenMP pool; each HMU trains on one torch
thread in its own worker thread, as ``iomt hmu`` does (``iomt.scenarios.hmu_service``).

At most ``max_starting`` HMU processes start at once: a process counts as starting until
it has connected to the broker and said it is online (it tells the launcher on a
pipe).  Each process gets its setup (its own share of the data, its own broker
password and enrolment secret, nobody else's) through the fork server's pipe, never
through a file, and writes its outcome to ``agents/<hmu>.outcome.json`` before it
exits, so an HMU that finished is recorded as done however late it exits.  The FL
server stays in the launcher, which shows progress.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import multiprocessing
import os
import sys
import time
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from iomt.atomic import write_text_atomically
from iomt.hmu_agent.kernel_link import KernelLink
from iomt.hmu_agent.setup import HmuSetup
from iomt.orphans import reap_with_me
from iomt.scenarios.schema import Scenario
from iomt.scenarios.setups import RunParts, churn_away_s
from iomt.server_agent.setup import ServerOutcome

log = logging.getLogger(__name__)

PRELOAD = ["iomt.scenarios.hmu_preload"]
"""Imported once by the fork server: torch loaded and warmed up, shared by every HMU."""
ONLINE_WAIT_S = 60.0
"""How long one starting HMU may take to come online before the next one starts anyway."""
EXIT_WAIT_S = 15.0
"""How long HMU processes have to exit after the run before they are stopped."""


def fork_server() -> ForkServerContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def hmu_process(
    scenario: Scenario, setup: HmuSetup, log_path: Path, outcome_path: Path, ready: Connection
) -> None:
    """An HMU process: its output to its own log, one torch thread, its outcome to a file;
    under ``links.shaping: tc`` in its own network namespace, its link shaped."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    if isinstance(setup.on_upload, KernelLink):  # before any socket is opened
        setup.on_upload.enter()
        setup.on_upload.shape(1, 1)
    from iomt.scenarios.hmu_service import serve_hmu

    def online() -> None:
        ready.send(True)
        ready.close()

    setup = dataclasses.replace(setup, on_online=online)
    outcome = asyncio.run(serve_hmu(scenario, setup))
    write_text_atomically(outcome_path, json.dumps(outcome.as_report(), indent=1))
    log.info("%s: %s", setup.hmu_id, outcome.reason)


async def run_processes(run: RunParts) -> tuple[ServerOutcome, dict[str, Any]]:
    """Each HMU as its own forked OS process; the server in this one."""
    agents = run.run_dir / "agents"
    agents.mkdir(exist_ok=True)
    procs: dict[str, BaseProcess] = {}
    starter = asyncio.create_task(_start_all(run, procs, agents))
    try:
        outcome = await run.server().run()
        starter.cancel()
        await asyncio.gather(starter, return_exceptions=True)
        wait_s = EXIT_WAIT_S + churn_away_s(run.scenario)  # one away on churn is late
        return outcome, await _collect(procs, agents, wait_s)
    finally:
        starter.cancel()
        for proc in procs.values():
            if proc.is_alive():
                proc.terminate()
        for proc in procs.values():
            await asyncio.to_thread(proc.join, 5)
            if proc.is_alive():
                proc.kill()
                await asyncio.to_thread(proc.join)


async def _start_all(run: RunParts, procs: dict[str, BaseProcess], agents: Path) -> None:
    context = fork_server()
    gate = asyncio.Semaphore(max_starting())
    waits = []
    for hmu in run.scenario.hmu_ids:
        await gate.acquire()
        setup = run.hmu(hmu)
        ready, ready_w = context.Pipe(duplex=False)
        proc = context.Process(
            target=hmu_process,
            args=(run.scenario, setup, agents / f"{hmu}.log", agents / f"{hmu}.outcome.json",
                  ready_w),
            name=hmu,
            daemon=True,
        )  # fmt: skip
        await asyncio.to_thread(proc.start)
        ready_w.close()
        assert proc.pid is not None
        reap_with_me(proc.pid)
        procs[hmu] = proc
        waits.append(asyncio.create_task(_online(ready, gate)))
    await asyncio.gather(*waits)


def max_starting() -> int:
    """HMU processes allowed to start at once: one per core, at least two."""
    return max(2, os.cpu_count() or 2)


async def _online(ready: Connection, gate: asyncio.Semaphore) -> None:
    """Release a start slot when the HMU says it is online, dies, or takes too long."""
    try:
        await asyncio.to_thread(ready.poll, ONLINE_WAIT_S)
    finally:
        ready.close()
        gate.release()


async def _collect(
    procs: dict[str, BaseProcess], agents: Path, wait_s: float = EXIT_WAIT_S
) -> dict[str, Any]:
    """Each HMU's outcome: what it wrote before exiting, else why there is none."""
    deadline = time.monotonic() + wait_s
    report: dict[str, Any] = {}
    for hmu, proc in procs.items():
        await asyncio.to_thread(proc.join, max(0.0, deadline - time.monotonic()))
        path = agents / f"{hmu}.outcome.json"
        if path.is_file():
            report[hmu] = {**json.loads(path.read_text()), "exit": proc.exitcode}
        elif proc.exitcode is None:
            report[hmu] = {"state": "failed", "error": f"still running {wait_s:g} s after"
                           " the run, without an outcome; stopped"}  # fmt: skip
        else:
            report[hmu] = {
                "state": "failed",
                "exit": proc.exitcode,
                "error": f"exited with {proc.exitcode} before it finished (see agents/{hmu}.log)",
            }
    return report
