"""Scenario files are validated strictly, with every error's YAML path and line."""

import re
from pathlib import Path

import pytest

from iomt.errors import ScenarioError, UsageError
from iomt.scenarios.schema import load_points, load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_scenarios_validate(path):
    for scenario in load_points(path):  # every point of a sweep file
        assert scenario.federation.clients_per_round <= scenario.federation.hmus


def write(tmp_path, text):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def test_misspelt_key_is_named_with_its_path_and_line(tmp_path):
    path = write(tmp_path, "name: x\nfederation:\n  hmus: 3\n  clients_pr_round: 2\n")
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert "federation.clients_pr_round (line 4): unknown key" in str(err.value)
    assert str(path) in str(err.value)


def test_every_error_is_reported(tmp_path):
    path = write(tmp_path, "name: x\nseed: -1\nfederation:\n  rounds: many\n")
    message = str(pytest.raises(ScenarioError, load_scenario, path).value)
    assert "2 errors" in message and "seed" in message and "federation.rounds" in message
    assert "\n" not in message


def test_k_cannot_exceed_hmus(tmp_path):
    path = write(tmp_path, "name: x\nfederation:\n  hmus: 2\n  clients_per_round: 3\n")
    with pytest.raises(ScenarioError, match="exceeds hmus"):
        load_scenario(path)


def test_overrides_are_yaml_typed_and_validated(tmp_path):
    path = write(tmp_path, "name: x\n")
    scenario = load_scenario(path, ["federation.rounds=4", "training.hidden=[32, 16]"])
    assert scenario.federation.rounds == 4 and scenario.training.hidden == (32, 16)
    with pytest.raises(ScenarioError, match="federation.roundz"):
        load_scenario(path, ["federation.roundz=4"])
    with pytest.raises(UsageError):
        load_scenario(path, ["no-equals-sign"])


def test_bad_yaml_and_missing_file_are_one_line_errors(tmp_path):
    path = write(tmp_path, "name: x\nfederation: [unclosed\n")
    assert "not valid YAML" in str(pytest.raises(ScenarioError, load_scenario, path).value)
    assert "no such scenario" in str(
        pytest.raises(ScenarioError, load_scenario, tmp_path / "nope.yaml").value
    )
    assert "mapping" in str(
        pytest.raises(ScenarioError, load_scenario, write(tmp_path, "- 1\n")).value
    )


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (
            "defence: {aggregator: trust, screening: {enabled: true}}",
            "aggregator trust and screening",
        ),
        ("defence: {aggregator: median}", "aggregator median"),
        ("compression: {kind: topk}", "compression.kind topk"),
    ],
)
def test_what_cannot_read_ciphertexts_is_refused_with_ckks(tmp_path, extra, needle):
    path = write(tmp_path, f"name: x\nupdate_encryption: {{kind: ckks}}\n{extra}\n")
    message = str(pytest.raises(ScenarioError, load_scenario, path).value)
    assert needle in message and str(path) in message and "\n" not in message


def test_an_unknown_update_encryption_is_named(tmp_path):
    path = write(tmp_path, "name: x\nupdate_encryption: {kind: rot13}\n")
    assert "update_encryption.kind" in str(pytest.raises(ScenarioError, load_scenario, path).value)


def test_a_flood_names_an_hmu_of_the_scenario(tmp_path):
    path = write(tmp_path, "name: x\nfederation: {hmus: 3, clients_per_round: 3}\n"
                 "attacks: {flood: {hmu: hmu-07}}\n")  # fmt: skip
    assert "attacks.flood.hmu: no such HMU 'hmu-07'" in str(
        pytest.raises(ScenarioError, load_scenario, path).value
    )
    ok = write(tmp_path, "name: x\nattacks: {flood: {hmu: hmu-02, messages: 5}}\n")
    assert load_scenario(ok).attacks.flood.messages == 5


