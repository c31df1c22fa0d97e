"""The scenario JSON Schema: the shipped file is what the models say, every shipped
scenario names it and passes it, and it refuses what the loader refuses."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from iomt.errors import ScenarioError
from iomt.scenarios.cli import app
from iomt.scenarios.json_schema import SCHEMA_FILE, modeline, scenario_json_schema
from iomt.scenarios.schema import validate_scenario

SHIPPED = sorted(SCHEMA_FILE.parent.rglob("*.yaml"))
VALIDATOR = jsonschema.Draft202012Validator(scenario_json_schema())


def test_the_shipped_schema_is_what_the_models_say_and_what_iomt_schema_prints(tmp_path):
    shipped = json.loads(SCHEMA_FILE.read_text())
    regenerate = "run: iomt schema --out scenarios/scenario.schema.json"
    assert shipped == scenario_json_schema(), regenerate
    jsonschema.Draft202012Validator.check_schema(shipped)
    printed = CliRunner().invoke(app, ["schema"])
    assert printed.exit_code == 0 and json.loads(printed.stdout) == shipped
    written = CliRunner().invoke(app, ["schema", "--out", str(tmp_path / "s.json")])
    assert written.exit_code == 0 and json.loads((tmp_path / "s.json").read_text()) == shipped


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_scenario_names_the_schema_and_passes_it(path: Path):
    first = path.read_text().splitlines()[0]
    assert first == modeline(path)
    assert (path.parent / first.split("$schema=")[1]).resolve() == SCHEMA_FILE
    VALIDATOR.validate(yaml.safe_load(path.read_text()))


BASE = {"name": "probe", "federation": {"hmus": 3, "clients_per_round": 3, "rounds": 2}}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (("federation", "bogus"), 1),  # an unknown key
        (("federation", "rounds"), "many"),  # a wrong type
        (("seed",), -1),  # out of range
        (("name",), "Has Spaces"),  # a pattern
        (("update_encryption", "kind"), "rot13"),  # not one of the choices
        (("sweep",), {"seed": []}),  # a sweep key without values
    ],
)
def test_the_schema_refuses_what_the_loader_refuses(key: tuple[str, ...], value: object):
    raw = copy.deepcopy(BASE)
    validate_scenario(copy.deepcopy(raw), source="probe.yaml")  # the base is valid
    VALIDATOR.validate(raw)
    node = raw
    for part in key[:-1]:
        node = node.setdefault(part, {})
    node[key[-1]] = value
    assert list(VALIDATOR.iter_errors(raw))
    if key != ("sweep",):  # the loader expands sweeps before it validates a point
        with pytest.raises(ScenarioError):
            validate_scenario(raw, source="probe.yaml")
