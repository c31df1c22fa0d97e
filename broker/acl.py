"""Who may publish and read which topic in a run: the access rules as data, without I/O.

Every agent connects with its own username (its agent id).  The rules below are the
whole policy; anything not granted is denied.

=================  ===========================================================
agent              rights
=================  ===========================================================
HMU ``h``          write: its update, status, metrics, ``classical(h, "hmu")``,
                   ``quantum(h, "tx")``;  read: its inbox, the global model,
                   ``classical(h, "server")``
server             read: ``$SYS/broker/#``, every status, update and metrics topic (the filters of
                   ``iomt.wire.topics``), every ``classical(h, "hmu")`` and
                   ``quantum(h, "rx")``;  write: every inbox, the global model,
                   every ``classical(h, "server")``, its own status and metrics
QKD channel        read: every ``quantum(h, "tx")``, the global model (to see the
                   run end); write: every
                   ``quantum(h, "rx")``, its own status and metrics
=================  ===========================================================

Revoking an HMU (it failed its QKD check) removes only its right to write its update
topic; it stays connected so the run can record what it does next.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from iomt.wire import topics

Access = Literal["read", "write", "readwrite"]
_ACCESS: frozenset[str] = frozenset(("read", "write", "readwrite"))


@dataclass(frozen=True)
class AclRule:
    """One grant: ``access`` to every topic matched by ``topic`` (an MQTT topic filter)."""

    access: Access
    topic: str

    def __post_init__(self) -> None:
        if self.access not in _ACCESS:
            raise ValueError(f"ACL access {self.access!r} must be read, write or readwrite")
        check_filter(self.topic)

    @property
    def reads(self) -> bool:
        return self.access in ("read", "readwrite")

    @property
    def writes(self) -> bool:
        return self.access in ("write", "readwrite")


def check_filter(topic_filter: str) -> str:
    """Return ``topic_filter`` if it is a valid MQTT filter without spaces, else raise."""
    if not topic_filter or any(c.isspace() for c in topic_filter):
        raise ValueError(f"topic filter {topic_filter!r} is empty or contains whitespace")
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise ValueError(f"'#' must be the whole last level in {topic_filter!r}")
        if "+" in level and level != "+":
            raise ValueError(f"'+' must be a whole level in {topic_filter!r}")
    return topic_filter


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether the concrete ``topic`` is matched by ``topic_filter`` (MQTT 3.1.1, 4.7)."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    want = topic_filter.split("/")
    have = topic.split("/")
    for index, level in enumerate(want):
        if level == "#":
            return True
        if index >= len(have) or (level != "+" and level != have[index]):
            return False
    return len(want) == len(have)


def filter_covers(pattern: str, topic_filter: str) -> bool:
    """Whether every topic matched by ``topic_filter`` is also matched by ``pattern``."""
    outer = pattern.split("/")
    inner = topic_filter.split("/")
    for index, level in enumerate(outer):
        if level == "#":
            return True
        if index >= len(inner) or inner[index] == "#":
            return False
        if level != "+" and level != inner[index]:
            return False
    return len(outer) == len(inner)


def can_write(rules: Iterable[AclRule], topic: str) -> bool:
    """Whether a PUBLISH to ``topic`` is allowed by ``rules``."""
    return any(r.writes and topic_matches(r.topic, topic) for r in rules)


def can_read(rules: Iterable[AclRule], topic: str) -> bool:
    """Whether a message on ``topic`` may be delivered to a holder of ``rules``."""
    return any(r.reads and topic_matches(r.topic, topic) for r in rules)


def can_subscribe(rules: Iterable[AclRule], topic_filter: str) -> bool:
    """Whether ``topic_filter`` lies wholly inside one read grant (strict: no partial filters)."""
    return any(r.reads and filter_covers(r.topic, topic_filter) for r in rules)


def tier_rules(
    run_id: str, aggregator: str, members: Sequence[str], revoked: Iterable[str] = ()
) -> dict[str, list[AclRule]]:
    """One tier's rules: its aggregator reads the members' updates and statuses and writes
    their inboxes and the tier's global topic; each member writes its own update (unless
    ``revoked``) and reads its own inbox and the tier's global topic."""
    cut = set(revoked)
    glob = topics.global_model(run_id, aggregator)
    table: dict[str, list[AclRule]] = {
        aggregator: [
            AclRule("read", topics.update_filter(run_id, aggregator)),  # only members write there
            AclRule("write", glob),
        ]
    }
    for member in members:
        table[aggregator] += [
            AclRule("write", topics.inbox(run_id, member, aggregator)),
            AclRule("read", topics.status(run_id, member)),  # who of its tier is online
        ]
        own = [
            AclRule("read", topics.inbox(run_id, member, aggregator)),
            AclRule("read", glob),
            AclRule("read", topics.status(run_id, aggregator)),  # its last will, too
        ]
        if member not in cut:
            own.insert(0, AclRule("write", topics.update(run_id, member, aggregator)))
        table[member] = own
    return table


