"""What ``results.json`` calls a completed run."""

from iomt.scenarios.results import run_verdict
from iomt.server_agent.setup import ServerOutcome


def outcome(completed: bool = True) -> ServerOutcome:
    return ServerOutcome(completed, "completed 3 rounds", [], {}, {})


def test_a_run_whose_agents_all_finished_keeps_the_servers_verdict():
    done = {"state": "done", "reason": "completed 3 rounds"}
    assert run_verdict(outcome(), {"hmu-01": done, "hmu-02": done}) == {
        "completed": True, "reason": "completed 3 rounds"}  # fmt: skip
    assert run_verdict(outcome(False), {"hmu-01": done})["completed"] is False


def test_a_failed_hmu_agent_makes_the_run_incomplete_and_is_named():
    hmus = {f"hmu-{i:02d}": {"state": "failed", "error": "host died"} for i in range(1, 8)}
    hmus["hmu-08"] = {"state": "done"}
    verdict = run_verdict(outcome(), hmus)
    assert verdict["completed"] is False
    assert verdict["reason"] == (
        "completed 3 rounds, but 7 HMU agent(s) failed (hmu-01, hmu-02, hmu-03, hmu-04,"
        " hmu-05 and 2 more; see hmus in results.json)"
    )
