"""Reading a scenario's YAML so that no file can hang or exhaust the loader.

``yaml.safe_load`` alone will build a "billion laughs" document (aliases nested so they
expand exponentially), take duplicate keys silently (the last one wins), recurse until
Python's stack runs out on deep nesting, and accept ``.inf`` and ``.nan``.  Here the
document is first *composed* (a node graph, aliases shared, nothing expanded) and
checked: its size in bytes, its depth, the number of nodes it would expand to
(counted once per shared node, so a bomb costs nothing to measure), and duplicate
keys; only then is it constructed, and every number in the result must be finite.
Each refusal is a ``ScenarioError`` naming the YAML path and line.
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from iomt.errors import ScenarioError

MAX_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_EXPANDED_NODES = 50_000


def _where(path: tuple[str, ...], node: yaml.Node | None = None) -> str:
    name = ".".join(path) or "(top level)"
    return f"{name} (line {node.start_mark.line + 1})" if node is not None else name


def _check_graph(root: yaml.Node, source: str) -> None:
    """Depth, duplicate keys and expanded size of a composed document."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, path: tuple[str, ...], depth: int) -> int:
        if id(node) in sizes:  # an alias to a node already counted: its size is known
            return sizes[id(node)]
        if depth > MAX_DEPTH:
            raise ScenarioError(
                f"{source}: {_where(path, node)}: nested deeper than {MAX_DEPTH} levels"
            )
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                name = str(key.value)
                if name in seen:
                    raise ScenarioError(
                        f"{source}: {_where((*path, name), key)}: duplicate key; keep one of them"
                    )
                seen.add(name)
                total += 1 + size(value, (*path, name), depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                total += size(item, (*path, str(i)), depth + 1)
        if total > MAX_EXPANDED_NODES:
            raise ScenarioError(
                f"{source}: {_where(path, node)}: expands to more than "
                f"{MAX_EXPANDED_NODES} values (aliases?); a scenario is far smaller"
            )
        sizes[id(node)] = total
        return total

    size(root, (), 0)


def _check_depth(text: str, source: str) -> None:
    """Refuse deep nesting from the event stream, before the recursive composer sees it."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1
                raise ScenarioError(f"{source}: line {line}: nested deeper than {MAX_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def check_finite(value: Any, source: str, path: tuple[str, ...] = ()) -> None:
    """Refuse ``.inf``, ``-.inf`` and ``.nan`` anywhere in a parsed scenario."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ScenarioError(
            f"{source}: {_where(path)}: {value} is not a finite number; give a finite value"
        )
    if isinstance(value, dict):
        for key, item in value.items():
            check_finite(item, source, (*path, str(key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_finite(item, source, (*path, str(i)))


def load_guarded(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """The parsed document and its composed node graph; ``ScenarioError`` on anything unsafe."""
    if len(text.encode("utf-8", "replace")) > MAX_BYTES:
        raise ScenarioError(f"{source}: over {MAX_BYTES >> 20} MiB; a scenario is a few KB")
    try:
        _check_depth(text, source)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None:
            _check_graph(root, source)
        data = yaml.load(text, Loader=yaml.SafeLoader)  # noqa: S506 - SafeLoader
    except RecursionError:
        raise ScenarioError(f"{source}: nested deeper than {MAX_DEPTH} levels") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioError(f"{source}:{where} is not valid YAML: {problem}") from None
    check_finite(data, source)
    return data, root
