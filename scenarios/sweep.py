"""Sweep files: one scenario with a ``sweep`` grid, expanded into one scenario per point.

A sweep maps key paths to lists of values; the grid is every combination, in file order::

    sweep:
      attacks.entries[0].schedule.share_start: [0, 0.1, 0.2]
      update_encryption.kind: [none, neural]

Each point is the file with those keys set, named ``<name>-<value>-<value>`` (``0.1``
becomes ``0p1``), and is validated as a scenario of its own, so a bad key or value is
reported with the point that has it before anything runs.

Values that differ in several keys at once are named bundles: an axis given as a mapping
of names to key settings (its own name is only a label), whose value in a point's name
is the bundle's name::

    sweep:
      variants:
        fedavg: {}
        fl-dp: {privacy.mechanism: gaussian, privacy.epsilon: 50}
      attackers:
        "0":
          attacks.entries[0].schedule.share_start: 0
        0p2:
          attacks.entries[0].schedule.share_start: 0.2
          measure_leakage: false

(A key with ``[i]`` needs YAML's block style: in ``{...}`` the bracket opens a list.)
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass
from typing import Any

from iomt.errors import ScenarioError

_SEGMENT = re.compile(r"([A-Za-z_][\w-]*)((?:\[\d+\])*)")
MAX_POINTS = 1000


@dataclass(frozen=True)
class Point:
    """One point of a grid: its scenario name and the keys it sets."""

    name: str
    settings: dict[str, Any]


def grid(raw: dict[str, Any], source: str) -> list[Point]:
    """The points of ``raw['sweep']`` (the mapping is left as it is)."""
    sweep = raw.get("sweep")
    if not isinstance(sweep, dict) or not sweep:
        raise ScenarioError(f"{source}: sweep: a mapping of key paths to lists of values")
    axes: list[list[tuple[str, dict[str, Any]]]] = []
    for key, values in sweep.items():
        if isinstance(values, dict):
            axes.append(_bundles(str(key), values, source))
            continue
        _segments(str(key), source)
        if not isinstance(values, list) or not values:
            raise ScenarioError(
                f"{source}: sweep.{key}: a non-empty list of values, or a mapping of names"
                " to key settings"
            )
        axes.append([(_label(v), {str(key): v}) for v in values])
    combos = list(itertools.product(*axes))
    if len(combos) > MAX_POINTS:
        raise ScenarioError(f"{source}: sweep: {len(combos)} points; at most {MAX_POINTS}")
    base = str(raw.get("name", "sweep"))
    points, seen = [], set()
    for combo in combos:
        name = "-".join([base, *(label for label, _ in combo)])[:48]
        if name in seen:
            raise ScenarioError(f"{source}: sweep: two points are both named {name}")
        seen.add(name)
        points.append(Point(name, {k: v for _, settings in combo for k, v in settings.items()}))
    return points


def _bundles(axis: str, values: dict[Any, Any], source: str) -> list[tuple[str, dict[str, Any]]]:
    if not values:
        raise ScenarioError(f"{source}: sweep.{axis}: a mapping of names to key settings")
    out = []
    for name, settings in values.items():
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", str(name)):
            raise ScenarioError(
                f"{source}: sweep.{axis}.{name}: lower-case letters, digits, '-' and '_'"
            )
        if not isinstance(settings, dict | None):
            raise ScenarioError(f"{source}: sweep.{axis}.{name}: a mapping of key paths")
        for key in settings or {}:
            _segments(str(key), source)
        out.append((str(name), {str(k): v for k, v in (settings or {}).items()}))
    return out


def point_raw(raw: dict[str, Any], point: Point, source: str) -> dict[str, Any]:
    """The scenario mapping of one point: ``raw`` without its sweep, with the point's keys."""
    out = copy.deepcopy({k: v for k, v in raw.items() if k != "sweep"})
    out["name"] = point.name
    for key, value in point.settings.items():
        _set(out, key, copy.deepcopy(value), source)
    return out


def _label(value: Any) -> str:
    return re.sub(r"[^a-z0-9_-]", "_", str(value).lower().replace(".", "p"))


def _segments(key: str, source: str) -> list[str | int]:
    """``a.b[0].c`` as ``['a', 'b', 0, 'c']``."""
    out: list[str | int] = []
    for part in key.split("."):
        match = _SEGMENT.fullmatch(part)
        if match is None:
            raise ScenarioError(
                f"{source}: sweep key {key!r}: expected key.path, with [i] for list items"
                " (e.g. attacks.entries[0].schedule.share_start)"
            )
        out.append(match.group(1))
        out += [int(i) for i in re.findall(r"\[(\d+)\]", match.group(2))]
    return out


def _set(raw: dict[str, Any], key: str, value: Any, source: str) -> None:
    *parents, leaf = _segments(key, source)
    node: Any = raw
    for part, nxt in zip(parents, [*parents, leaf][1:], strict=True):
        node = _child(node, part, {} if isinstance(nxt, str) else [], key, source)
    if isinstance(leaf, int):
        if not isinstance(node, list) or leaf >= len(node):
            raise ScenarioError(f"{source}: sweep key {key!r}: no item [{leaf}] in the file")
        node[leaf] = value
    elif isinstance(node, dict):
        node[leaf] = value
    else:
        raise ScenarioError(f"{source}: sweep key {key!r}: {leaf!r} is not in a section")


def _child(node: Any, part: str | int, empty: Any, key: str, source: str) -> Any:
    if isinstance(part, int):
        if not isinstance(node, list) or part >= len(node):
            raise ScenarioError(f"{source}: sweep key {key!r}: no item [{part}] in the file")
        return node[part]
    if not isinstance(node, dict):
        raise ScenarioError(f"{source}: sweep key {key!r}: {part!r} is not in a section")
    return node.setdefault(part, empty)
