"""The JSON Schema of a scenario file, from the models that validate it.

Editors that speak the YAML language server (VS Code's YAML extension, Neovim, Helix,
JetBrains IDEs) read the modeline every shipped scenario starts with and offer
completion, descriptions and errors as you type::

    # yaml-language-server: $schema=scenario.schema.json

``scenarios/scenario.schema.json`` is this schema, written by ``iomt schema --out``; a
test keeps it equal to what the models say.  The loader stays the authority: it also
checks what a schema cannot (files that must exist, cross-references, point names).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from iomt.scenarios.schema import Scenario

SCHEMA_FILE = Path(__file__).resolve().parent / "scenario.schema.json"
MODELINE_PREFIX = "# yaml-language-server: $schema="

_SWEEP = {
    "type": "object",
    "description": "a grid: key path -> list of values, or axis name -> {bundle name:"
    " {key.path: value}} (iomt compare runs every point)",
    "minProperties": 1,
    "additionalProperties": {
        "anyOf": [
            {"type": "array", "minItems": 1},
            {"type": "object", "minProperties": 1, "additionalProperties": {"type": "object"}},
        ]
    },
}


def scenario_json_schema() -> dict[str, Any]:
    """The schema of a scenario file (a single scenario or a sweep file)."""
    schema = Scenario.model_json_schema()
    schema["properties"]["sweep"] = _SWEEP
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": "iomt-testbed scenario",
    }


def schema_text() -> str:
    """The schema as the shipped file holds it."""
    return json.dumps(scenario_json_schema(), indent=2, sort_keys=True) + "\n"


def modeline(scenario_file: Path) -> str:
    """The modeline ``scenario_file`` should start with: the shipped schema, relative to it."""
    here = scenario_file.resolve().parent
    up = len(here.relative_to(SCHEMA_FILE.parent).parts)
    return MODELINE_PREFIX + "../" * up + SCHEMA_FILE.name
