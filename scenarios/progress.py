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
    """Progress over many runs: a bar in a terminal, one line per run in a log."""

    def __init__(self, total: int, *, stream: Any = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.console = Console(file=self.stream)
        self.done = -1
        self.started = time.monotonic()
        self._progress: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> SweepProgress:
        if self.console.is_terminal:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("compare", total=self.total)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=self.total)
            self._progress.__exit__(*exc)

    def step(self, what: str) -> None:
        """A new run starts."""
        self.done += 1
        if self._progress is not None:
            self._progress.update(self._task, completed=self.done, description=what)
        else:
            elapsed = time.monotonic() - self.started
            print(f"compare: run {self.done + 1}/{self.total} {what} (elapsed {elapsed:.0f}s)",
                  file=self.stream, flush=True)  # fmt: skip