def test_a_keyed_neural_cipher_needs_qkd(tmp_path):
    text = "name: x\nupdate_encryption: {kind: neural, neural: {keyed: true}}\n"
    message = str(pytest.raises(ScenarioError, load_scenario, write(tmp_path, text)).value)
    assert "update_encryption.neural.keyed" in message and "qkd.enabled" in message
    assert load_scenario(write(tmp_path, text + "qkd: {enabled: true}\n")).qkd.enabled


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ("update_encryption: {kind: ckks}", "CKKS ciphertexts"),
        ("qkd: {enabled: true, rekey_rounds: 5}", "qkd.rekey_rounds: 0"),
        ("federation: {mode: async, clients_per_round: 4, buffer_size: 5}", "buffer could never"),
        ("federation: {mode: async, clients_per_round: 4, min_updates: 3}", "buffer (2)"),
    ],
)
def test_what_asynchronous_federation_cannot_run_with_is_refused(tmp_path, extra, needle):
    mode = "" if "federation" in extra else "federation: {mode: async}\n"
    path = write(tmp_path, f"name: x\n{mode}{extra}\n")
    with pytest.raises(ScenarioError, match=re.escape(needle)):
        load_scenario(path)
    fine = "name: x\nfederation: {mode: async, clients_per_round: 4, buffer_size: 2}\n"
    assert load_scenario(write(tmp_path, fine)).federation.buffer == 2


def test_churn_needs_hmus_that_reconnect_longer_than_they_stay_away(tmp_path):
    text = "name: x\nfederation: {churn: 0.2, churn_offline_s: [2, 40]}\n"
    with pytest.raises(ScenarioError, match="broker.reconnect_s above 40"):
        load_scenario(write(tmp_path, text))
    with pytest.raises(ScenarioError, match="churn_offline_s"):
        load_scenario(write(tmp_path, "name: x\nfederation: {churn_offline_s: [5, 1]}\n"))
    ok = load_scenario(write(tmp_path, text + "broker: {reconnect_s: 60}\n"))
    assert ok.federation.churn == 0.2


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ("qkd: {enabled: true}", "qkd.enabled"),
        ("update_encryption: {kind: ckks}", "update_encryption.kind"),
        ("mitm: {enabled: true, hmus: [hmu-01]}", "mitm.enabled"),
        ("broker: {kind: amqtt}", "broker.url"),
    ],
)
def test_what_a_fog_tier_cannot_run_with_is_named(tmp_path, extra, key):
    path = write(tmp_path, f"name: x\ntopology: {{fog_nodes: 2}}\n{extra}\n")
    with pytest.raises(ScenarioError, match=re.escape(f"cannot run with {key} as set")):
        load_scenario(path)
    with pytest.raises(ScenarioError, match="more fog nodes than HMUs"):
        load_scenario(
            write(
                tmp_path,
                "name: x\nfederation: {hmus: 3, clients_per_round: 3}\ntopology: {fog_nodes: 4}\n",
            )
        )
    assert (
        load_scenario(write(tmp_path, "name: x\ntopology: {fog_nodes: 2}\n")).topology.fog_nodes
        == 2
    )


def test_a_malicious_fog_names_a_fog_of_the_topology(tmp_path):
    attack = "attacks: {malicious_fog: {fog: fog-03}}\n"
    with pytest.raises(ScenarioError, match="fog-03: no such fog node"):
        load_scenario(write(tmp_path, "name: x\ntopology: {fog_nodes: 2}\n" + attack))
    with pytest.raises(ScenarioError, match="topology.fog_nodes is 0"):
        load_scenario(write(tmp_path, "name: x\n" + attack))
    ok = load_scenario(write(tmp_path, "name: x\ntopology: {fog_nodes: 3}\n" + attack))
    assert ok.attacks.malicious_fog is not None and ok.attacks.malicious_fog.action == "flip"


def test_live_detection_needs_an_interface_and_the_packet_features(tmp_path):
    detect = "traffic: {detect: {enabled: true}}\n"
    with pytest.raises(ScenarioError, match="set traffic.detect.iface"):
        load_scenario(write(tmp_path, "name: x\n" + detect))
    keep = "data: {keep_identifiers: true}\ntraffic: {detect: {enabled: true, iface: eth0}}\n"
    with pytest.raises(ScenarioError, match="drop data.keep_identifiers"):
        load_scenario(write(tmp_path, "name: x\n" + keep))
    on_iface = "traffic: {iface: eth1, detect: {enabled: true}}\n"
    assert load_scenario(write(tmp_path, "name: x\n" + on_iface)).traffic.detect.enabled
