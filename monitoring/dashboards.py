"""The Grafana dashboards of the testbed, built from the measurement registry.

``python -m iomt.monitoring.dashboards`` rewrites ``monitoring/grafana/dashboards/*.json``;
a test checks the committed files equal what this module builds and that every Flux
query names a measurement and fields the sink writes.  Every panel reads the
provisioned InfluxDB v2 datasource (uid ``iomt-influxdb``, Flux) and filters by the
``run`` variable (several runs can be compared); per-HMU panels also by ``hmu``.

Dashboards: run overview (scores, round time, bytes, broker, CPU/RSS), QKD (QBER per
link against the threshold, key pool, conclusive rate, link status), security events,
and per-HMU training and trust.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from iomt.monitoring.measurements import MEASUREMENTS, QKD_STATUS, SECURITY_EVENTS

DATASOURCE_UID = "iomt-influxdb"
DATASOURCE: dict[str, str] = {"type": "influxdb", "uid": DATASOURCE_UID}
DASHBOARD_DIR = Path(__file__).resolve().parent / "grafana" / "dashboards"


def flux(
    measurement: str,
    fields: list[str],
    *,
    by_hmu: bool = False,
    window: str | None = None,
    to_int: bool = False,
    tail: list[str] | None = None,
) -> str:
    """A Flux query for ``fields`` of ``measurement`` in the selected runs (and HMUs)."""
    unknown = [f for f in fields if f not in MEASUREMENTS[measurement]]
    if unknown:
        raise ValueError(f"{measurement} has no fields {unknown}")
    wanted = " or ".join(f'r._field == "{f}"' for f in fields)
    lines = [
        "from(bucket: v.defaultBucket)",
        "  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)",
        f'  |> filter(fn: (r) => r._measurement == "{measurement}")',
        "  |> filter(fn: (r) => r.run =~ /^${run:regex}$/)",
        f"  |> filter(fn: (r) => {wanted})",
    ]
    if by_hmu:
        lines.append("  |> filter(fn: (r) => r.hmu =~ /^${hmu:regex}$/)")
    keep = ["_time", "_value", "_field", "run"] + (["hmu"] if by_hmu else [])
    lines.append(f"  |> keep(columns: {json.dumps(keep)})")
    if to_int:
        lines.append("  |> toInt()")  # booleans cannot be summed or averaged in Flux
    if window is not None:
        lines.append(
            f"  |> aggregateWindow(every: v.windowPeriod, fn: {window}, createEmpty: false)"
        )
    lines += tail or []
    return "\n".join(lines)


def _target(query: str, ref: str = "A") -> dict[str, Any]:
    return {"refId": ref, "datasource": DATASOURCE, "query": query}


def panel(
    title: str,
    queries: list[str],
    *,
    kind: str = "timeseries",
    unit: str | None = None,
    overrides: list[dict[str, Any]] | None = None,
    options: dict[str, Any] | None = None,
    custom: dict[str, Any] | None = None,
    mappings: list[dict[str, Any]] | None = None,
    width: int = 12,
    height: int = 8,
    description: str = "",
) -> dict[str, Any]:
    defaults: dict[str, Any] = {"custom": custom or {}}
    if unit is not None:
        defaults["unit"] = unit
    if mappings is not None:
        defaults["mappings"] = mappings
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"h": height, "w": width, "x": 0, "y": 0},
        "targets": [_target(q, chr(ord("A") + i)) for i, q in enumerate(queries)],
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": options or {},
    }


_HMU_NAME = {"displayName": "${__field.labels.hmu}"}
"""Name each series of a per-HMU panel by its HMU (and field, where a panel shows several)."""
_HMU_FIELD_NAME = {"displayName": "${__field.labels.hmu} ${__field.name}"}


def _variable(name: str, tag: str) -> dict[str, Any]:
    query = (
        'import "influxdata/influxdb/schema"\n'
        f'schema.tagValues(bucket: v.defaultBucket, tag: "{tag}")'
    )
    return {
        "name": name,
        "label": name,
        "type": "query",
        "datasource": DATASOURCE,
        "query": query,
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "sort": 1,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
    }


def dashboard(uid: str, title: str, panels: list[dict[str, Any]], *, hmu: bool) -> dict[str, Any]:
    """A dashboard with ``panels`` laid out two per row."""
    x = y = 0
    row_height = 0
    for number, item in enumerate(panels, start=1):
        item["id"] = number
        w, h = item["gridPos"]["w"], item["gridPos"]["h"]
        if x + w > 24:
            x, y = 0, y + row_height
            row_height = 0
        item["gridPos"].update(x=x, y=y)
        x += w
        row_height = max(row_height, h)
    variables = [_variable("run", "run")] + ([_variable("hmu", "hmu")] if hmu else [])
    return {
        "uid": uid,
        "title": title,
        "tags": ["iomt-testbed"],
        "timezone": "browser",
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "annotations": {"list": []},
        "templating": {"list": variables},
        "links": [
            {
                "type": "dashboards",
                "tags": ["iomt-testbed"],
                "asDropdown": True,
                "title": "iomt-testbed",
            }
        ],  # fmt: skip
        "panels": panels,
    }


def run_overview() -> dict[str, Any]:
    scores = ["accuracy", "f1", "precision", "recall"]
    panels = [
        panel("Accuracy and F1 per round", [flux("fl_round", scores)], unit="percentunit",
              custom={"drawStyle": "line", "showPoints": "always"},
              description="Global model on the server's held-out split, after each round."),
        panel("Round time", [flux("fl_round", ["duration_s"])], unit="s",
              custom={"drawStyle": "bars", "fillOpacity": 60}),
        panel("Bytes per round", [flux("fl_round", ["bytes_up", "bytes_down"])], unit="bytes",
              custom={"drawStyle": "bars", "fillOpacity": 60, "stacking": {"mode": "normal"}},
              description="MQTT payload bytes: updates up; invitations and global model down."),
        panel("Updates received per round", [flux("fl_round", ["selected", "received"])],
              custom={"drawStyle": "line", "showPoints": "always"}),
        panel("Broker clients and traffic",
              [flux("broker", ["clients_connected", "subscriptions"]),
               flux("broker", ["messages_received", "messages_sent", "messages_dropped"],
                    tail=["  |> derivative(unit: 1s, nonNegative: true)"])],
              description="From the broker's $SYS topics; message counters as rates per s."),
        panel("Broker bytes per second",
              [flux("broker", ["bytes_received", "bytes_sent"],
                    tail=["  |> derivative(unit: 1s, nonNegative: true)"])], unit="Bps"),
        panel("CPU per agent process", [flux("resources", ["cpu_percent"], by_hmu=True)],
              unit="percent", overrides=[], custom={"drawStyle": "line"}),
        panel("Memory (RSS) per agent process", [flux("resources", ["rss_bytes"], by_hmu=True)],
              unit="bytes"),
    ]  # fmt: skip
    for item in panels[-2:]:
        item["fieldConfig"]["defaults"].update(_HMU_NAME)
    return dashboard("iomt-run-overview", "iomt-testbed: run overview", panels, hmu=True)


def qkd() -> dict[str, Any]:
    threshold_query = flux(
        "qkd_link", ["qber_threshold"],
        tail=['  |> group(columns: ["_field"])',
              "  |> aggregateWindow(every: v.windowPeriod, fn: max, createEmpty: false)"],
    )  # fmt: skip
    threshold_style = {
        "matcher": {"id": "byFrameRefID", "options": "B"},
        "properties": [
            {"id": "displayName", "value": "threshold"},
            {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}},
            {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
            {"id": "custom.showPoints", "value": "never"},
        ],
    }
    status_mappings = [{
        "type": "value",
        "options": {str(code): {"text": name, "index": code,
                                "color": {"accepted": "green", "isolated": "red",
                                          "no-session": "orange"}.get(name, "blue")}
                    for name, code in QKD_STATUS.items()},
    }]  # fmt: skip
    panels = [
        panel("QBER per link", [flux("qkd_link", ["qber"], by_hmu=True), threshold_query],
              unit="percentunit", overrides=[threshold_style], width=24, height=9,
              custom={"drawStyle": "line", "showPoints": "always"},
              description="Estimated QBER of each HMU's B92 link; above the threshold the link "
                          "is refused and the HMU isolated."),
        panel("QBER upper bound per link", [flux("qkd_link", ["qber_upper"], by_hmu=True),
                                            threshold_query],
              unit="percentunit", overrides=[threshold_style]),
        panel("Conclusive rate per link", [flux("qkd_link", ["conclusive_rate"], by_hmu=True)],
              unit="percentunit"),
        panel("Key pool per link", [flux("qkd_link", ["key_pool_bits"], by_hmu=True)],
              unit="bits", description="Unused key bits available to each HMU."),
        panel("Key bits per session", [flux("qkd_link", ["key_bits"], by_hmu=True)], unit="bits",
              custom={"drawStyle": "bars", "fillOpacity": 60}),
        panel("Link status", [flux("qkd_link", ["status"], by_hmu=True)], kind="state-timeline",
              mappings=status_mappings, options={"showValue": "auto", "mergeValues": True}),
        panel("Rekeys per link", [flux("qkd_link", ["rekeys"], by_hmu=True,
                                       tail=['  |> last()'])],
              kind="bargauge", options={"orientation": "horizontal", "displayMode": "basic"}),
    ]  # fmt: skip
    for item in panels:
        item["fieldConfig"]["defaults"].update(_HMU_NAME)
    return dashboard("iomt-qkd", "iomt-testbed: QKD links", panels, hmu=True)


def security() -> dict[str, Any]:
    events = list(SECURITY_EVENTS.values())
    panels = [
        panel("Security events over time", [flux("security", events, window="sum")],
              custom={"drawStyle": "bars", "fillOpacity": 70, "stacking": {"mode": "normal"}},
              width=24, description="Isolations, refused messages (tampered, replayed, "
                                    "unauthorised, malformed) and anomaly flags."),
        panel("Totals in the time range", [flux("security", events,
                                                tail=['  |> group(columns: ["_field"])',
                                                      "  |> sum()"])],
              kind="stat", options={"colorMode": "background", "graphMode": "none",
                                    "reduceOptions": {"calcs": ["sum"]}}),
        panel("Events per HMU", [flux("security", events, by_hmu=True,
                                      tail=['  |> group(columns: ["hmu", "_field"])',
                                            "  |> sum()"])],
              kind="bargauge", options={"orientation": "horizontal", "displayMode": "basic"}),
        panel("Isolated HMUs", [flux("security", ["isolated"], by_hmu=True,
                                     tail=['  |> group(columns: ["hmu"])', "  |> sum()"])],
              kind="table"),
        panel("Updates flagged as anomalous", [flux("hmu_training", ["flagged"], by_hmu=True,
                                                    to_int=True, window="sum")],
              custom={"drawStyle": "bars", "fillOpacity": 70}),
    ]  # fmt: skip
    panels[4]["fieldConfig"]["defaults"].update(_HMU_NAME)
    panels[2]["fieldConfig"]["defaults"].update(_HMU_FIELD_NAME)
    return dashboard("iomt-security", "iomt-testbed: security events", panels, hmu=True)


def hmu_training() -> dict[str, Any]:
    def per_hmu(
        title: str, field: str, unit: str | None = None, measurement: str = "hmu_training",
        **kw: Any,
    ) -> dict[str, Any]:  # fmt: skip
        item = panel(title, [flux(measurement, [field], by_hmu=True)], unit=unit,
                     custom={"drawStyle": "line", "showPoints": "always"}, **kw)  # fmt: skip
        item["fieldConfig"]["defaults"].update(_HMU_NAME)
        return item

    panels = [
        per_hmu("Trust per HMU", "trust", description="Trust the server gives each HMU's "
                "updates (trust-weighted aggregation with decay)."),
        per_hmu("Local training loss", "loss"),
        per_hmu("Update norm", "update_norm", description="L2 norm of each HMU's update."),
        per_hmu("Local training time", "train_s", unit="s"),
        per_hmu("Training samples", "samples"),
        per_hmu("Flagged updates", "flagged"),
        per_hmu("Live detection: flows scored", "flows", measurement="detection",
                description="Flows a field HMU scored per window (traffic.detect)."),
        per_hmu("Live detection: alerts", "alerts", measurement="detection",
                description="Flows scored as attacks per window."),
        per_hmu("Detection latency (median)", "latency_ms_p50", unit="ms",
                measurement="detection", description="Last packet of a flow to its score."),
    ]  # fmt: skip
    panels[5]["type"] = "state-timeline"
    panels[5]["fieldConfig"]["defaults"]["mappings"] = [{
        "type": "value",
        "options": {"0": {"text": "accepted", "color": "green", "index": 0},
                    "1": {"text": "flagged", "color": "red", "index": 1},
                    "false": {"text": "accepted", "color": "green", "index": 2},
                    "true": {"text": "flagged", "color": "red", "index": 3}},
    }]  # fmt: skip
    return dashboard("iomt-hmu-training", "iomt-testbed: HMU training and trust", panels, hmu=True)


BUILDERS = {
    "run-overview.json": run_overview,
    "qkd.json": qkd,
    "security.json": security,
    "hmu-training.json": hmu_training,
}


def build_dashboards() -> dict[str, dict[str, Any]]:
    """``{file name: dashboard}`` for every dashboard."""
    return {name: build() for name, build in BUILDERS.items()}


def dashboard_text(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2) + "\n"


def write_dashboards(directory: Path = DASHBOARD_DIR) -> list[Path]:
    """Write every dashboard as JSON into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, board in build_dashboards().items():
        path = directory / name
        path.write_text(dashboard_text(board), encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_dashboards(Path(sys.argv[1]) if len(sys.argv) > 1 else DASHBOARD_DIR):
        print(written)
