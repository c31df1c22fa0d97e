"""How ``--executor ray`` deals HMUs to nodes (the pure part; the cluster is in
``tests/integration/test_ray_executor.py``)."""

from iomt.scenarios.ray_hosts import groups


def test_hmus_are_dealt_round_robin_in_id_order():
    hmus = [f"hmu-{i:02d}" for i in range(1, 8)]
    assert groups(hmus, ["a", "b", "c"]) == {
        "a": ["hmu-01", "hmu-04", "hmu-07"],
        "b": ["hmu-02", "hmu-05"],
        "c": ["hmu-03", "hmu-06"],
    }


def test_nodes_left_without_hmus_get_no_host():
    assert groups(["hmu-01"], ["a", "b"]) == {"a": ["hmu-01"]}
