"""The runs behind ``iomt compare``: every point of every file over seeds 1..N, resumably.

Each (scenario, seed) runs under ``OUT/<scenario name>/``. A run directory there is
*finished* when its ``results.json`` exists (written atomically at the very end of a run)
and the SHA-256 of its ``scenario.yaml`` equals that of the seeded scenario about to run:
it is read, not run again, so re-running the same command after an interruption only
runs what is missing. A directory of the same scenario without ``results.json`` is an
*interrupted* run: it is renamed ``<dir>.interrupted`` (its log kept for reading) and the
run is done again from the start. A finished run that did not complete (lost rounds,
isolated HMUs) is a result like any other: it is kept, and the table counts it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iomt.scenarios.results import RESULTS_FILE
from iomt.scenarios.schema import Scenario, scenario_yaml

log = logging.getLogger(__name__)

INTERRUPTED = ".interrupted"


def digest(scenario_text: str) -> str:
    return hashlib.sha256(scenario_text.encode("utf-8")).hexdigest()


def _same_scenario(run_dir: Path, wanted: str) -> bool:
    recorded = run_dir / "scenario.yaml"
    return recorded.is_file() and digest(recorded.read_text(encoding="utf-8")) == wanted


def finished_run(folder: Path, scenario: Scenario) -> dict[str, Any] | None:
    """The results of a finished run of exactly ``scenario`` under ``folder`` (the latest
    if there are several), or None; interrupted runs of it are set aside on the way."""
    if not folder.is_dir():
        return None
    wanted = digest(scenario_yaml(scenario))
    found = None
    for run_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        if run_dir.name.endswith(INTERRUPTED) or not _same_scenario(run_dir, wanted):
            continue
        try:
            found = json.loads((run_dir / RESULTS_FILE).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            run_dir.rename(run_dir.with_name(run_dir.name + INTERRUPTED))
            log.info("%s: interrupted run set aside; it runs again", run_dir)
    return found


@dataclass(frozen=True)
class Job:
    """One (scenario, seed) of a comparison."""

    scenario: Scenario
    folder: Path

    @property
    def label(self) -> str:
        return f"{self.scenario.name} seed {self.scenario.seed}"


def jobs(scenarios: Sequence[Scenario], seeds: int, out: Path) -> Iterator[Job]:
    for scenario in scenarios:
        for seed in range(1, seeds + 1):
            yield Job(scenario.model_copy(update={"seed": seed}), out / scenario.name)


def run_jobs(todo: Sequence[Job], progress: Any) -> dict[str, list[dict[str, Any]]]:
    """Results per scenario name in seed order; finished runs are read, the rest run.

    ``progress`` gets ``skipped(label)`` for a finished run, ``started(label)`` and
    ``finished()`` around each run, and ``note(line)`` for work before and after the
    runs. A Ctrl-C stops between two runs' files: every run whose ``results.json`` was
    written before it is kept; one whose leakage was still being measured runs again.

    The runs share one pool of training workers: a worker's torch import and warm-up
    (about 5 s of a 25 s run) is paid once. Workers keep nothing between tasks (each
    trains from the weights and seed it is given), so a run's results do not depend on
    what the pool ran before. The neural ciphers the runs need are trained first, one
    per worker at a time (``enrol_ahead``), not one by one as each run starts. A run's
    leakage measurement goes to a worker of its own while the next run starts
    (``iomt.scenarios.run_end``): the runs leave a core idle most of the time.
    """
    from iomt.scenarios.in_process import training_pool
    from iomt.scenarios.setups import ciphers_missing, enrol_ahead

    found = [(job, finished_run(job.folder, job.scenario)) for job in todo]
    left = [job.scenario for job, results in found if results is None]
    outputs: list[tuple[Job, Any]] = []
    pool = training_pool() if left else None
    ender = training_pool(1) if left else None
    try:
        if pool is not None and (missing := ciphers_missing(left)):
            progress.note(f"compare: training {len(missing)} neural ciphers first,"
                          f" {pool.workers} at a time")  # fmt: skip
            try:
                enrol_ahead(missing, pool)
            except Exception as exc:  # a time saving only: each run still trains its own
                progress.note(f"compare: training ciphers ahead failed ({exc}); each run"
                              " trains its own")  # fmt: skip
        for job, results in found:
            if results is not None:
                progress.skipped(job.label)
                outputs.append((job, results))
                continue
            progress.started(job.label)
            outputs.append((job, asyncio.run(_launch_minding_ctrl_c(job, pool, ender))))
            progress.finished()
        pending = [out.pending for _, out in outputs if getattr(out, "pending", None)]
        if waiting := sum(1 for future in pending if not future.done()):
            progress.note(f"compare: waiting for the leakage of {waiting} runs")
        runs: dict[str, list[dict[str, Any]]] = {}
        for job, out in outputs:
            results = out if isinstance(out, dict) else out.finished()
            runs.setdefault(job.scenario.name, []).append(results)
        return runs
    finally:
        for executor in (pool, ender):
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)
        if ender is not None:
            ender.kill()  # a measurement cut short: its run has no results.json, runs again


async def _launch_minding_ctrl_c(job: Job, pool: Executor, ender: Executor) -> Any:
    """``launch`` the job's run; a Ctrl-C that came while it wound down still stops the sweep.

    On Ctrl-C ``asyncio.run`` cancels this task; a run closing its agents can absorb that
    cancellation and return normally. The request is still counted on the task, so it is
    raised again here and the sweep stops after this (finished) run.
    """
    from iomt.scenarios.launcher import launch

    output = await launch(job.scenario, job.folder, executor=pool, end_in=ender)
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
    return output


def incomplete(runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    """``name seed N`` of every run that did not complete."""
    return [
        f"{name} seed {r['seed']}" for name, rs in runs.items() for r in rs if not r["completed"]
    ]
