"""A finished run's ground truth and accounting: who attacked, how the defence did, what
privacy each HMU spent.

Who attacks is the experiment's design, known to the scenario and to each attacking
HMU, never to the server: the server only reports what it flagged.  Here the two meet,
after the run, from the scenario and the server's round log; the books of every
HMU's messages also take in the broker's own log.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iomt.broker.log_account import BrokerAccount
from iomt.fedlearn.accountant import privacy_report
from iomt.fedlearn.attacks import assign_attacks
from iomt.fedlearn.resilience import detection_rates
from iomt.scenarios.schema import Scenario
from iomt.wire import topics
from iomt.wire.topics import SERVER_ID

if TYPE_CHECKING:
    from iomt.fedlearn.cipher_enrolment import EnrolledCipher
    from iomt.fedlearn.model import Weights
    from iomt.scenarios.data_plan import FederatedData


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


def fog_poisoning(
    scenario: Scenario, rounds: list[dict[str, Any]], fogs: dict[str, dict[str, Any]]
) -> dict[str, Any] | None:
    """The compromised fog against the cloud's defence: per cloud round, the fog whose
    partial was tampered with is the attacker, the cloud's flagged fogs the verdict.
    ``success_rate``: the share of tampered partials the cloud aggregated unflagged."""
    attack = scenario.attacks.malicious_fog
    if attack is None:
        return None
    fog_rounds = fogs.get(attack.fog, {}).get("rounds", [])
    tampered = {r["round"] for r in fog_rounds if r.get("tampered")}
    attackers = [[attack.fog] if r["round"] in tampered else [] for r in rounds]
    rates = detection_rates(
        [r["received"] for r in rounds], attackers, [r["flagged"] for r in rounds]
    )
    sent = rates.tp + rates.fn  # tampered partials that reached the cloud
    return {
        "kind": "malicious-fog",
        **attack.model_dump(),
        "tampered_rounds": sorted(tampered),
        "success_rate": rates.fn / sent if sent else None,
        **rates.as_dict(),
    }


def privacy(scenario: Scenario, rounds: list[dict[str, Any]], parameters: int) -> dict[str, Any]:
    """Each HMU's privacy spend: one release per update the server received from it."""
    releases = Counter(h for r in rounds for h in r["received"])
    return {h: privacy_report(scenario.privacy, releases[h], parameters) for h in scenario.hmu_ids}


def message_books(
    scenario: Scenario,
    run_id: str,
    log_file: Path | None,
    refused_by_peer: dict[str, dict[str, int]],
    rounds: list[dict[str, Any]],
    hmus: dict[str, Any],
) -> dict[str, Any] | None:
    """Every HMU's update-topic messages, from the broker's log and the server's books:
    what the broker received, denied, passed to the server and dropped; what the server
    accepted and refused.  For a flooding HMU, whether the books balance.  None without
    a Mosquitto log (another broker, or an external one)."""
    if log_file is None or not log_file.is_file():
        return None
    with log_file.open(encoding="utf-8", errors="replace") as lines:
        account = BrokerAccount().feed(lines)
    accepted = Counter(h for r in rounds for h in r["received"])
    per_hmu = {}
    for hmu in scenario.hmu_ids:
        broker_side = account.topic(hmu, topics.update(run_id, hmu), SERVER_ID)
        refused = sum(refused_by_peer.get(hmu, {}).values())
        per_hmu[hmu] = {**broker_side, "accepted": accepted[hmu], "refused": refused}
    books: dict[str, Any] = {"updates": per_hmu, "dropping": dict(account.dropping)}
    flood = scenario.attacks.flood
    if flood is not None:
        sent = (hmus.get(flood.hmu, {}).get("flood") or {}).get("sent", 0)
        row = per_hmu[flood.hmu]
        books["flood"] = {
            "hmu": flood.hmu,
            "sent": sent,
            # what it sent = let in + denied; let in = passed on + dropped (by definition);
            # passed on = refused + accepted by the server
            "balanced": row["received"] + row["denied"] == sent
            and row["sent"] == row["refused"] + row["accepted"],
        }
    return books


def fixed_leakage(scenario: Scenario) -> dict[str, Any] | None:
    """The leakage report a run's settings fix without measuring anything; None when it
    is measured (a neural cipher, or DP noise on plaintext updates)."""
    if not scenario.measure_leakage:
        return {"headline": None, "note": "not measured (measure_leakage: false)"}
    if scenario.update_encryption.kind == "ckks":
        return {"to_server": 0.0, "headline": 0.0,
                "note": "the server decrypts only the sum of the round's updates"}  # fmt: skip
    if scenario.update_encryption.kind != "neural" and scenario.privacy.mechanism == "none":
        return {"to_server": 100.0, "headline": 100.0, "note": "the server reads every update"}
    return None


def update_leakage(
    scenario: Scenario, data: FederatedData, enrolled: EnrolledCipher | None, final_w: Weights
) -> dict[str, Any]:
    """Gradient leakage % of the HMUs' updates, measured after the run on real updates
    from the final model (``100 * max(0, 1 - MSE / Var)``), and who it is leaked to.

    ``headline`` is the figure the tables report: for the neural cipher, what a fresh
    attacker trained by an insider HMU (the first) recovers of the other HMUs' updates;
    otherwise what the server reads of one update: all of it in plaintext, nothing of a
    single update under CKKS (it decrypts only the sum), and under DP what the noised
    update gives after the best rescaling (clipping hides an update's size, not its
    direction; the figure is then the squared correlation of the two).
    """
    fixed = fixed_leakage(scenario)
    if fixed is not None:
        return fixed
    import numpy as np

    from iomt.fedlearn.privacy import privatize_update
    from iomt.fedlearn.train import real_updates

    insider, *victims = scenario.hmu_ids
    training, seed = scenario.training, scenario.seed
    truth = real_updates(final_w, [data.parts[h] for h in victims], training, seed + 7)
    rng = np.random.default_rng([seed, 0xD9])
    sent = [privatize_update(u, scenario.privacy, rng).astype(np.float32) for u in truth]
    to_server = round(
        float(np.mean([_rescaled(s, t) for s, t in zip(sent, truth, strict=True)])), 2
    )
    report: dict[str, Any] = {"to_server": to_server, "headline": to_server}
    if enrolled is not None:
        from iomt.fedlearn.cipher_enrolment import leakage_report
        from iomt.fedlearn.decoder_gain import decoder_gain

        own = real_updates(final_w, [data.parts[insider]], training, seed)
        cipher = leakage_report(enrolled, own, truth, seed, sent=sent)
        report.update(insider=insider, **cipher, headline=cipher["fresh_attacker"])
        report["to_server"] = cipher["decoder_recovers"]
        # what the server divides out of each update when ``unbiased`` is set
        report["decoder_gain"] = round(decoder_gain(enrolled.nets, seed), 4)
    return report


def _rescaled(seen: Any, truth: Any) -> float:
    """Leakage of ``truth`` from ``seen`` scaled by the least-squares factor."""
    import numpy as np

    from iomt.fedlearn.updates import leakage

    seen, truth = np.asarray(seen, np.float64), np.asarray(truth, np.float64)
    power = float(seen @ seen)
    return leakage(seen * (float(seen @ truth) / power if power else 0.0), truth)
