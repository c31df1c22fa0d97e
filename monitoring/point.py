"""One metrics point and its InfluxDB line-protocol text, both ways, without I/O.

Line protocol (InfluxDB v2 reference, "Line protocol")::

    measurement[,tag=value...] field=value[,field=value...] timestamp_ns

Measurement names escape ``,`` and space; tag keys, tag values and field keys escape
``,``, ``=`` and space, each with a backslash.  Integer fields end in ``i`` (``u`` for
unsigned), booleans are ``true``/``false`` (or ``t``, ``T``, ``True``, ``TRUE`` and the
like), strings are double-quoted.  The testbed writes numbers and booleans only: a
time-series database such as VictoriaMetrics keeps only numeric fields.  Only finite
numbers can be written; a NaN or infinite field is left out of the point.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

FieldValue = float | int | bool
TAG_KEYS: tuple[str, ...] = ("run", "scenario", "hmu", "strategy")
"""The only tags the testbed writes; each has few values per run (low cardinality)."""

_EMPTY: Mapping[str, str] = MappingProxyType({})
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_INT = re.compile(r"^[+-]?\d+$")
_TRUE = frozenset(("t", "T", "true", "True", "TRUE"))
_FALSE = frozenset(("f", "F", "false", "False", "FALSE"))


class LineError(ValueError):
    """A line that is not valid line protocol, or a point that cannot be written as one."""


class Point(NamedTuple):
    """A measurement with numeric fields, optional tags, and the time of the event in ns.

    A named tuple: cheap to build on the hot path and immutable.
    """

    measurement: str
    fields: Mapping[str, FieldValue]
    time_ns: int
    tags: Mapping[str, str] | None = None


def now_ns() -> int:
    """The wall-clock time now, in nanoseconds since the epoch."""
    return time.time_ns()


def _escape_measurement(name: str) -> str:
    return name.replace(",", r"\,").replace(" ", r"\ ")


def _escape_key(text: str) -> str:
    return text.replace(",", r"\,").replace("=", r"\=").replace(" ", r"\ ")


def _value_text(value: FieldValue) -> str | None:
    kind = type(value)
    if kind is float:
        return repr(value) if math.isfinite(value) else None  # type: ignore[arg-type]
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return f"{value}i"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{int(value)}i"
    if isinstance(value, float):
        return repr(float(value)) if math.isfinite(value) else None
    raise LineError(f"field value {value!r} is not a number or a boolean")


def _head(measurement: str, tags: Mapping[str, str]) -> str:
    if not measurement or "\n" in measurement or "\r" in measurement:
        raise LineError(f"measurement {measurement!r} is empty or holds a newline")
    parts = [_escape_measurement(measurement)]
    for key in sorted(tags):
        value = tags[key]
        if value:
            if "\n" in key + value or "\r" in key + value:
                raise LineError(f"tag {key!r}={value!r} holds a newline")
            parts.append(f"{_escape_key(key)}={_escape_key(value)}")
    return ",".join(parts)


class Encoder:
    """Encodes points with fixed ``base_tags``, caching series heads and field keys.

    The caches stay small because tags have few values (run, scenario, hmu, strategy).
    """

    _CACHE_LIMIT = 4096

    def __init__(self, base_tags: Mapping[str, str] = _EMPTY) -> None:
        self.base_tags = dict(base_tags)
        self._heads: dict[tuple[str, tuple[tuple[str, str], ...] | None], str] = {}
        self._keys: dict[str, str] = {}

    def line(self, point: Point) -> str:
        """The line-protocol line of ``point`` (no newline); its own tags win over the base."""
        measurement, fields, time_ns, tags = point
        cache_key = (measurement, tuple(tags.items()) if tags else None)
        head = self._heads.get(cache_key)
        if head is None:
            head = _head(measurement, {**self.base_tags, **tags} if tags else self.base_tags)
            if len(self._heads) >= self._CACHE_LIMIT:
                self._heads.clear()
            self._heads[cache_key] = head
        keys = self._keys
        parts = []
        for key, value in fields.items():
            text = _value_text(value)
            if text is None:
                continue
            escaped = keys.get(key)
            if escaped is None:
                if not key or "\n" in key or "\r" in key:
                    raise LineError(f"field key {key!r} is empty or holds a newline")
                escaped = _escape_key(key)
                if len(keys) >= self._CACHE_LIMIT:
                    keys.clear()
                keys[key] = escaped
            parts.append(f"{escaped}={text}")
        if not parts:
            raise LineError(f"{measurement}: no finite field to write")
        return f"{head} {','.join(parts)} {int(time_ns)}"


def encode(point: Point, base_tags: Mapping[str, str] = _EMPTY) -> str:
    """The line-protocol line of ``point`` (no newline); its own tags win over ``base_tags``.

    Tags are sorted by key (what InfluxDB recommends).  Raises ``LineError`` for an
    empty name, a name with a newline, or a point left without a finite field.
    """
    return Encoder(base_tags).line(point)


def _split(text: str, seps: str, *, quotes: bool) -> tuple[list[str], str]:
    """Split ``text`` at the first unescaped (and, with ``quotes``, unquoted) ``seps``.

    Returns the pieces split at ``,`` (when ``,`` is in ``seps``) up to the first other
    separator, and the remainder after it.  Escapes are kept for ``_unescape``.
    """
    pieces: list[str] = []
    start = 0
    i = 0
    quoted = False
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            i += 2
            continue
        if c == '"' and quotes:
            quoted = not quoted
        elif not quoted and c in seps:
            pieces.append(text[start:i])
            if c != ",":
                return pieces, text[i + 1 :]
            start = i + 1
        i += 1
    if quoted:
        raise LineError("unterminated string field")
    pieces.append(text[start:])
    return pieces, ""


def _unescape(text: str) -> str:
    return re.sub(r"\\([,= \\\"])", r"\1", text)


def _parse_value(text: str) -> FieldValue | str:
    if text.startswith('"'):
        if len(text) < 2 or not text.endswith('"'):
            raise LineError(f"bad string field {text!r}")
        return text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if text[-1:] in ("i", "u") and _INT.match(text[:-1]):
        if text[-1] == "u" and text.startswith("-"):
            raise LineError(f"negative unsigned field {text!r}")
        return int(text[:-1])
    if _FLOAT.match(text):
        return float(text)
    raise LineError(f"field value {text!r} is not a number, boolean or string")


def parse_line(line: str) -> tuple[str, dict[str, str], dict[str, FieldValue | str], int | None]:
    """Parse one line into ``(measurement, tags, fields, timestamp_ns or None)``.

    Raises ``LineError`` for anything that is not line protocol.
    """
    line = line.strip()
    if not line or line.startswith("#"):
        raise LineError("empty line or comment")
    head, rest = _split(line, ", ", quotes=False)
    measurement = _unescape(head[0])
    if not measurement:
        raise LineError("missing measurement")
    tags: dict[str, str] = {}
    for item in head[1:]:
        key, eq, value = _split_pair(item)
        if not eq or not key or not value:
            raise LineError(f"bad tag {item!r}")
        tags[key] = value
    if not rest:
        raise LineError(f"{measurement}: no fields")
    field_items, stamp = _split(rest, ", ", quotes=True)
    fields: dict[str, FieldValue | str] = {}
    for item in field_items:
        key, eq, value = _split_pair(item, keep_value_escapes=True)
        if not eq or not key or not value:
            raise LineError(f"bad field {item!r}")
        fields[key] = _parse_value(value)
    stamp = stamp.strip()
    if not stamp:
        return measurement, tags, fields, None
    if not _INT.match(stamp):
        raise LineError(f"bad timestamp {stamp!r}")
    return measurement, tags, fields, int(stamp)


def _split_pair(item: str, *, keep_value_escapes: bool = False) -> tuple[str, bool, str]:
    """``key=value`` split at the first unescaped ``=``."""
    i = 0
    while i < len(item):
        if item[i] == "\\":
            i += 2
            continue
        if item[i] == "=":
            value = item[i + 1 :]
            return _unescape(item[:i]), True, value if keep_value_escapes else _unescape(value)
        i += 1
    return _unescape(item), False, ""


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a plain identifier fit for a measurement, field or tag key."""
    if not _NAME.match(name):
        raise LineError(f"{what} {name!r} must be 1-64 of A-Z, a-z, 0-9 and '_'")
    return name
