"""The churn plan: seeded, about the share asked for, away times within their range."""

from iomt.hmu_agent.churn import ChurnPlan


def test_the_plan_is_seeded_about_its_share_and_within_its_times():
    plan = ChurnPlan(0.3, (2.0, 8.0), seed=7)
    draws = [plan.away(f"hmu-{h:02d}", r) for h in range(1, 51) for r in range(1, 41)]
    away = [d for d in draws if d is not None]
    assert abs(len(away) / len(draws) - 0.3) < 0.03  # 2,000 draws: 3 standard errors ~ 0.03
    assert all(2.0 <= d <= 8.0 for d in away)
    assert draws == [plan.away(f"hmu-{h:02d}", r) for h in range(1, 51) for r in range(1, 41)]
    other = ChurnPlan(0.3, (2.0, 8.0), seed=8)
    assert draws != [other.away(f"hmu-{h:02d}", r) for h in range(1, 51) for r in range(1, 41)]
    assert ChurnPlan(0.0, (1.0, 1.0), seed=7).away("hmu-01", 1) is None
