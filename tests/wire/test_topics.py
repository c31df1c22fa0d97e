"""Topic builders validate their parts and parse back."""

import pytest

from iomt.wire import topics


def test_builders_and_agent_of():
    assert topics.update("r1", "hmu-02") == "iomt/r1/tier/server/hmu-02/update"
    assert topics.agent_of(topics.update("r1", "hmu-02"), "r1") == "hmu-02"
    assert topics.agent_of(topics.status("r1", "server"), "r1") == "server"
    assert topics.agent_of(topics.update("r1", "hmu-02"), "r2") is None
    assert topics.agent_of(topics.global_model("r1"), "r1") is None
    assert topics.hmu_id(0) == "hmu-01" and topics.hmu_id(19) == "hmu-20"


@pytest.mark.parametrize("bad", ["", "a/b", "+", "#", "UPPER", "x" * 65, "sp ace"])
def test_wildcards_slashes_and_odd_names_are_refused(bad):
    with pytest.raises(ValueError):
        topics.update("run", bad)


def test_quantum_and_classical_legs_are_checked():
    assert topics.quantum("r", "hmu-01", "tx").endswith("/qkd/hmu-01/quantum/tx")
    with pytest.raises(ValueError):
        topics.quantum("r", "hmu-01", "sideways")
    with pytest.raises(ValueError):
        topics.classical("r", "hmu-01", "eve")


def test_tiers_put_the_aggregator_in_the_topic():
    fog = topics.update("r1", "hmu-02", aggregator="fog-01")
    assert fog == "iomt/r1/tier/fog-01/hmu-02/update"
    assert topics.agent_of(fog, "r1") == "hmu-02"
    assert topics.is_update(fog) and topics.is_update(topics.update("r1", "fog-01"))
    assert not topics.is_update(topics.inbox("r1", "hmu-02", aggregator="fog-01"))
    assert topics.global_model("r1", "fog-01") == "iomt/r1/tier/fog-01/global"
    assert topics.update_filter("r1", "fog-01") == "iomt/r1/tier/fog-01/+/update"
