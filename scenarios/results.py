"""``results.json``: what a run did, in one file a plotting script can read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iomt.atomic import write_text_atomically
from iomt.fedlearn.updates import parameter_count
from iomt.scenarios.accounting import (
    fog_poisoning,
    mark_attackers,
    message_books,
    poisoning,
    privacy,
)

if TYPE_CHECKING:
    from iomt.broker.handle import BrokerHandle
    from iomt.qkd_channel.agent import ChannelOutcome
    from iomt.scenarios.data_plan import FederatedData
    from iomt.scenarios.schema import Scenario
    from iomt.server_agent.setup import ServerOutcome

RESULTS_FILE = "results.json"
ROUND_FIELDS = (
    "round",
    "selected",
    "received",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "loss",
    "duration_s",
    "bytes_up",
    "bytes_down",
)
FINAL_FIELDS = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "macro_f1",
    "fpr",
    "roc_auc",
    "detection_time_ms",
)


def write_results(run_dir: Path, results: dict[str, Any]) -> Path:
    """Write ``results.json`` atomically (a reader never sees half a file)."""
    missing = [k for k in ("scenario", "seed", "broker", "rounds", "final") if k not in results]
    if missing:
        raise ValueError(f"results lack {', '.join(missing)}")
    text = json.dumps(results, indent=2, default=_plain) + "\n"
    return write_text_atomically(run_dir / RESULTS_FILE, text)


def read_results(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / RESULTS_FILE).read_text())


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as JSON numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to results.json")


def communication(hmus: dict[str, Any]) -> dict[str, float | None]:
    """MB each HMU published and received per round it took part in, as each HMU counted
    them where the bytes left and entered it (mean over HMUs and rounds)."""
    rounds = [c for h in hmus.values() for c in (h.get("bytes") or {}).values()]
    if not rounds:
        return {"mb_up_per_hmu_round": None, "mb_down_per_hmu_round": None}
    return {
        "mb_up_per_hmu_round": round(sum(c["up"] for c in rounds) / len(rounds) / 1e6, 4),
        "mb_down_per_hmu_round": round(sum(c["down"] for c in rounds) / len(rounds) / 1e6, 4),
    }


def fog_rounds(fogs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every fog's rounds, one record each: what its HMUs lived (whom their fog invited,
    heard from and flagged), numbered as their invitations were, so the attack and
    privacy books hold in synchronous and asynchronous runs alike."""
    return [r for report in fogs.values() for r in report.get("rounds", [])]


def run_verdict(outcome: ServerOutcome, hmus: dict[str, Any]) -> dict[str, Any]:
    """Completed only if the server finished its rounds and no HMU agent failed on the way
    (crashed, killed with its host, or never returned): a lost agent is a lost part."""
    failed = sorted(h for h, report in hmus.items() if report.get("state") == "failed")
    if not failed:
        return {"completed": outcome.completed, "reason": outcome.reason}
    named = ", ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
    why = f"{len(failed)} HMU agent(s) failed ({named}; see hmus in results.json)"
    return {"completed": False, "reason": f"{outcome.reason}, but {why}"}


def build_results(
    scenario: Scenario,
    run_id: str,
    handle: BrokerHandle,
    data: FederatedData,
    outcome: ServerOutcome,
    *,
    mode: str,
    wall_time_s: float,
    hmus: dict[str, Any] | None = None,
    channel: ChannelOutcome | None = None,
) -> dict[str, Any]:
    """The contents of ``results.json`` for a finished run (see the README)."""
    results: dict[str, Any] = {
        "scenario": scenario.name,
        "run_id": run_id,
        "seed": scenario.seed,
        "mode": mode,
        "broker": {"kind": handle.kind, "url": handle.url, "tls": handle.tls},
        "data": {
            "dataset": str(data.dataset),
            "source": data.source,
            "synthetic": data.synthetic,
            "rows": data.rows,
            "features": list(data.feature_names),
            "keep_identifiers": scenario.data.keep_identifiers,
            "test_rows": len(data.y_test),
        },
        **run_verdict(outcome, hmus or {}),
        "rounds": outcome.rounds,
        "final": outcome.final,
        "rejected": outcome.rejected,
        "refused_by_peer": outcome.refused_by_peer,
        "isolations": outcome.isolations,
        "hmus": hmus or {},
        "update_encryption": scenario.update_encryption.model_dump(),
        "communication": communication(hmus or {}),
        "wall_time_s": round(wall_time_s, 3),
    }
    if scenario.qkd.enabled:
        links = channel.links if channel is not None else {}
        results["qkd"] = {
            h: {**outcome.qkd.get(h, {"status": "no-session"}), "link": links.get(h, {})}
            for h in scenario.hmu_ids
        }
        results["isolated"] = outcome.isolated
        results["qkd_threshold"] = scenario.qkd.qber_threshold
        results["qkd_keying_s"] = outcome.keying_seconds
    lived = fog_rounds(outcome.fogs) if outcome.fogs else outcome.rounds
    mark_attackers(scenario, lived)
    for record in outcome.rounds if outcome.fogs else ():  # the HMUs invited for it
        record["attackers"] = sorted(
            {a for r in lived if r["round"] == record["round"] for a in r["attackers"]}
        )
    results["poisoning"] = poisoning(scenario, lived)
    results["privacy"] = privacy(scenario, lived, parameter_count(outcome.weights))
    results["books"] = (
        None  # the HMUs' updates never reach the cloud broker, whose log this reads
        if outcome.fogs
        else message_books(
            scenario, run_id, handle.log_file, outcome.refused_by_peer, outcome.rounds, hmus or {}
        )
    )
    if outcome.fogs:
        results["topology"] = {"fog_nodes": len(outcome.fogs), "fogs": outcome.fogs}
        results["fog_attack"] = fog_poisoning(scenario, outcome.rounds, outcome.fogs)
    if scenario.mitm.enabled:
        results["mitm"] = outcome.mitm
    if outcome.asynchronous:
        results["asynchronous"] = outcome.asynchronous
    if scenario.federation.churn:
        events = [
            {"hmu": hmu, **event}
            for hmu, report in sorted((hmus or {}).items())
            for event in report.get("churn", [])
        ]
        results["churn"] = {"share": scenario.federation.churn, "events": events}
    return results
