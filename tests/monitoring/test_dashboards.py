"""Grafana provisioning and docker-compose: every query reads what the sink really writes."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from iomt.monitoring import measurements as m
from iomt.monitoring.config import InfluxTarget
from iomt.monitoring.dashboards import DATASOURCE_UID, build_dashboards, dashboard_text
from iomt.monitoring.point import TAG_KEYS
from iomt.monitoring.sink import MetricsSink
from tests.monitoring.victoria import VictoriaMetrics, by_name

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "monitoring" / "grafana"
COMPOSE = ROOT / "docker-compose.yml"

_MEASUREMENT = re.compile(r'r\._measurement == "([^"]+)"')
_FIELD = re.compile(r'r\._field == "([^"]+)"')
_COLUMN_REF = re.compile(r"\br\.([A-Za-z_]\w*)")
_GROUP = re.compile(r"group\(columns: (\[[^\]]*\])\)")


def committed() -> dict[str, dict[str, Any]]:
    files = sorted((GRAFANA / "dashboards").glob("*.json"))
    return {p.name: json.loads(p.read_text()) for p in files}


def queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["title"], t["query"]) for p in board["panels"] for t in p["targets"]]


def used_fields() -> set[tuple[str, str]]:
    out = set()
    for board in committed().values():
        for _, query in queries(board):
            (measurement,) = _MEASUREMENT.findall(query)
            out.update((measurement, f) for f in _FIELD.findall(query))
    return out


def test_committed_dashboards_are_the_generated_ones() -> None:
    built = build_dashboards()
    assert sorted(built) == sorted(committed())
    for name, board in built.items():
        assert (GRAFANA / "dashboards" / name).read_text() == dashboard_text(board), (
            f"{name} is stale: run python -m iomt.monitoring.dashboards"
        )


def test_every_query_names_a_measurement_and_fields_the_sink_writes() -> None:
    boards = committed()
    assert len({b["uid"] for b in boards.values()}) == len(boards) == 4
    for name, board in boards.items():
        assert board["panels"], name
        for title, query in queries(board):
            where = f"{name}: {title}"
            found = _MEASUREMENT.findall(query)
            assert len(found) == 1, f"{where}: names {found}"
            measurement = found[0]
            assert measurement in m.MEASUREMENTS, f"{where}: unknown measurement {measurement}"
            fields = _FIELD.findall(query)
            assert fields, f"{where}: names no field"
            unknown = set(fields).difference(m.MEASUREMENTS[measurement])
            assert not unknown, f"{where}: {measurement} has no fields {unknown}"
            columns = set(_COLUMN_REF.findall(query)).difference({"_measurement", "_field"})
            assert columns <= set(TAG_KEYS), f"{where}: filters on {columns}"
            if "hmu" in columns:
                assert measurement in m.HMU_TAGGED, f"{where}: {measurement} has no hmu tag"
            for group in _GROUP.findall(query):
                assert set(json.loads(group)) <= {*TAG_KEYS, "_field"}, where
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == DATASOURCE_UID
            assert all(t["datasource"]["uid"] == DATASOURCE_UID for t in panel["targets"])
        for variable in board["templating"]["list"]:
            tag = re.search(r'tag: "([^"]+)"', variable["query"])
            assert tag and tag.group(1) in TAG_KEYS, variable["query"]


def test_the_dashboards_show_what_the_issue_asks_for() -> None:
    boards = {b["uid"]: b for b in committed().values()}

    def shown(uid: str) -> set[tuple[str, str]]:
        out = set()
        for _, query in queries(boards[uid]):
            out.update((_MEASUREMENT.findall(query)[0], f) for f in _FIELD.findall(query))
        return out

    assert {("fl_round", f) for f in ("accuracy", "f1", "duration_s", "bytes_up", "bytes_down")} \
        <= shown("iomt-run-overview")  # fmt: skip
    assert {("qkd_link", f) for f in ("qber", "qber_threshold", "key_pool_bits", "status")} \
        <= shown("iomt-qkd")  # fmt: skip
    assert {("security", f) for f in m.SECURITY_EVENTS.values()} <= shown("iomt-security")
    assert {("hmu_training", f) for f in ("trust", "loss", "update_norm", "flagged")} \
        <= shown("iomt-hmu-training")  # fmt: skip


def test_every_field_a_dashboard_reads_arrives_in_the_database(victoria: VictoriaMetrics) -> None:
    """Write one full point of each measurement through the sink; every queried series exists."""
    run, t0 = "r-dashboards", time.time_ns() - 1_000_000_000
    full = {
        "fl_round": m.fl_round(1, accuracy=0.9, precision=0.8, recall=0.7, f1=0.75, loss=0.3,
                               duration_s=1.0, bytes_up=1, bytes_down=2, selected=5,
                               received=5, timed_out=False, time_ns=t0),
        "hmu_training": m.hmu_training("hmu-01", 1, loss=0.4, samples=10, train_s=0.1,
                                       update_norm=2.0, trust=0.9, flagged=True, time_ns=t0),
        "qkd_link": m.qkd_link("hmu-01", status="accepted", qber=0.02, qber_upper=0.03,
                               qber_threshold=0.11, conclusive_rate=0.25, key_bits=256,
                               key_pool_bits=2048, rekeys=2, round=1, time_ns=t0),
        "broker": m.broker({f: 1 for f in m.MEASUREMENTS["broker"]}, time_ns=t0),
        "resources": m.resources("server", cpu_percent=5.0, rss_bytes=10, threads=3, time_ns=t0),
        "detection": m.detection("hmu-01", flows=9, alerts=2, unscored=0, latency_ms_p50=0.3,
                                 latency_ms_max=1.2, model_version=4, time_ns=t0),
    }  # fmt: skip
    points = list(full.values()) + [
        m.security_event(kind, hmu="hmu-02", round=1, time_ns=t0 + i * 1_000_000)
        for i, kind in enumerate(m.SECURITY_EVENTS)
    ]
    with MetricsSink(tags={"run": run}, influx=InfluxTarget(victoria.url, "o", "b")) as sink:
        sink.emit_many(points)
    wanted = used_fields()
    names = set(by_name(victoria.wait_for(f'{{run="{run}"}}', len(wanted))))
    missing = {f"{meas}_{field}" for meas, field in wanted} - names
    assert not missing, f"queried but never written: {sorted(missing)}"


def test_grafana_provisioning_points_at_the_dashboards_and_influxdb() -> None:
    provisioning = GRAFANA / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "influxdb.yaml").read_text())
    (source,) = sources["datasources"]
    assert source["uid"] == DATASOURCE_UID and source["type"] == "influxdb"
    assert source["jsonData"]["version"] == "Flux"
    assert source["url"] == "${IOMT_INFLUX_URL}"
    assert source["secureJsonData"]["token"] == "${IOMT_INFLUX_TOKEN}"
    providers = yaml.safe_load((provisioning / "dashboards" / "iomt.yaml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    compose = yaml.safe_load(COMPOSE.read_text())
    mounts = dict(_mounts(compose["services"]["grafana"]))
    assert mounts["./monitoring/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./monitoring/grafana/provisioning"] == "/etc/grafana/provisioning"


def _mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        out.append((source, target))
    return out


def test_compose_brings_up_mosquitto_influxdb_and_grafana() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert set(services) == {"mosquitto", "influxdb", "grafana"}
    images = {name: s["image"] for name, s in services.items()}
    assert images["mosquitto"].startswith("eclipse-mosquitto:2")
    assert images["influxdb"].startswith("influxdb:2")
    assert images["grafana"].startswith("grafana/grafana:")
    assert all(":" in image and not image.endswith(":latest") for image in images.values())
    ports = {name: [p.split(":")[-1] for p in s["ports"]] for name, s in services.items()}
    assert ports == {"mosquitto": ["1883"], "influxdb": ["8086"], "grafana": ["3000"]}
    for name, service in services.items():
        for source, _ in _mounts(service):
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in compose["volumes"], f"{name}: undeclared volume {source}"
    influx = services["influxdb"]["environment"]
    assert influx["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    grafana = services["grafana"]["environment"]
    assert grafana["IOMT_INFLUX_URL"] == "http://influxdb:8086"
    # the token, org and bucket InfluxDB is set up with are the ones Grafana uses
    for init, ours in (("ADMIN_TOKEN", "IOMT_INFLUX_TOKEN"), ("ORG", "IOMT_INFLUX_ORG"),
                       ("BUCKET", "IOMT_INFLUX_BUCKET")):  # fmt: skip
        assert influx[f"DOCKER_INFLUXDB_INIT_{init}"] == grafana[ours]
        assert grafana[ours].startswith("${" + ours)
    assert services["grafana"]["depends_on"]["influxdb"]["condition"] == "service_healthy"
    conf = (ROOT / "monitoring" / "mosquitto" / "mosquitto.conf").read_text()
    assert "listener 1883" in conf


@pytest.mark.parametrize("name", sorted(build_dashboards()))
def test_dashboards_lay_out_panels_without_overlap(name: str) -> None:
    cells: set[tuple[int, int]] = set()
    for panel in build_dashboards()[name]["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24
        xs, ys = range(g["x"], g["x"] + g["w"]), range(g["y"], g["y"] + g["h"])
        area = {(x, y) for x in xs for y in ys}
        assert not cells & area, panel["title"]
        cells |= area
