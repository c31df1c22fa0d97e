"""Metrics of a run: measurements, the sink (metrics.lp, InfluxDB v2, MQTT), forwarder, report.

Modules: ``point`` (line protocol), ``measurements`` (registry and builders), ``config``
(the scenario's ``metrics`` section), ``sink`` with its backends ``line_file``,
``influx`` and ``publisher``, ``forwarder`` (HMU metrics arriving over MQTT),
``broker_stats`` ($SYS), ``resources`` (CPU/RSS), ``report`` (report.html and plots)
and ``dashboards`` (the Grafana dashboards in ``grafana/``).
"""
