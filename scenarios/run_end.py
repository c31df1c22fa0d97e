"""The end of a run, once its agents have stopped: the gradient-leakage measurement,
``results.json`` and the HTML report.

``iomt run`` does this in a thread before it returns.  ``iomt compare`` hands a run's
end to a worker process of its own when the leakage must be measured (a fresh attacker
trained on a neural cipher, or on updates under DP: 15-65 s on one core) and starts the
next run meanwhile, whose rounds leave a core idle most of the time.  Until
``results.json`` is written the run directory is an unfinished run: a sweep stopped
before then runs that point again.  Either way the figures are the same: the
measurement runs on one thread for BLAS and torch wherever it runs.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iomt.blas import single_threaded_blas, single_threaded_torch
from iomt.scenarios.accounting import fixed_leakage, update_leakage
from iomt.scenarios.data_plan import FederatedData
from iomt.scenarios.results import write_results
from iomt.scenarios.schema import Scenario

if TYPE_CHECKING:
    from iomt.fedlearn.model import Weights

log = logging.getLogger(__name__)


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


@dataclass
class RunEnd:
    """What a run leaves to do after its agents stop (it pickles, for a worker)."""

    run_dir: Path
    results: dict[str, Any]  # all but the leakage
    scenario: Scenario
    data: FederatedData
    weights: Weights

    @property
    def measures(self) -> bool:
        """Whether the leakage is measured (seconds to a minute) rather than fixed by the
        settings (plaintext, CKKS, or ``measure_leakage: false``)."""
        return fixed_leakage(self.scenario) is None


def finish_run(end: RunEnd) -> dict[str, Any]:
    """Measure the leakage, write ``results.json`` (the run is finished from then on)
    and the report; the results."""
    with run_log(end.run_dir):
        results = {**end.results, "leakage": _leakage(end)}
        write_results(end.run_dir, results)
        _report(end.run_dir)
    return results


def _leakage(end: RunEnd) -> dict[str, Any]:
    fixed = fixed_leakage(end.scenario)
    if fixed is not None:
        return fixed
    from iomt.scenarios.setups import make_cipher

    cipher = make_cipher(end.scenario)  # from the cache the run itself read or filled
    if cipher is not None:
        log.info("measuring the neural cipher's leakage to a fresh attacker")
    with single_threaded_blas(), single_threaded_torch():
        return update_leakage(end.scenario, end.data, cipher, end.weights)


def _report(run_dir: Path) -> None:
    """The HTML report with plots; a failure here never loses the results."""
    try:
        from iomt.monitoring.report import render_report

        render_report(run_dir)
    except Exception as exc:  # plotting must not turn a finished run into a failed one
        log.warning("report not written: %s", exc)