def acl_for_run(
    run_id: str,
    hmu_ids: Sequence[str],
    *,
    revoked: Iterable[str] = (),
    tiers: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, list[AclRule]]:
    """``{agent_id: rules}`` for the server, the QKD channel, every HMU and aggregator of a run.

    ``tiers`` maps each aggregator to its members (default: the cloud server over every
    HMU); an agent in two tiers gets the rules of both roles.  ``revoked`` HMUs keep
    every right except writing their update topic.
    """
    hmus = list(hmu_ids)
    if len(set(hmus)) != len(hmus):
        raise ValueError("HMU ids must be unique")
    for hmu in hmus:
        topics.check_part(hmu, "HMU id")
        if hmu in (topics.SERVER_ID, topics.CHANNEL_ID):
            raise ValueError(f"HMU id {hmu!r} is reserved for another agent")
    cut = set(revoked)
    unknown = cut.difference(hmus)
    if unknown:
        raise ValueError(f"cannot revoke unknown HMU(s): {', '.join(sorted(unknown))}")
    tiers = tiers if tiers is not None else {topics.SERVER_ID: hmus}

    server = [
        AclRule("read", "$SYS/broker/#"),  # broker counters for the metrics
        AclRule("read", topics.status_filter(run_id)),
        AclRule("read", topics.metrics_filter(run_id)),
    ]
    channel = [
        AclRule("read", topics.global_model(run_id)),
        AclRule("write", topics.status(run_id, topics.CHANNEL_ID)),
        AclRule("write", topics.metrics(run_id, topics.CHANNEL_ID)),
    ]
    table: dict[str, list[AclRule]] = {topics.SERVER_ID: server, topics.CHANNEL_ID: channel}
    for aggregator, members in tiers.items():
        for agent, rules in tier_rules(run_id, aggregator, members, cut).items():
            table.setdefault(agent, []).extend(rules)
    for agent in table:
        if agent != topics.CHANNEL_ID:
            table[agent] += [
                AclRule("write", topics.status(run_id, agent)),
                AclRule("write", topics.metrics(run_id, agent)),
            ]
    for hmu in hmus:
        server += [
            AclRule("write", topics.classical(run_id, hmu, "server")),
            AclRule("read", topics.classical(run_id, hmu, "hmu")),
            AclRule("read", topics.quantum(run_id, hmu, "rx")),
        ]
        channel += [
            AclRule("read", topics.quantum(run_id, hmu, "tx")),
            AclRule("write", topics.quantum(run_id, hmu, "rx")),
        ]
        table[hmu] += [
            AclRule("write", topics.classical(run_id, hmu, "hmu")),
            AclRule("write", topics.quantum(run_id, hmu, "tx")),
            AclRule("read", topics.classical(run_id, hmu, "server")),
        ]
    return table


def render_mosquitto_acl(rules: Mapping[str, Sequence[AclRule]]) -> str:
    """The text of a Mosquitto ``acl_file`` granting ``rules`` and nothing else."""
    lines = ["# Generated by iomt-testbed; anything not granted here is denied.", ""]
    for username, granted in rules.items():
        if not username or any(c.isspace() for c in username):
            raise ValueError(f"username {username!r} cannot appear in an ACL file")
        lines.append(f"user {username}")
        lines.extend(f"topic {rule.access} {rule.topic}" for rule in granted)
        lines.append("")
    return "\n".join(lines)


def parse_mosquitto_acl(text: str) -> dict[str, list[AclRule]]:
    """The ``user``/``topic`` blocks of an ACL file as written by ``render_mosquitto_acl``."""
    table: dict[str, list[AclRule]] = {}
    current: list[AclRule] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        words = raw.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "user" and len(words) == 2:
            current = table.setdefault(words[1], [])
        elif words[0] == "topic" and len(words) == 3 and current is not None:
            access = words[1]
            if access not in _ACCESS:
                raise ValueError(f"ACL line {number}: unknown access {access!r}")
            current.append(AclRule(access, words[2]))  # type: ignore[arg-type]
        else:
            raise ValueError(f"ACL line {number} is not understood: {raw.strip()!r}")
    return table
