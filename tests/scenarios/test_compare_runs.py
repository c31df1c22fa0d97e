"""Resumable comparisons: which run directories count as finished, and the sweep's ETA."""

import asyncio
import io
import json
import os
import signal
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from iomt.scenarios.compare_runs import INTERRUPTED, finished_run, incomplete, jobs, run_jobs
from iomt.scenarios.in_process import TrainingPool
from iomt.scenarios.launcher import RunOutput
from iomt.scenarios.progress import SweepProgress
from iomt.scenarios.results import RESULTS_FILE
from iomt.scenarios.run_end import RunEnd
from iomt.scenarios.schema import load_points, scenario_yaml

SWEEP = """\
name: grid
federation: {hmus: 3, clients_per_round: 3, rounds: 2}
sweep:
  training.epochs: [1, 2]
"""


def points(tmp_path: Path):
    path = tmp_path / "grid.yaml"
    path.write_text(SWEEP)
    return load_points(path)


def fake_run(folder: Path, name: str, scenario_text: str, results: dict | None) -> Path:
    run_dir = folder / name
    run_dir.mkdir(parents=True)
    (run_dir / "scenario.yaml").write_text(scenario_text)
    if results is not None:
        (run_dir / RESULTS_FILE).write_text(json.dumps(results))
    return run_dir


def test_jobs_cover_every_point_and_seed_in_order(tmp_path):
    todo = list(jobs(points(tmp_path), 3, tmp_path / "out"))
    assert [j.label for j in todo] == [f"grid-{e} seed {s}" for e in (1, 2) for s in (1, 2, 3)]
    assert todo[4].folder == tmp_path / "out" / "grid-2"
    assert todo[4].scenario.training.epochs == 2


def test_a_run_is_finished_only_with_results_and_the_same_scenario(tmp_path):
    job = list(jobs(points(tmp_path), 2, tmp_path / "out"))[1]  # grid-1 seed 2
    other_seed = job.scenario.model_copy(update={"seed": 1})
    assert finished_run(job.folder, job.scenario) is None  # nothing there yet
    fake_run(job.folder, "a-other-seed", scenario_yaml(other_seed), {"completed": True})
    edited = scenario_yaml(job.scenario).replace("rounds: 2", "rounds: 3")
    fake_run(job.folder, "b-edited", edited, {"completed": True})
    assert finished_run(job.folder, job.scenario) is None
    fake_run(job.folder, "c-done", scenario_yaml(job.scenario), {"completed": True, "seed": 2})
    assert finished_run(job.folder, job.scenario) == {"completed": True, "seed": 2}


def test_an_interrupted_run_is_set_aside_and_a_later_finished_one_wins(tmp_path):
    job = next(jobs(points(tmp_path), 1, tmp_path / "out"))
    text = scenario_yaml(job.scenario)
    fake_run(job.folder, "run-1", text, None)
    half = fake_run(job.folder, "run-2", text, None)
    (half / RESULTS_FILE).write_text('{"completed": tr')  # cut short by a crash
    assert finished_run(job.folder, job.scenario) is None
    names = sorted(p.name for p in job.folder.iterdir())
    assert names == ["run-1" + INTERRUPTED, "run-2" + INTERRUPTED]
    assert finished_run(job.folder, job.scenario) is None  # set aside, never read again
    fake_run(job.folder, "run-3", text, {"completed": True, "seed": 1, "n": 3})
    fake_run(job.folder, "run-4", text, {"completed": False, "seed": 1, "n": 4})
    assert finished_run(job.folder, job.scenario)["n"] == 4  # the latest, failed or not


class Recorder:
    def __init__(self):
        self.events = []

    def skipped(self, label):
        self.events.append(("skipped", label))

    def started(self, label):
        self.events.append(("started", label))

    def finished(self):
        self.events.append(("finished",))

    def note(self, line):
        self.events.append(("note", line))


def test_run_jobs_reads_finished_runs_without_launching(tmp_path):
    todo = list(jobs(points(tmp_path), 1, tmp_path / "out"))
    for i, job in enumerate(todo):
        fake_run(job.folder, "r", scenario_yaml(job.scenario), {"completed": i == 0, "seed": 1})
    recorder = Recorder()
    runs = run_jobs(todo, recorder)
    assert recorder.events == [("skipped", "grid-1 seed 1"), ("skipped", "grid-2 seed 1")]
    assert incomplete(runs) == ["grid-2 seed 1"]


def test_the_runs_of_a_sweep_share_one_pool_of_training_workers(tmp_path, monkeypatch):
    pools = []

    async def launch(scenario, folder, executor, end_in):
        pools.append(executor)
        return RunOutput(folder, {"completed": True, "seed": scenario.seed})

    monkeypatch.setattr("iomt.scenarios.launcher.launch", launch)
    run_jobs(list(jobs(points(tmp_path), 2, tmp_path / "out")), Recorder())
    assert len(pools) == 4 and all(p is pools[0] for p in pools)
    assert isinstance(pools[0], TrainingPool)
    with pytest.raises(RuntimeError, match="shutdown"):  # and it is shut down after the last
        pools[0].submit(print)


