"""Live detection on a field HMU: flows scored with the current global model as they end.

``FlowScorer`` is the pure part: the 34 features of finished flows
(``iomt.traffic.features``), scaled with the run's statistics, through the MLP in
numpy (``iomt.fedlearn.model.logits``, no torch), to an attack probability per flow.
``LiveDetector`` wires it to a ``FlowWatcher`` on the interface: each batch of flows
that ended is scored at once in the watcher's thread (no hand-over, so the latency is
reading, assembling and scoring only), alerts are appended to a JSON-lines file when
one is set, and every ``report_s`` a ``detection`` point goes to the metrics.  The
agent calls ``use`` with the weights of every invitation it receives, so the model is
the latest global this HMU was sent; flows that end before the first one are counted
as unscored.  Latency is measured from the kernel timestamp of a flow's last packet
to the moment its score exists, for flows closed by FIN/RST (an idle flow's latency
would be its idle timeout).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from iomt.errors import UsageError
from iomt.fedlearn.model import Weights, logits
from iomt.fedlearn.scaling import Standardiser
from iomt.monitoring import measurements
from iomt.monitoring.sink import MetricsSink
from iomt.traffic.config import DetectConfig
from iomt.traffic.features import feature_matrix
from iomt.traffic.flow import Flow
from iomt.traffic.live_flows import FlowWatcher, WatchStats, closed_by_peer
from iomt.traffic.source import flow_text

log = logging.getLogger(__name__)


class FlowScorer:
    """Attack probabilities of finished flows under the model last given to ``use``."""

    def __init__(self, scaler: Standardiser, threshold: float = 0.5) -> None:
        self.scaler = scaler
        self.threshold = threshold
        self.version: int | None = None
        self._weights: Weights | None = None

    def use(self, weights: Mapping[str, Any], version: int) -> None:
        """Score with ``weights`` (global model ``version``) from now on."""
        kept = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}
        self._weights, self.version = kept, version

    def score(self, flows: list[Flow]) -> np.ndarray | None:
        """Probability that each flow is an attack; ``None`` before any model."""
        weights = self._weights
        if weights is None or not flows:
            return None
        z = logits(weights, self.scaler.transform(feature_matrix(flows)))
        return np.exp(-np.logaddexp(0.0, -z.astype(np.float64)))  # sigmoid, no overflow


@dataclass
class DetectionReport:
    """A detector's totals: what ``iomt hmu`` prints and the HMU's outcome carries."""

    iface: str
    flows: int
    scored: int
    alerts: int
    unscored: int
    latency_ms_p50: float | None
    latency_ms_p95: float | None
    model_version: int | None
    watch: dict[str, int]


Scored = Callable[[list[Flow], np.ndarray | None], None]


class LiveDetector:
    """Watches ``iface`` and scores every flow that ends (module docstring)."""

    def __init__(
        self,
        hmu: str,
        scaler: Standardiser,
        config: DetectConfig,
        iface: str,
        *,
        metrics: MetricsSink | None = None,
        on_scored: Scored | None = None,
    ) -> None:
        self.hmu = hmu
        self.config = config
        self.iface = iface
        self.metrics = metrics
        self.on_scored = on_scored
        self.scorer = FlowScorer(scaler, config.threshold)
        self.watcher = FlowWatcher(
            iface, self._on_flows, bpf=config.filter, idle_timeout_s=config.idle_timeout_s
        )
        self._lock = threading.Lock()
        self._alerts_file: IO[str] | None = None
        self._totals = {"flows": 0, "scored": 0, "alerts": 0, "unscored": 0}
        self._latencies: list[float] = []  # ms, all of the run (for the report)
        self._window: dict[str, Any] = {"flows": 0, "alerts": 0, "unscored": 0, "ms": []}
        self._next_report = 0.0
        self._started = False
        self._final: DetectionReport | None = None

    def use(self, weights: Mapping[str, Any], version: int) -> None:
        """The agent's hook: the global model of the HMU's latest invitation."""
        self.scorer.use({k: v for k, v in weights.items() if isinstance(v, np.ndarray)}, version)

    def start(self) -> None:
        """Start watching (``RunError``/``UsageError`` if the interface cannot be read)."""
        if self.config.alerts_file:
            self._alerts()  # a file that cannot be written fails here, not in the thread
        self._next_report = time.monotonic() + self.config.report_s
        self.watcher.start()
        self._started = True

    def stop(self) -> DetectionReport:
        """Stop watching (if it started), emit the last window and return the totals;
        called again, the same totals."""
        if self._final is not None:
            return self._final
        try:
            stats = self.watcher.stop() if self._started else self.watcher.stats
        finally:
            self._started = False
            self._report(force=True)
            if self._alerts_file is not None:
                self._alerts_file.close()
                self._alerts_file = None
        report = self._final = self.report(stats)
        log.info("%s: detection on %s: %d flows scored, %d alerts", self.hmu, self.iface,
                 report.scored, report.alerts)  # fmt: skip
        return report

    def _alerts(self) -> IO[str]:
        if self._alerts_file is None:
            path = Path(str(self.config.alerts_file)).expanduser()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._alerts_file = path.open("a", encoding="utf-8")
            except OSError as exc:
                raise UsageError(
                    f"traffic.detect.alerts_file: cannot write {path}: {exc}"
                ) from None
        return self._alerts_file

    def report(self, stats: WatchStats | None = None) -> DetectionReport:
        with self._lock:
            ms = np.asarray(self._latencies)
            totals = dict(self._totals)
        p50, p95 = (None, None) if ms.size == 0 else np.percentile(ms, [50, 95]).tolist()
        return DetectionReport(
            self.iface, totals["flows"], totals["scored"], totals["alerts"], totals["unscored"],
            p50, p95, self.scorer.version, asdict(stats or self.watcher.stats),
        )  # fmt: skip

    def _on_flows(self, flows: list[Flow]) -> None:
        """Score what ended (the watcher's thread): the latency-critical path."""
        probability = self.scorer.score(flows)
        now = time.time_ns()
        if self.on_scored is not None:
            self.on_scored(flows, probability)
        with self._lock:
            self._count(flows, probability, now)
        self._report()

    def _count(self, flows: list[Flow], probability: np.ndarray | None, now: int) -> None:
        totals, window = self._totals, self._window
        totals["flows"] += len(flows)
        window["flows"] += len(flows)
        if probability is None:
            totals["unscored"] += len(flows)
            window["unscored"] += len(flows)
            return
        totals["scored"] += len(flows)
        ms = [(now - f.last_ns) / 1e6 for f in flows if closed_by_peer(f)]
        self._latencies.extend(ms)
        window["ms"].extend(ms)
        alerts = np.flatnonzero(probability >= self.scorer.threshold)
        totals["alerts"] += len(alerts)
        window["alerts"] += len(alerts)
        if self.config.alerts_file and len(alerts):
            out = self._alerts()
            for i in alerts.tolist():
                record = flow_text(flows[i]) | {
                    "end_ns": flows[i].last_ns,
                    "probability": round(float(probability[i]), 6),
                    "model_version": self.scorer.version,
                }
                out.write(json.dumps(record) + "\n")
            out.flush()

    def _report(self, force: bool = False) -> None:
        """Emit the window's ``detection`` point when ``report_s`` has passed."""
        if not force and time.monotonic() < self._next_report:
            return
        with self._lock:
            window = self._window
            self._window = {"flows": 0, "alerts": 0, "unscored": 0, "ms": []}
            self._next_report = time.monotonic() + self.config.report_s
        if window["alerts"]:
            log.warning("%s: %d alerts on %s", self.hmu, window["alerts"], self.iface)
        if self.metrics is None or not (window["flows"] or force):
            return
        ms = np.asarray(window["ms"])
        self.metrics.emit(
            measurements.detection(
                self.hmu,
                flows=window["flows"],
                alerts=window["alerts"],
                unscored=window["unscored"],
                latency_ms_p50=float(np.median(ms)) if ms.size else None,
                latency_ms_max=float(ms.max()) if ms.size else None,
                model_version=self.scorer.version,
            )
        )
