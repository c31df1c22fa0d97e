"""What ``links.shaping: tc`` refuses, in one line, before anything starts."""

import pytest

from iomt.errors import UsageError
from iomt.scenarios.hmu_netns import kernel_shaped, refuse_unshapeable
from iomt.scenarios.schema import Scenario

TC = {"links": {"bandwidth_kbps": [100, 500], "shaping": "tc"},
      "metrics": {"hmu_transport": "mqtt"}}  # fmt: skip


def scenario(**extra) -> Scenario:
    return Scenario.model_validate({"name": "t", **TC, **extra})


def test_only_hmu_processes_are_shaped_by_the_kernel():
    assert kernel_shaped(scenario())
    assert not kernel_shaped(Scenario.model_validate({"name": "t", "links": {"shaping": "tc"}}))
    with pytest.raises(UsageError, match="run with --processes"):
        refuse_unshapeable(scenario(), processes=False)


@pytest.mark.parametrize(
    ("extra", "named"),
    [({"topology": {"fog_nodes": 2}}, "topology.fog_nodes"),
     ({"broker": {"tls": True}}, "broker.tls"),
     ({"metrics": {"hmu_transport": "direct"}}, "metrics.hmu_transport: mqtt")],
)  # fmt: skip
def test_what_a_namespace_cannot_reach_is_refused(extra, named):
    with pytest.raises(UsageError, match=named):
        refuse_unshapeable(scenario(**extra), processes=True)
