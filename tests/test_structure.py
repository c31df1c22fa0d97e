"""The code's shape stays readable: small modules and functions, imports that point one way.

No module over 400 lines and no function over 80 outside the tests; no import cycle
between packages; and no function-level import that hides a cycle between modules
(function-level imports are for heavy optional packages: qiskit, scapy, matplotlib).
"""

from __future__ import annotations

import ast
import subprocess
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {
    "adversary", "broker", "fedlearn", "hmu_agent", "monitoring", "qkd_channel",
    "scenarios", "server_agent", "traffic", "wire", "iomt_testbed",
}  # fmt: skip
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def tracked_python() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return out.stdout.split()


def module_name(path: str) -> str:
    parts = path.removesuffix(".py").split("/")
    parts[0] = "iomt" if parts[0] == "iomt_testbed" else f"iomt.{parts[0]}"
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graphs() -> tuple[dict[str, set[str]], dict[str, set[tuple[str, str]]]]:
    """Module -> modules it imports at module level; module -> (module, function) imported
    inside a function."""
    files = {module_name(p): p for p in tracked_python() if p.split("/")[0] in FOLDERS}

    def targets(node: ast.AST) -> list[str]:
        found = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("iomt"):
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.append(name if name in files else node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("iomt")]
        return [t for t in found if t in files]

    top: dict[str, set[str]] = defaultdict(set)
    local: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for name, path in files.items():
        tree = ast.parse((ROOT / path).read_text())
        for node in tree.body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                top[name].update(targets(node))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for sub in ast.walk(node):
                    if isinstance(sub, ast.Import | ast.ImportFrom):
                        local[name].update((t, node.name) for t in targets(sub))
    return top, local


def reachable(start: str, graph: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    stack = [start]
    while stack:
        for nxt in graph.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def test_no_module_or_function_is_too_long() -> None:
    too_long = []
    for path in tracked_python():
        if path.startswith("tests/"):
            continue
        source = (ROOT / path).read_text()
        if source.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{path}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{path}: {node.name} is {length} lines")
    assert too_long == []


def test_packages_import_each_other_one_way() -> None:
    top, local = import_graphs()
    package = {m: ".".join(m.split(".")[:2]) for m in top}
    graph: dict[str, set[str]] = defaultdict(set)
    for module, imported in top.items():
        for other in imported:
            if package[other] != package[module]:
                graph[package[module]].add(package[other])
    cycles = sorted(p for p in graph if p in reachable(p, graph))
    assert cycles == []


def test_no_function_level_import_hides_a_module_cycle() -> None:
    top, local = import_graphs()
    hidden = sorted(
        f"{module}.{function} imports {other}"
        for module, pairs in local.items()
        for other, function in pairs
        if other == module or module in reachable(other, top)
    )
    assert hidden == []
