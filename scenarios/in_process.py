"""Every agent of a run as a task in this process, HMUs training in a shared process pool."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from iomt.fedlearn.train import warm_up
from iomt.hmu_agent.runner import HmuAgent
from iomt.hmu_agent.setup import HmuOutcome
from iomt.orphans import reap_with_me
from iomt.scenarios.setups import RunParts, churn_away_s
from iomt.server_agent.fog_agent import FogAgent, FogOutcome
from iomt.server_agent.setup import ServerOutcome
from iomt.stopping import cancel_and_wait

log = logging.getLogger(__name__)


class TrainingPool(Executor):
    """Worker processes for the HMUs' local training, one per core, replaced when one dies.

    Training is Python-heavy (small batches through a small MLP), so threads would
    serialise on the GIL; processes use every core. Each worker pays its imports and
    warm-up once (torch's only if a neural cipher needs it), and the launcher itself
    never imports torch for training.

    A worker that dies (killed, out of memory) breaks its ``ProcessPoolExecutor``: every
    task in flight fails with ``BrokenProcessPool``, and each HMU records that round as
    failed with the reason.  A fresh pool starts and warms up at once, while the broken
    round waits out its deadline, so the next round trains; ``replaced`` counts how often.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 2
        self.replaced = 0
        self._watched: set[int] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
        )

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._lock:
            try:
                future = self._pool.submit(fn, *args, **kwargs)
            except BrokenProcessPool:
                self._replace(self._pool)
                future = self._pool.submit(fn, *args, **kwargs)
            pool = self._pool
            future.add_done_callback(lambda f: self._on_done(f, pool))
            self._watch_workers()
            return future

    def _on_done(self, future: Future[Any], pool: ProcessPoolExecutor) -> None:
        """A task that failed with its pool: replace the pool now, off the pool's own thread."""
        if not future.cancelled() and isinstance(future.exception(), BrokenProcessPool):
            threading.Thread(target=self._replace_broken, args=(pool,), daemon=True).start()

    def _replace_broken(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if pool is self._pool and not self._closed:
                self._replace(pool)
                for _ in range(self.workers):  # spawn and warm up every new worker now
                    self._pool.submit(time.sleep, 0.05)
                self._watch_workers()

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        """Called with the lock held."""
        log.warning("a training worker died; starting %d new workers", self.workers)
        broken.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()
        self.replaced += 1

    def _watch_workers(self) -> None:
        """New workers (they start on submission) die with this process, whatever kills it."""
        for pid in self.worker_pids():
            if pid not in self._watched:
                self._watched.add(pid)
                reap_with_me(pid)

    def worker_pids(self) -> list[int]:
        """The process ids of the current workers (for the chaos tests)."""
        return list(getattr(self._pool, "_processes", {}) or {})

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)

    def kill(self) -> None:
        """Kill the workers now: a task in flight is lost (this process need not wait for
        it to exit)."""
        for pid in self.worker_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _init_worker() -> None:
    """Each worker computes on one thread: the pool has a worker per core.  numpy's BLAS
    is held to ``training.threads`` by the trainer; torch, imported later only where a
    neural cipher runs, reads its thread count from the environment at import (on two
    threads per worker, the cipher's encoding cost a SAFE-MED run about 6 s more)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    warm_up()


def training_pool(workers: int | None = None) -> TrainingPool:
    """The HMUs' training workers (see ``TrainingPool``)."""
    return TrainingPool(workers)


def _start_workers(pool: Executor) -> None:
    """Start (and warm up) every worker before the first round is timed."""
    workers = getattr(pool, "workers", None) or getattr(pool, "_max_workers", 1)
    list(pool.map(time.sleep, [0.05] * workers))


async def _fog_reports(tasks: list[asyncio.Task[FogOutcome]]) -> dict[str, Any]:
    """Each fog aggregator's report; they leave on the cloud's run-complete."""
    _, pending = await asyncio.wait(tasks, timeout=5.0)
    await cancel_and_wait(pending)
    reports: dict[str, Any] = {}
    for task in tasks:
        failure = _failure(task, "did not leave")
        reports[task.get_name()] = failure or task.result().as_report()
    return reports


def _failure(task: asyncio.Task[Any], cancelled: str) -> dict[str, str] | None:
    """The report of an agent task that did not end well; None when it did."""
    if not task.done():
        return {"state": "failed", "error": "did not stop when cancelled"}
    if task.cancelled():
        return {"state": "failed", "error": cancelled}
    if task.exception() is not None:
        return {"state": "failed", "error": str(task.exception())}
    return None


async def run_in_process(run: RunParts) -> tuple[ServerOutcome, dict[str, Any]]:
    scenario, executor = run.scenario, run.executor
    own_executor = executor is None
    pool = executor or training_pool()
    try:
        await asyncio.to_thread(_start_workers, pool)
        fogs = run.fogs.members if run.fogs is not None else {}
        fog_tasks = [
            asyncio.create_task(FogAgent(run.fogs.setup(scenario, run.run_id, f)).run(), name=f)
            for f in fogs
            if run.fogs is not None
        ]
        agents = [HmuAgent(run.hmu(h), pool) for h in scenario.hmu_ids]
        hmu_tasks = [asyncio.create_task(a.run(), name=a.setup.hmu_id) for a in agents]
        try:
            outcome = await run.server().run()
        finally:
            # HMUs leave on the run-complete message (one away on churn reads it when it
            # is back); give them a moment, then stop them
            done, pending = await asyncio.wait(hmu_tasks, timeout=5.0 + churn_away_s(scenario))
            await cancel_and_wait(pending)
            fog_reports = await _fog_reports(fog_tasks) if fog_tasks else {}
        outcome.fogs = fog_reports
        report: dict[str, Any] = {}
        for task in hmu_tasks:
            if task.done() and task.cancelled():
                report[task.get_name()] = {"state": "cancelled"}
            elif failure := _failure(task, "cancelled"):
                report[task.get_name()] = failure
            else:
                result: HmuOutcome = task.result()
                report[result.hmu_id] = result.as_report()
        return outcome, report
    finally:
        if own_executor:
            pool.shutdown(wait=False, cancel_futures=True)
