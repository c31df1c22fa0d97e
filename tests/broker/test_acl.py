"""The ACL core without I/O: grants per agent, topic matching, rendering and parsing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from iomt.broker.acl import (
    AclRule,
    acl_for_run,
    can_read,
    can_subscribe,
    can_write,
    check_filter,
    filter_covers,
    parse_mosquitto_acl,
    render_mosquitto_acl,
    topic_matches,
)
from iomt.wire import topics

RUN = "r1"
HMUS = ["hmu-01", "hmu-02", "hmu-03"]


@pytest.fixture(scope="module")
def rules() -> dict[str, list[AclRule]]:
    return acl_for_run(RUN, HMUS)


def test_every_agent_has_a_block(rules: dict[str, list[AclRule]]) -> None:
    assert set(rules) == {topics.SERVER_ID, topics.CHANNEL_ID, *HMUS}


def test_hmu_writes_only_its_own_topics(rules: dict[str, list[AclRule]]) -> None:
    own = rules["hmu-01"]
    for topic in (
        topics.update(RUN, "hmu-01"),
        topics.status(RUN, "hmu-01"),
        topics.metrics(RUN, "hmu-01"),
        topics.classical(RUN, "hmu-01", "hmu"),
        topics.quantum(RUN, "hmu-01", "tx"),
    ):
        assert can_write(own, topic), topic
    for topic in (
        topics.update(RUN, "hmu-02"),
        topics.status(RUN, "hmu-02"),
        topics.status(RUN, topics.SERVER_ID),
        topics.inbox(RUN, "hmu-01"),
        topics.global_model(RUN),
        topics.classical(RUN, "hmu-01", "server"),
        topics.classical(RUN, "hmu-02", "hmu"),
        topics.quantum(RUN, "hmu-01", "rx"),
        topics.quantum(RUN, "hmu-02", "tx"),
        topics.update("other-run", "hmu-01"),
    ):
        assert not can_write(own, topic), topic


def test_hmu_reads_only_its_inbox_global_and_server_classical(
    rules: dict[str, list[AclRule]],
) -> None:
    own = rules["hmu-01"]
    readable = {
        topics.inbox(RUN, "hmu-01"),
        topics.global_model(RUN),
        topics.classical(RUN, "hmu-01", "server"),
        topics.status(RUN, topics.SERVER_ID),  # the server's last will: an HMU waits, then leaves
    }
    for topic in readable:
        assert can_read(own, topic), topic
    for topic in (
        topics.inbox(RUN, "hmu-02"),
        topics.update(RUN, "hmu-02"),
        topics.update(RUN, "hmu-01"),
        topics.status(RUN, "hmu-02"),
        topics.classical(RUN, "hmu-02", "server"),
        topics.quantum(RUN, "hmu-01", "rx"),
        topics.global_model("other-run"),
    ):
        assert not can_read(own, topic), topic


def test_server_grants(rules: dict[str, list[AclRule]]) -> None:
    server = rules[topics.SERVER_ID]
    for hmu in HMUS:
        assert can_read(server, topics.update(RUN, hmu))
        assert can_read(server, topics.status(RUN, hmu))
        assert can_read(server, topics.metrics(RUN, hmu))
        assert can_read(server, topics.classical(RUN, hmu, "hmu"))
        assert can_read(server, topics.quantum(RUN, hmu, "rx"))
        assert not can_read(server, topics.quantum(RUN, hmu, "tx"))
        assert can_write(server, topics.inbox(RUN, hmu))
        assert can_write(server, topics.classical(RUN, hmu, "server"))
        assert not can_write(server, topics.update(RUN, hmu))
        assert not can_write(server, topics.quantum(RUN, hmu, "rx"))
    assert can_write(server, topics.global_model(RUN))
    assert can_read(server, topics.status(RUN, topics.CHANNEL_ID))
    assert can_subscribe(server, topics.update_filter(RUN))
    assert can_subscribe(server, topics.status_filter(RUN))
    assert not can_subscribe(server, "#")
    assert not can_subscribe(server, f"{topics.run_prefix(RUN)}/#")


def test_channel_grants(rules: dict[str, list[AclRule]]) -> None:
    channel = rules[topics.CHANNEL_ID]
    for hmu in HMUS:
        assert can_read(channel, topics.quantum(RUN, hmu, "tx"))
        assert can_write(channel, topics.quantum(RUN, hmu, "rx"))
        assert not can_read(channel, topics.quantum(RUN, hmu, "rx"))
        assert not can_write(channel, topics.quantum(RUN, hmu, "tx"))
        assert not can_read(channel, topics.update(RUN, hmu))
    assert can_write(channel, topics.status(RUN, topics.CHANNEL_ID))
    assert can_write(channel, topics.metrics(RUN, topics.CHANNEL_ID))
    assert not can_write(channel, topics.global_model(RUN))


def test_revocation_removes_only_the_update_grant(rules: dict[str, list[AclRule]]) -> None:
    after = acl_for_run(RUN, HMUS, revoked=["hmu-02"])
    assert not can_write(after["hmu-02"], topics.update(RUN, "hmu-02"))
    assert set(rules["hmu-02"]) - set(after["hmu-02"]) == {
        AclRule("write", topics.update(RUN, "hmu-02"))
    }
    for agent in (topics.SERVER_ID, topics.CHANNEL_ID, "hmu-01", "hmu-03"):
        assert after[agent] == rules[agent]


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown HMU"):
        acl_for_run(RUN, HMUS, revoked=["hmu-09"])
    with pytest.raises(ValueError, match="unique"):
        acl_for_run(RUN, ["hmu-01", "hmu-01"])
    with pytest.raises(ValueError, match="reserved"):
        acl_for_run(RUN, [topics.SERVER_ID])
    with pytest.raises(ValueError):
        acl_for_run(RUN, ["hmu/+"])
    with pytest.raises(ValueError):
        acl_for_run("run #1", HMUS)
    with pytest.raises(ValueError, match="read, write or readwrite"):
        AclRule("deny", "a/b")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/b/c", False),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/+/c", "a/b/c", True),
        ("a/#", "a", True),  # '#' also matches the parent level (MQTT 3.1.1, 4.7.1.2)
        ("a/#", "a/b/c", True),
        ("#", "a/b", True),
        ("#", "$SYS/x", False),
        ("+/b", "$SYS/b", False),
        ("a/b", "a/c", False),
    ],
)
def test_topic_matches(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


@pytest.mark.parametrize(
    ("pattern", "topic_filter", "expected"),
    [
        ("a/+/c", "a/+/c", True),
        ("a/+/c", "a/b/c", True),
        ("a/b/c", "a/+/c", False),
        ("a/#", "a/+/c", True),
        ("a/#", "a/#", True),
        ("a/+", "a/#", False),
        ("a/+", "a/b/c", False),
        ("#", "#", True),
        ("a/b", "a", False),
    ],
)
def test_filter_covers(pattern: str, topic_filter: str, expected: bool) -> None:
    assert filter_covers(pattern, topic_filter) is expected


@pytest.mark.parametrize("bad", ["", "a/b#", "a/#/b", "a/b+", "a b", "a/\tb"])
def test_check_filter_refuses(bad: str) -> None:
    with pytest.raises(ValueError):
        check_filter(bad)


def test_render_and_parse_round_trip(rules: dict[str, list[AclRule]]) -> None:
    text = render_mosquitto_acl(rules)
    assert "user hmu-01\n" in text
    assert f"topic write {topics.update(RUN, 'hmu-01')}\n" in text
    assert f"topic read {topics.update_filter(RUN)}\n" in text
    assert "pattern" not in text  # explicit grants only, no %u/%c substitution
    assert parse_mosquitto_acl(text) == rules


def test_parse_refuses_what_it_does_not_understand() -> None:
    with pytest.raises(ValueError, match="line 2"):
        parse_mosquitto_acl("user a\ntopic deny a/b\n")
    with pytest.raises(ValueError, match="line 1"):
        parse_mosquitto_acl("topic read a/b\n")  # a grant outside any user block


def test_core_imports_no_io_modules() -> None:
    code = (
        "import sys, broker.acl\n"
        "bad = {'socket', 'asyncio', 'aiomqtt', 'paho', 'subprocess', 'amqtt'} & set(sys.modules)\n"
        "print(sorted(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_a_fog_aggregator_is_a_server_to_its_hmus_and_an_hmu_to_the_cloud() -> None:
    tiers = {topics.SERVER_ID: ["fog-01"], "fog-01": ["hmu-01", "hmu-02"], "fog-02": ["hmu-03"]}
    rules = acl_for_run(RUN, HMUS, tiers=tiers)
    fog = rules["fog-01"]
    # towards its HMUs: reads their updates, writes their inboxes and its tier's global topic
    assert can_subscribe(fog, topics.update_filter(RUN, "fog-01"))
    assert can_write(fog, topics.inbox(RUN, "hmu-01", "fog-01"))
    assert can_write(fog, topics.global_model(RUN, "fog-01"))
    assert not can_write(fog, topics.inbox(RUN, "hmu-03", "fog-02"))
    assert not can_read(fog, topics.update(RUN, "hmu-03", "fog-02"))
    # towards the cloud: writes its own update, reads its inbox and the cloud's global topic
    assert can_write(fog, topics.update(RUN, "fog-01"))
    assert can_read(fog, topics.inbox(RUN, "fog-01"))
    assert can_read(fog, topics.global_model(RUN))
    assert not can_write(fog, topics.global_model(RUN))
    # an HMU speaks only to its own fog node, and the cloud never reads raw HMU updates
    hmu = rules["hmu-01"]
    assert can_write(hmu, topics.update(RUN, "hmu-01", "fog-01"))
    assert not can_write(hmu, topics.update(RUN, "hmu-01"))
    assert not can_read(rules[topics.SERVER_ID], topics.update(RUN, "hmu-01", "fog-01"))
    assert can_read(rules[topics.SERVER_ID], topics.update(RUN, "fog-01"))
