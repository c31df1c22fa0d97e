"""The scenario file: its typed schema and a loader that names the YAML path of every error."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from iomt.adversary.config import MitmConfig
from iomt.broker.config import BrokerConfig
from iomt.broker.topology import TopologyConfig
from iomt.errors import ScenarioError, UsageError
from iomt.fedlearn.config import FederationConfig, LinksConfig, TrainingConfig
from iomt.fedlearn.defence_config import (
    AttackConfig,
    CompressionConfig,
    DefenceConfig,
    PrivacyConfig,
    UpdateEncryptionConfig,
)
from iomt.monitoring.config import MetricsConfig
from iomt.qkd_channel.config import QkdConfig
from iomt.scenarios import sweep
from iomt.scenarios.yaml_guard import check_finite, load_guarded
from iomt.strict import Strict
from iomt.traffic.config import DataConfig, TrafficConfig
from iomt.wire import topics

_NAME = r"^[a-z0-9][a-z0-9_-]{0,47}$"


class Scenario(Strict):
    """A whole experiment: who federates, how they train, on what data, over which broker."""

    name: str = Field(pattern=_NAME, description="lower-case letters, digits, '-' and '_'")
    description: str = ""
    seed: int = Field(0, ge=0, le=2**32 - 1)
    federation: FederationConfig = FederationConfig()
    training: TrainingConfig = TrainingConfig()
    data: DataConfig = DataConfig()
    traffic: TrafficConfig = TrafficConfig()
    broker: BrokerConfig = BrokerConfig()
    qkd: QkdConfig = QkdConfig()
    metrics: MetricsConfig = MetricsConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    attacks: AttackConfig = AttackConfig()
    defence: DefenceConfig = DefenceConfig()
    compression: CompressionConfig = CompressionConfig()
    update_encryption: UpdateEncryptionConfig = UpdateEncryptionConfig()
    mitm: MitmConfig = MitmConfig()
    links: LinksConfig = LinksConfig()
    topology: TopologyConfig = TopologyConfig()
    measure_leakage: bool = Field(
        True,
        description="after the run, measure its updates' gradient leakage (results.json"
        " leakage; for the neural cipher a fresh attacker is trained, about 25 s); false"
        " where nothing reads it (the attacked points of a sweep)",
    )
    privacy_audit: bool = Field(
        False,
        description="keep each round's global model and every update as the server reads it"
        " (run_dir/audit), for iomt attack",
    )

    @property
    def hmu_ids(self) -> list[str]:
        """``hmu-01`` .. one per HMU of the federation."""
        return topics.hmu_ids(self.federation.hmus)


def load_scenario(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Scenario:
    """Read, override (``key.path=value``) and validate a scenario file.

    Raises ``ScenarioError`` naming the file, and the YAML path and line of every error.
    """
    raw, lines = _read(Path(path), overrides)
    if "sweep" in raw:
        count = len(sweep.grid(raw, str(path)))
        raise ScenarioError(
            f"{path}: declares a sweep of {count} points; run it with `iomt compare`, or"
            " remove the sweep key to run one scenario"
        )
    return validate_scenario(raw, source=str(path), lines=lines)


def load_points(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> list[Scenario]:
    """The scenarios of a file: one, or every point of its ``sweep`` grid, each validated
    (``iomt.scenarios.sweep``); ``overrides`` apply to every point."""
    raw, lines = _read(Path(path), overrides)
    if "sweep" not in raw:
        return [validate_scenario(raw, source=str(path), lines=lines)]
    return [
        validate_scenario(
            sweep.point_raw(raw, point, str(path)), source=f"{path} (sweep point {point.name})"
        )
        for point in sweep.grid(raw, str(path))
    ]


def _read(path: Path, overrides: list[str] | tuple[str, ...]) -> tuple[dict[str, Any], dict]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}") from None
    raw, root = load_guarded(text, str(path))
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: a scenario is a YAML mapping with at least 'name'")
    for item in overrides:
        apply_override(raw, item)
    check_finite(raw, str(path))  # an override may bring .inf too
    return raw, _line_index(root)


def validate_scenario(
    raw: dict[str, Any],
    *,
    source: str = "scenario",
    lines: dict[tuple[str, ...], int] | None = None,
) -> Scenario:
    """Validate a parsed scenario mapping; every error is reported with its path."""
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(str(p) for p in err["loc"])
            line = (lines or {}).get(loc)
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            if msg == "unknown key" and loc and not re.fullmatch(r"[\w-]+", loc[-1]):
                # a key no path could spell ('', 'a b'): name its section, quote the key
                loc, msg = loc[:-1], f"unknown key {loc[-1]!r}"
                line = line or (lines or {}).get(loc)
            where = ".".join(loc) or "(top level)"
            at = f" (line {line})" if line else ""
            problems.append(f"{where}{at}: {msg}")
        count = f"{len(problems)} errors: " if len(problems) > 1 else ""
        raise ScenarioError(f"{source}: {count}{'; '.join(problems)}") from None
    _check_cross_references(scenario, source)
    _check_named_files(scenario, source)
    return scenario


def _check_named_files(scenario: Scenario, source: str) -> None:
    """Files and folders the scenario names must be there: a run must not find out late."""
    named = [
        ("data.dataset", scenario.data.dataset, "file", "the WUSTL-EHMS-2020 CSV"),
        ("broker.credentials_file", scenario.broker.credentials_file, "file", "{agent: password}"),
        ("broker.ca_file", scenario.broker.ca_file, "file", "the CA certificate"),
        ("traffic.truth", scenario.traffic.truth, "file", "the replay's .flows.jsonl"),
        ("metrics.influx.token_file", scenario.metrics.influx.token_file, "file", "the token"),
    ]
    if scenario.traffic.source == "pcap":
        named.append(("traffic.pcap_dir", scenario.traffic.pcap_dir, "dir", "the captures"))
    for key, value, kind, what in named:
        if value is None:
            continue
        path = Path(value).expanduser()
        ok = path.is_file() if kind == "file" else path.is_dir()
        if not ok:
            raise ScenarioError(
                f"{source}: {key}: no {'file' if kind == 'file' else 'folder'} at {path}; "
                f"point it at {what} or remove the key"
            )


def _check_cross_references(scenario: Scenario, source: str) -> None:
    """Keys that name things defined elsewhere in the scenario."""
    if scenario.data.keep_identifiers and scenario.traffic.source != "csv":
        raise ScenarioError(
            f"{source}: data.keep_identifiers needs traffic.source csv: replayed traffic "
            "makes identifiers uniform"
        )
    detect = scenario.traffic.detect
    if detect.enabled and scenario.data.keep_identifiers:
        raise ScenarioError(
            f"{source}: traffic.detect measures the 34 flow features from packets;"
            " drop data.keep_identifiers"
        )
    if detect.enabled and not (detect.iface or scenario.traffic.iface):
        raise ScenarioError(
            f"{source}: traffic.detect.enabled needs an interface: set traffic.detect.iface"
        )
    hmus = set(scenario.hmu_ids)
    unknown = sorted(set(scenario.mitm.hmus) - hmus)
    if unknown:
        raise ScenarioError(f"{source}: mitm.hmus: no such HMU {', '.join(unknown)}")
    _check_encryption(scenario, source)
    _check_async(scenario, source)
    _check_churn(scenario, source)
    _check_topology(scenario, source)
    flood = scenario.attacks.flood
    if flood is not None and flood.hmu not in hmus:
        raise ScenarioError(
            f"{source}: attacks.flood.hmu: no such HMU {flood.hmu!r}"
            f" (the scenario has hmu-01..hmu-{scenario.federation.hmus:02d})"
        )
    try:
        from iomt.fedlearn.attacks import assign_attacks

        assign_attacks(scenario.attacks, sorted(hmus), 10**6, scenario.seed)
    except ValueError as exc:
        raise ScenarioError(f"{source}: attacks: {exc}") from None
    for i, eve in enumerate(scenario.qkd.eavesdroppers):
        if isinstance(eve.hmus, list):
            unknown = sorted(set(eve.hmus) - hmus)
            if unknown:
                raise ScenarioError(
                    f"{source}: qkd.eavesdroppers.{i}.hmus: no such HMU {', '.join(unknown)}"
                    f" (the scenario has hmu-01..hmu-{scenario.federation.hmus:02d})"
                )


def _check_churn(scenario: Scenario, source: str) -> None:
    fed = scenario.federation
    if fed.churn and scenario.broker.reconnect_s <= fed.churn_offline_s[1]:
        raise ScenarioError(
            f"{source}: federation.churn: a dropped HMU comes back only while it still"
            f" reconnects; set broker.reconnect_s above {fed.churn_offline_s[1]:g}"
            " (federation.churn_offline_s's max)"
        )


def _check_topology(scenario: Scenario, source: str) -> None:
    """What a fog tier cannot run with (yet): each names the key to change."""
    fogs = scenario.topology.fog_nodes
    bad = scenario.attacks.malicious_fog
    if bad is not None and not 1 <= int(bad.fog.split("-")[1]) <= fogs:
        raise ScenarioError(
            f"{source}: attacks.malicious_fog.fog {bad.fog}: no such fog node"
            f" (topology.fog_nodes is {fogs}); name one of fog-01..fog-{max(fogs, 1):02d}"
        )
    if not fogs:
        return
    if fogs > scenario.federation.hmus:
        raise ScenarioError(f"{source}: topology.fog_nodes {fogs}: more fog nodes than HMUs"
                            f" ({scenario.federation.hmus}); at most one fog per HMU")  # fmt: skip
    clashes = [
        ("qkd.enabled", scenario.qkd.enabled, "keys are made with the cloud server only"),
        ("update_encryption.kind", scenario.update_encryption.kind != "none",
         "a fog aggregator reads its HMUs' updates"),
        ("mitm.enabled", scenario.mitm.enabled, "Eve sits on the cloud broker's path"),
        ("attacks.flood", scenario.attacks.flood is not None,
         "the flood books read the cloud broker's log"),
        ("broker.url", scenario.broker.url is not None or scenario.broker.kind == "amqtt",
         "fog brokers are Mosquitto processes the launcher starts and bridges"),
    ]  # fmt: skip
    for key, clash, why in clashes:
        if clash:
            raise ScenarioError(
                f"{source}: topology.fog_nodes {fogs} cannot run with {key} as set ({why});"
                f" change {key} or set topology.fog_nodes: 0"
            )


def _check_async(scenario: Scenario, source: str) -> None:
    """What asynchronous federation cannot run with (yet)."""
    if scenario.federation.mode != "async":
        return
    if scenario.update_encryption.kind == "ckks":
        raise ScenarioError(
            f"{source}: federation.mode async: CKKS ciphertexts trained from different"
            " versions cannot be summed; use update_encryption.kind none or neural"
        )
    if scenario.qkd.enabled and scenario.qkd.rekey_rounds:
        raise ScenarioError(
            f"{source}: federation.mode async: keys are made before the first aggregation"
            " only; set qkd.rekey_rounds: 0"
        )


def _check_encryption(scenario: Scenario, source: str) -> None:
    """What cannot be combined with updates the server cannot read."""
    kind = scenario.update_encryption.kind
    if kind == "neural" and scenario.compression.kind != "none":
        raise ScenarioError(
            f"{source}: update_encryption.kind neural: the cipher compresses by its width"
            f" (update_encryption.neural.compression_ratio); set compression.kind none"
        )
    if kind == "neural" and scenario.update_encryption.neural.keyed and not scenario.qkd.enabled:
        raise ScenarioError(
            f"{source}: update_encryption.neural.keyed: the cipher's key comes from each"
            " HMU's QKD key; set qkd.enabled: true or keyed: false"
        )
    if kind != "ckks":
        return
    defence = scenario.defence
    if defence.aggregator != "fedavg" or defence.screening.enabled:
        raise ScenarioError(
            f"{source}: update_encryption.kind ckks: the server cannot read encrypted updates,"
            f" so defence.aggregator {defence.aggregator}"
            f"{' and screening' if defence.screening.enabled else ''} cannot run; use"
            " aggregator fedavg without screening (DP and attacks still apply)"
        )
    if scenario.compression.kind != "none":
        raise ScenarioError(
            f"{source}: update_encryption.kind ckks: compression.kind"
            f" {scenario.compression.kind} cannot apply to ciphertexts; use kind none"
        )


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one ``--set key.path=value`` to a parsed scenario; the value is YAML."""
    key, sep, value = item.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*", key):
        raise UsageError(f"--set {item!r}: expected key.path=value, e.g. federation.rounds=5")
    try:
        parsed = yaml.safe_load(value) if value != "" else ""
    except yaml.YAMLError:
        parsed = value
    node = raw
    *parents, leaf = key.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UsageError(f"--set {key}: {part!r} is not a section")
        node = child
    node[leaf] = parsed


def scenario_yaml(scenario: Scenario) -> str:
    """The fully resolved scenario, every default spelt out, as YAML."""
    return yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False)


def _line_index(node: yaml.Node | None, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], int]:
    """Map each key path of a composed YAML document to its 1-based line."""
    index: dict[tuple[str, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = (*prefix, str(key_node.value))
            index[path] = key_node.start_mark.line + 1
            index.update(_line_index(value_node, path))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            path = (*prefix, str(i))
            index[path] = item.start_mark.line + 1
            index.update(_line_index(item, path))
    return index
