"""Run progress for people: a live bar in a terminal, plain periodic lines in a log."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


class RunProgress:
    """``with RunProgress(name, rounds) as p: ... p.round_done(record)``."""

    def __init__(self, name: str, rounds: int, *, stream: Any = None) -> None:
        self.name = name
        self.rounds = rounds
        self.stream = stream or sys.stderr
        self.console = Console(file=self.stream)
        self.live = self.console.is_terminal
        self.started = time.monotonic()
        self._progress: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> RunProgress:
        return self

    def start(self, run_id: str, broker_url: str) -> None:
        """The broker is up and the agents are starting."""
        self.started = time.monotonic()
        if self.live:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("acc {task.fields[accuracy]}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self.name, total=self.rounds, accuracy="-")
        else:
            self._line(f"{self.name}: run {run_id} on {broker_url}, {self.rounds} rounds")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.__exit__(exc_type, exc, tb)

    def round_done(self, record: dict[str, Any]) -> None:
        acc = f"{record['accuracy']:.4f}"
        if self._progress is not None:
            self._progress.update(self._task, completed=record["round"], accuracy=acc)
        else:
            elapsed = time.monotonic() - self.started
            received = len(record["received"])
            selected = len(record["selected"])
            self._line(
                f"{self.name}: round {record['round']}/{self.rounds} accuracy {acc} "
                f"updates {received}/{selected} elapsed {elapsed:.1f}s"
            )

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


def final_table(results: dict[str, Any], run_dir: Path, *, stream: Any = None) -> None:
    """Print the final metrics and where the run directory is."""
    console = Console(file=stream or sys.stdout)
    table = Table(title=f"{results['scenario']} ({results['run_id']})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in results["final"].items():
        if isinstance(value, float):
            table.add_row(key, f"{value:.4f}")
    table.add_row("rounds", str(len(results["rounds"])))
    table.add_row("wall time (s)", f"{results['wall_time_s']:.1f}")
    table.add_row("broker", results["broker"]["kind"])
    console.print(table)
    console.print(f"results: {run_dir / 'results.json'}")


class SweepProgress:
    """Progress over runs x seeds: a bar with an ETA in a terminal, one line per run in a
    log. The ETA is the mean time of the runs done by this invocation times the runs left
    (runs found finished from an earlier invocation cost nothing and are not counted)."""

    def __init__(self, total: int, *, stream: Any = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.console = Console(file=self.stream)
        self.done = 0
        self.skips = 0
        self.started_at = time.monotonic()
        self._run_started = self.started_at
        self._durations: list[float] = []
        self._progress: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> SweepProgress:
        if self.console.is_terminal:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("eta {task.fields[eta]}"),
                console=self.console,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("compare", total=self.total, eta="-")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def eta(self) -> str:
        if not self._durations:
            return "-"
        left = (self.total - self.done) * sum(self._durations) / len(self._durations)
        minutes, seconds = divmod(round(left), 60)
        return f"{minutes}m{seconds:02d}s"

    def note(self, line: str) -> None:
        """A line about the sweep as a whole (work done before its runs)."""
        if self._progress is not None:
            self._progress.console.print(line)
        else:
            print(line, file=self.stream, flush=True)

    def skipped(self, what: str) -> None:
        """A run found finished by an earlier invocation."""
        self.done += 1
        self.skips += 1
        self._show(what, f"compare: run {self.done}/{self.total} {what}: finished before, kept")

    def started(self, what: str) -> None:
        self._run_started = time.monotonic()
        elapsed = self._run_started - self.started_at
        self._show(what, f"compare: run {self.done + 1}/{self.total} {what} "
                         f"(elapsed {elapsed:.0f}s, eta {self.eta()})")  # fmt: skip

    def finished(self) -> None:
        self.done += 1
        self._durations.append(time.monotonic() - self._run_started)
        if self._progress is not None:
            self._progress.update(self._task, completed=self.done, eta=self.eta())

    def _show(self, what: str, line: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=self.done, description=what,
                                  eta=self.eta())  # fmt: skip
        else:
            print(line, file=self.stream, flush=True)
