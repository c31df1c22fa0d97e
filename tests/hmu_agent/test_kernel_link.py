"""The qdisc a kernel-shaped link gets (the namespaces themselves: test_links.py)."""

from iomt.hmu_agent.kernel_link import BURST, qdisc
from iomt.hmu_agent.link_profile import RoundProfile


def test_a_bandwidth_is_a_token_bucket_and_no_limit_a_fifo():
    slow = RoundProfile(125.5, 20.0, None, 2.0, kernel=True)
    assert qdisc(slow) == ["tbf", "rate", "125.5kbit", "burst", str(BURST), "limit", "1000000"]
    assert qdisc(RoundProfile(None, 20.0, None, 2.0, kernel=True)) == ["pfifo", "limit", "1000"]
