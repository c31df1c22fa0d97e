"""A finished run's ground truth and accounting: who attacked, how the defence did, what
privacy each HMU spent.

Who attacks is the experiment's design, known to the scenario and to each attacking
HMU, never to the server: the server only reports what it flagged.  Here the two meet,
after the run, from the scenario and the server's round log.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from iomt.fedlearn.accountant import privacy_report
from iomt.fedlearn.attacks import assign_attacks
from iomt.fedlearn.resilience import detection_rates
from iomt.scenarios.schema import Scenario


def mark_attackers(scenario: Scenario, rounds: list[dict[str, Any]]) -> None:
    """Add ``attackers`` to each round: the scheduled attackers whose update arrived."""
    hmus = scenario.hmu_ids
    for record in rounds:
        scheduled = assign_attacks(scenario.attacks, hmus, record["round"], scenario.seed)
        record["attackers"] = sorted(set(scheduled) & set(record["received"]))


def poisoning(scenario: Scenario, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Detection of the attackers (flagged vs. ground truth); call after ``mark_attackers``."""
    rates = detection_rates(
        [r["received"] for r in rounds],
        [r["attackers"] for r in rounds],
        [r["flagged"] for r in rounds],
    )
    return {"defence": scenario.defence.aggregator, **rates.as_dict()}


def privacy(scenario: Scenario, rounds: list[dict[str, Any]], parameters: int) -> dict[str, Any]:
    """Each HMU's privacy spend: one release per update the server received from it."""
    releases = Counter(h for r in rounds for h in r["received"])
    return {h: privacy_report(scenario.privacy, releases[h], parameters) for h in scenario.hmu_ids}
