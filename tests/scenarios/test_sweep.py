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


@pytest.mark.parametrize("path", [SAFEMED / f"{n}.yaml" for n in ("fedavg", "dp", "robust")],
                         ids=lambda p: p.name)  # fmt: skip
def test_safemeds_poisoning_sweeps_give_five_attacker_shares(path):
    points = load_points(path)
    shares = [p.attacks.entries[0].schedule.share_start for p in points]
    assert shares == [0, 0.1, 0.2, 0.3, 0.4]
    assert points[0].name == f"safemed_{path.stem}-0"


def test_named_bundles_set_several_keys_at_once_and_name_their_points(tmp_path):
    text = GRID.split("sweep:")[0] + (
        "sweep:\n  variants:\n    plain: {}\n"
        "    dp: {privacy.mechanism: gaussian, privacy.epsilon: 50}\n"
        "  attackers:\n    '0':\n      attacks.entries[0].schedule.share_start: 0\n"
        "    0p5:\n      attacks.entries[0].schedule.share_start: 0.5\n"
        "      measure_leakage: false\n"  # a top-level key
    )
    points = load_points(write(tmp_path, text))
    assert [p.name for p in points] == ["grid-plain-0", "grid-plain-0p5", "grid-dp-0",
                                        "grid-dp-0p5"]  # fmt: skip
    assert [(p.privacy.mechanism, p.privacy.epsilon) for p in points[1:3]] == [
        ("none", points[0].privacy.epsilon), ("gaussian", 50)]  # fmt: skip
    assert [(p.attacks.entries[0].schedule.share_start, p.measure_leakage) for p in points] == [
        (0, True), (0.5, False), (0, True), (0.5, False)]  # fmt: skip
    for bad, error in (("variants:\n    Bad Name: {}", "sweep.variants.Bad Name"),
                       ("attackers: {}", "sweep.attackers: a mapping of names")):  # fmt: skip
        with pytest.raises(ScenarioError, match=error):
            load_points(write(tmp_path, GRID.split("sweep:")[0] + f"sweep:\n  {bad}\n"))


def test_safemeds_tables_are_sweeps_of_its_methods_and_its_ablation():
    methods = load_points(SAFEMED / "methods.yaml")
    assert len(methods) == 30 and methods[0].name == "t1-fedavg-0"
    safemed = next(p for p in methods if p.name == "t1-safemed-0p2")
    assert safemed.update_encryption.neural.cipher_width == 32
    assert safemed.privacy.mechanism == "gaussian" and safemed.defence.screening.enabled
    assert safemed.attacks.entries[0].schedule.share_start == 0.2
    ablation = {p.name: p for p in load_points(SAFEMED / "ablation.yaml")}
    assert ablation["t3-no-neural-crypto"].update_encryption.kind == "none"
    assert ablation["t3-no-trust"].defence.aggregator == "fedavg"


def test_safemeds_scalability_sweep_keeps_ten_percent_behind_ten_fogs():
    points = load_points(SAFEMED / "scale.yaml")
    assert [(p.federation.hmus, p.federation.clients_per_round) for p in points] == [
        (20, 2), (50, 5), (100, 10), (200, 20)]  # fmt: skip
    assert all(p.topology.fog_nodes == 10 and p.defence.screening.enabled for p in points)


def test_safemeds_attacked_points_skip_the_leakage_that_t1_reads_only_without_attackers():
    methods = load_points(SAFEMED / "methods.yaml")
    assert {p.name for p in methods if p.measure_leakage} == {
        f"t1-{m}-0" for m in ("fedavg", "fl-dp", "fl-he", "neuralcrypto", "safemed", "keyed")
    }
