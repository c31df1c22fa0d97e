"""Scenarios that cannot run are refused fast, at validate time, in one line naming a YAML path.

A property-based test mutates the shipped scenarios (absurd numbers, wrong types,
non-finite values, unknown keys, deep nesting, missing files, garbage URLs) and checks
each one either validates or is refused within 2 s by a ``ScenarioError`` whose message
is one line naming the file and a YAML path; no other exception may escape.  Hostile
files the YAML layer must stop (alias bombs, duplicate keys, huge documents) are
tested by hand, through the CLI as a user meets them.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iomt.errors import ScenarioError
from iomt.scenarios.schema import load_scenario

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))
BASES = [yaml.safe_load(p.read_text()) for p in SHIPPED]
LIMIT_S = 2.0
# "file: key.path (line N): ..." or "file: line N: ..." or "file: (top level): ..."
NAMES_A_PATH = re.compile(
    r": ([A-Za-z_][\w-]*(\.[\w-]+)*( \(line \d+\))?|line \d+|\(top level\))[:;]"
)

ABSURD = st.one_of(
    st.integers(min_value=-(10**18), max_value=10**18),
    st.sampled_from([0, -1, 10**9, 2**31, 2**63, 1e308, -1e308, 1e-308]),
    st.sampled_from([float("inf"), float("-inf"), float("nan")]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["", "mqtt://", "http://x", "mqtt://h:0", "mqtts://u:p@h:1", "/no/such/file"]),
    st.none(),
    st.booleans(),
    st.lists(st.integers(min_value=-5, max_value=10**6), max_size=5),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
)


def key_paths(node: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path of a parsed scenario, sections and leaves."""
    paths = []
    if isinstance(node, dict):
        for key, value in node.items():
            path = (*prefix, str(key))
            paths.append(path)
            paths += key_paths(value, path)
    return paths


# keys every section may hold, so mutations reach keys the shipped files leave out
KNOWN = [
    ("federation", "rounds"), ("federation", "hmus"), ("federation", "clients_per_round"),
    ("federation", "round_deadline_s"), ("federation", "online_timeout_s"),
    ("federation", "min_updates"), ("training", "epochs"), ("training", "batch_size"),
    ("training", "hidden"), ("training", "learning_rate"), ("data", "dataset"),
    ("data", "limit"), ("broker", "url"), ("broker", "credentials_file"),
    ("broker", "ca_file"), ("qkd", "qubits"), ("qkd", "fibre_km"),
    ("traffic", "capture_s"), ("traffic", "truth"), ("metrics", "resources_interval_s"),
    ("metrics", "buffer_points"), ("privacy", "epsilon"), ("attacks", "entries"),
    ("seed",), ("name",), ("unknown_key",), ("federation", "typo_key"),
]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    scenario = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(key_paths(scenario) + KNOWN))
        node = scenario
        for part in path[:-1]:
            child = node.get(part) if isinstance(node, dict) else None
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        if draw(st.booleans()) and path[-1] in node and len(path) > 1:
            del node[path[-1]]
        else:
            node[path[-1]] = draw(ABSURD)
    return scenario


@settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(mutated())
def test_every_mutated_scenario_validates_or_is_refused_in_one_line(
    tmp_path_factory: pytest.TempPathFactory, scenario: dict[str, Any]
) -> None:
    path = tmp_path_factory.mktemp("mutated") / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario, allow_unicode=True))
    started = time.perf_counter()
    try:
        load_scenario(path)
    except ScenarioError as exc:
        message = str(exc)
        assert "\n" not in message
        assert message.startswith(str(path))
        assert NAMES_A_PATH.search(message), message
    assert time.perf_counter() - started < LIMIT_S


def deep_document() -> str:
    return "name: deep\nfederation: " + "{a: " * 200 + "1" + "}" * 200 + "\n"


def alias_bomb() -> str:
    lines = ["name: bomb", 'a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{cur}: &{cur} [{', '.join([f'*{prev}'] * 9)}]")
    return "\n".join(lines) + "\n"


HOSTILE = {
    "alias bomb": (alias_bomb(), "expands to more than"),
    "duplicate keys": ("name: dup\nseed: 1\nfederation: {rounds: 2}\nseed: 2\n", "seed (line 4)"),
    "deep nesting": (deep_document(), "nested deeper than"),
    "huge document": ("name: huge\ndescription: " + "x" * (2 << 20) + "\n", "MiB"),
    "infinite deadline": (
        "name: inf\nfederation: {round_deadline_s: .inf}\n",
        "federation.round_deadline_s",
    ),
    "nan epsilon": ("name: nan\nprivacy: {mechanism: laplace, epsilon: .nan}\n", "privacy"),
    "huge epochs": ("name: e\ntraining: {epochs: 1000000000}\n", "training.epochs"),
    "huge rounds": ("name: r\nfederation: {rounds: 1000000000}\n", "federation.rounds"),
    "empty hidden layers": ("name: h\ntraining: {hidden: []}\n", "training.hidden"),
    "missing dataset": ("name: d\ndata: {dataset: /no/such/file.csv}\n", "data.dataset"),
    "missing credentials": (
        "name: c\nbroker: {credentials_file: /no/such/creds.yaml}\n",
        "broker.credentials_file",
    ),
    "garbage broker url": ("name: u\nbroker: {url: 'mqtt://h:99999/x?y'}\n", "broker.url"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_files_are_refused_by_the_cli_in_one_line(case: str, tmp_path: Path) -> None:
    text, expected = HOSTILE[case]
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "iomt.scenarios.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert expected in proc.stderr
    assert time.perf_counter() - started < LIMIT_S + 1.5  # the CLI's own start-up on top
