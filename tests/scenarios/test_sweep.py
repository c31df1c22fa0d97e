"""Sweep files: a grid of key paths expands into named, validated scenarios."""

from pathlib import Path

import pytest

from iomt.errors import ScenarioError
from iomt.scenarios.schema import load_points, load_scenario

SAFEMED = Path(__file__).resolve().parents[2] / "scenarios" / "safemed"

GRID = """\
name: grid
federation: {hmus: 4, clients_per_round: 4}
attacks:
  entries:
    - {kind: sign-flip, schedule: {share_start: 0}}
sweep:
  attacks.entries[0].schedule.share_start: [0, 0.25]
  update_encryption.kind: [none, ckks]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def test_every_combination_is_a_scenario_named_by_its_values(tmp_path):
    points = load_points(write(tmp_path, GRID))
    assert [p.name for p in points] == ["grid-0-none", "grid-0-ckks", "grid-0p25-none",
                                        "grid-0p25-ckks"]  # fmt: skip
    assert [p.attacks.entries[0].schedule.share_start for p in points] == [0, 0, 0.25, 0.25]
    assert [p.update_encryption.kind for p in points] == ["none", "ckks", "none", "ckks"]


def test_overrides_apply_to_every_point_and_a_plain_file_is_one_point(tmp_path):
    points = load_points(write(tmp_path, GRID), ["federation.rounds=3"])
    assert {p.federation.rounds for p in points} == {3}
    assert [p.name for p in load_points(write(tmp_path, "name: one\n"))] == ["one"]


@pytest.mark.parametrize(
    ("sweep", "named"),
    [
        ("federation.roundz: [1, 2]", "federation.roundz: unknown key"),
        ("attacks.entries[3].scale: [1]", "sweep key 'attacks.entries[3].scale': no item [3]"),
        ("federation.rounds: 3", "sweep.federation.rounds: a non-empty list"),
        ("'federation..rounds': [1]", "sweep key 'federation..rounds'"),
        ("federation.rounds: [1, -1]", "(sweep point grid--1): federation.rounds"),
    ],
)
def test_a_bad_sweep_is_one_line_naming_the_key(tmp_path, sweep, named):
    text = GRID.split("sweep:")[0] + f"sweep:\n  {sweep}\n"
    message = str(pytest.raises(ScenarioError, load_points, write(tmp_path, text)).value)
    assert named in message and "\n" not in message


def test_a_sweep_file_is_not_run_as_one_scenario(tmp_path):
    with pytest.raises(ScenarioError, match="sweep of 4 points; run it with `iomt compare`"):
        load_scenario(write(tmp_path, GRID))


@pytest.mark.parametrize("path", sorted(SAFEMED.glob("*.yaml")), ids=lambda p: p.name)
def test_safemeds_sweep_files_give_five_attacker_shares(path):
    points = load_points(path)
    shares = [p.attacks.entries[0].schedule.share_start for p in points]
    assert shares == [0, 0.1, 0.2, 0.3, 0.4]
    assert points[0].name == f"safemed_{path.stem}-0"
