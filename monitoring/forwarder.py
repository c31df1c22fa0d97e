"""The server-side forwarder of metrics HMUs publish over MQTT: check, then write to the sink.

An HMU without a route to InfluxDB publishes its points as line protocol on its own
metrics topic (``iomt.wire.topics.metrics(run, hmu)``; the broker's ACL lets only that HMU
write there).  ``accept`` is the pure core: it refuses a whole payload that is too
large, is not line protocol, names a measurement or field the registry does not know
(or a measurement only the server writes), carries a field of the wrong type, claims
another run or another HMU, or whose timestamps are far from ``now``.  Accepted points
are tagged with the sender as ``hmu`` and lose their ``run``/``scenario``/``strategy``
tags (the server's sink adds its own).  A refused payload is the peer's error: counted
by reason and dropped, never fatal.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from iomt.errors import DecodeError, PeerError, ProtocolViolation
from iomt.monitoring.config import MetricsConfig
from iomt.monitoring.measurements import MEASUREMENTS
from iomt.monitoring.point import TAG_KEYS, LineError, Point, parse_line
from iomt.wire import topics

log = logging.getLogger(__name__)

FORWARDABLE: frozenset[str] = frozenset(
    ("hmu_training", "qkd_link", "security", "resources", "detection")
)
"""Measurements an HMU may report; ``fl_round`` and ``broker`` come from the server only."""

_KIND_OF = {float: "float", int: "int", bool: "bool"}


@dataclass(frozen=True)
class ForwardLimits:
    """What one metrics payload from one HMU may hold."""

    max_bytes: int = 65_536
    max_lines: int = 1000
    max_line_bytes: int = 2048
    max_skew_s: float = 86_400.0
    """Timestamps may be at most this far from the forwarder's clock (field clocks drift)."""

    @classmethod
    def from_config(cls, config: MetricsConfig) -> ForwardLimits:
        """The limits of a scenario's ``metrics`` section."""
        return cls(max_bytes=config.forward_max_bytes, max_lines=config.forward_max_lines)


class MetricsForwarder:
    """Checks metrics payloads from HMUs and hands the accepted points to ``emit``."""

    def __init__(
        self,
        run_id: str,
        emit: Callable[[Point], None] | None = None,
        limits: ForwardLimits | None = None,
    ) -> None:
        self.run_id = topics.check_part(run_id, "run id")
        self.emit = emit
        self.limits = limits or ForwardLimits()
        self.accepted = 0
        self.rejected: Counter[str] = Counter()

    def accept(self, agent_id: str, payload: bytes, now_ns: int | None = None) -> list[Point]:
        """The points of ``payload`` from ``agent_id``, or ``PeerError`` refusing all of them.

        Pure: no I/O, no clock (the skew check runs only when ``now_ns`` is given).
        """
        lim = self.limits
        if len(payload) > lim.max_bytes:
            raise DecodeError(f"metrics from {agent_id}: {len(payload)} bytes > {lim.max_bytes}")
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError(f"metrics from {agent_id} are not UTF-8") from None
        lines = [ln for ln in text.split("\n") if ln.strip()]
        if not lines:
            raise DecodeError(f"metrics from {agent_id}: empty payload")
        if len(lines) > lim.max_lines:
            raise DecodeError(f"metrics from {agent_id}: {len(lines)} lines > {lim.max_lines}")
        return [self._point(agent_id, number, line, now_ns) for number, line in enumerate(lines, 1)]

    def _point(self, agent_id: str, number: int, line: str, now_ns: int | None) -> Point:
        where = f"metrics from {agent_id}, line {number}"
        if len(line.encode("utf-8")) > self.limits.max_line_bytes:
            raise DecodeError(f"{where}: longer than {self.limits.max_line_bytes} bytes")
        try:
            measurement, tags, fields, stamp = parse_line(line)
        except LineError as exc:
            raise DecodeError(f"{where}: not line protocol: {exc}") from None
        if measurement not in FORWARDABLE:
            raise ProtocolViolation(f"{where}: measurement {measurement!r} is not accepted")
        kinds = MEASUREMENTS[measurement]
        for key, value in fields.items():
            want = kinds.get(key)
            if want is None:
                raise ProtocolViolation(f"{where}: {measurement} has no field {key!r}")
            if _KIND_OF.get(type(value)) != want:
                raise DecodeError(f"{where}: field {key!r} must be {want}, not {value!r}")
        unknown = set(tags).difference(TAG_KEYS)
        if unknown:
            raise ProtocolViolation(f"{where}: tags {sorted(unknown)} are not allowed")
        if tags.get("hmu", agent_id) != agent_id:
            raise ProtocolViolation(f"{where}: {agent_id} cannot report for {tags['hmu']!r}")
        if tags.get("run", self.run_id) != self.run_id:
            raise ProtocolViolation(f"{where}: run {tags['run']!r} is not {self.run_id!r}")
        if stamp is None:
            raise DecodeError(f"{where}: no timestamp (the event's time is required)")
        if now_ns is not None and abs(stamp - now_ns) > self.limits.max_skew_s * 1e9:
            raise ProtocolViolation(f"{where}: timestamp {stamp} is too far from now")
        return Point(measurement, fields, stamp, {"hmu": agent_id})  # type: ignore[arg-type]

    def handle(self, topic: str, payload: bytes, now_ns: int | None = None) -> int:
        """Check a message from the metrics topic and emit its points; returns how many.

        A refused payload is counted in ``rejected`` (by error class) and logged.
        """
        agent = topics.agent_of(topic, self.run_id)
        try:
            if agent is None or not _is_metrics_topic(topic, self.run_id, agent):
                raise ProtocolViolation(f"metrics on unexpected topic {topic!r}")
            points = self.accept(agent, payload, now_ns)
        except PeerError as exc:
            self.rejected[type(exc).__name__] += 1
            log.warning("metrics forwarder: refused a payload on %s: %s", topic, exc)
            return 0
        if self.emit is not None:
            for point in points:
                self.emit(point)
        self.accepted += len(points)
        return len(points)


def _is_metrics_topic(topic: str, run_id: str, agent: str) -> bool:
    try:
        return topic == topics.metrics(run_id, agent)
    except ValueError:
        return False