def test_a_run_measured_in_the_end_worker_is_read_when_its_end_is_done(tmp_path, monkeypatch):
    """The second run starts before the first one's end is done; the table waits for it."""
    ends = []

    async def launch(scenario, folder, executor, end_in):
        assert end_in is not executor  # a worker of its own, beside the training pool
        ends.append(end_in)
        partial = {"completed": True, "seed": scenario.seed}
        pending = end_in.submit(dict, partial, leakage={"headline": scenario.training.epochs})
        return RunOutput(folder, partial, pending, end=None)

    monkeypatch.setattr("iomt.scenarios.launcher.launch", launch)
    recorder = Recorder()
    runs = run_jobs(list(jobs(points(tmp_path), 1, tmp_path / "out")), recorder)
    assert [r["leakage"]["headline"] for r in (*runs["grid-1"], *runs["grid-2"])] == [1, 2]
    notes = [e[1] for e in recorder.events if e[0] == "note"]  # the worker takes > 0.1 s to spawn
    assert notes and notes[-1].startswith("compare: waiting for the leakage of")
    assert isinstance(ends[0], TrainingPool) and ends[0].workers == 1 and ends[1] is ends[0]


def test_an_end_lost_with_its_worker_is_done_here(tmp_path):
    job = next(jobs(points(tmp_path), 1, tmp_path / "out"))
    run_dir = fake_run(job.folder, "run", scenario_yaml(job.scenario), None)
    lost: Future = Future()
    lost.set_exception(BrokenProcessPool("a worker died"))
    partial = {"scenario": "grid-1", "seed": 1, "broker": {}, "rounds": [], "final": {}}
    end = RunEnd(run_dir, partial, job.scenario, data=None, weights=None)  # type: ignore[arg-type]
    results = RunOutput(run_dir, partial, lost, end).finished()
    leakage = {"to_server": 100.0, "headline": 100.0, "note": "the server reads every update"}
    assert results == {**partial, "leakage": leakage}
    assert json.loads((run_dir / RESULTS_FILE).read_text()) == results


def test_ciphers_that_fail_to_train_ahead_are_left_to_each_run(tmp_path, monkeypatch):
    launched = []

    async def launch(scenario, folder, executor, end_in):
        launched.append(scenario.name)
        return RunOutput(folder, {"completed": True, "seed": scenario.seed})

    def enrol_ahead(scenarios, pool):
        raise RuntimeError("a worker died")

    monkeypatch.setattr("iomt.scenarios.launcher.launch", launch)
    monkeypatch.setattr("iomt.scenarios.setups.ciphers_missing", lambda left: left[:1])
    monkeypatch.setattr("iomt.scenarios.setups.enrol_ahead", enrol_ahead)
    recorder = Recorder()
    run_jobs(list(jobs(points(tmp_path), 1, tmp_path / "out")), recorder)
    assert launched == ["grid-1", "grid-2"]
    notes = [e[1] for e in recorder.events if e[0] == "note"]
    assert (
        notes[-1] == "compare: training ciphers ahead failed (a worker died); each run"
        " trains its own"
    )


def test_a_ctrl_c_absorbed_by_a_run_winding_down_still_stops_the_sweep(tmp_path, monkeypatch):
    launched = []

    async def launch(scenario, folder, executor, end_in):  # finishes, then absorbs the Ctrl-C
        launched.append(scenario.name)
        try:
            os.kill(os.getpid(), signal.SIGINT)
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            pass
        return RunOutput(folder, {"completed": True, "seed": scenario.seed})

    monkeypatch.setattr("iomt.scenarios.launcher.launch", launch)
    todo = list(jobs(points(tmp_path), 1, tmp_path / "out"))
    with pytest.raises(KeyboardInterrupt):
        run_jobs(todo, Recorder())
    assert launched == ["grid-1"]


def test_the_eta_counts_only_runs_done_now(monkeypatch):
    clock = iter([0.0, 100.0, 130.0, 130.0])
    monkeypatch.setattr("iomt.scenarios.progress.time.monotonic", lambda: next(clock))
    log = io.StringIO()
    with SweepProgress(5, stream=log) as progress:  # not a terminal: one line per run
        progress.skipped("a seed 1")
        progress.skipped("a seed 2")
        progress.started("b seed 1")  # t = 100
        progress.finished()  # t = 130: one run took 30 s, 2 runs left
        progress.started("b seed 2")
        assert progress.eta() == "1m00s"
    lines = log.getvalue().splitlines()
    assert lines[0] == "compare: run 1/5 a seed 1: finished before, kept"
    assert lines[2] == "compare: run 3/5 b seed 1 (elapsed 100s, eta -)"
    assert lines[3] == "compare: run 4/5 b seed 2 (elapsed 130s, eta 1m00s)"
