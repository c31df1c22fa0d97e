"""HMUs with their own metrics: one with its training thread (``iomt hmu --id``, and each
HMU process of ``iomt run --processes``), or many in one process sharing a pool of
training workers (``iomt hmu --ids``)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import TYPE_CHECKING

from iomt.blas import single_threaded_blas
from iomt.errors import UsageError
from iomt.fedlearn.scaling import Standardiser
from iomt.fedlearn.train import warm_up
from iomt.hmu_agent.runner import HmuAgent
from iomt.hmu_agent.setup import HmuOutcome, HmuSetup
from iomt.monitoring.publisher import MqttMetricsPublisher
from iomt.monitoring.resources import ResourceSampler
from iomt.monitoring.sink import MetricsSink
from iomt.scenarios.schema import Scenario
from iomt.wire import topics

if TYPE_CHECKING:
    from iomt.hmu_agent.detection import LiveDetector


def _sink(scenario: Scenario, setup: HmuSetup) -> tuple[MetricsSink, MqttMetricsPublisher | None]:
    """An HMU's metrics: to InfluxDB, or over MQTT to the server's forwarder."""
    rid, hmu = setup.run_id, setup.hmu_id
    publisher = None
    if scenario.metrics.hmu_transport == "mqtt":
        publisher = MqttMetricsPublisher(
            topics.metrics(rid, hmu),
            max_payload_bytes=scenario.metrics.forward_max_bytes,
            max_lines=scenario.metrics.forward_max_lines,
        )
    tags = {"run": rid, "scenario": scenario.name, "hmu": hmu}
    sink = MetricsSink.from_config(scenario.metrics, run_dir=None, tags=tags, publisher=publisher)
    return sink, publisher


async def serve_hmu(scenario: Scenario, setup: HmuSetup) -> HmuOutcome:
    """Run one HMU with its own metrics and one training thread: what ``iomt hmu --id``
    and each HMU process of ``iomt run --processes`` do."""
    (outcome,) = await serve_hmus(scenario, [setup])
    return outcome


async def serve_hmus(
    scenario: Scenario, setups: list[HmuSetup], scaler: Standardiser | None = None
) -> list[HmuOutcome]:
    """Run HMUs in this process, each with its own MQTT session and metrics. One HMU
    trains in a thread; several share a pool of worker processes, one per core
    (``iomt.scenarios.in_process.TrainingPool``), so torch is imported once per core
    and an HMU that is not selected costs a connection and its data share only. The
    process's resources are sampled under the first HMU's id.  With
    ``traffic.detect.enabled`` the (one) HMU also scores live flows on its interface,
    scaled with ``scaler`` (``iomt.hmu_agent.detection``)."""
    interval = scenario.metrics.resources_interval_s
    sinks = [_sink(scenario, setup) for setup in setups]
    first = sinks[0][0]
    sampler = (
        asyncio.create_task(ResourceSampler(setups[0].hmu_id, interval).run(first.emit))
        if scenario.metrics.enabled and interval > 0
        else None
    )
    detector = _detector(scenario, setups, scaler, first)
    if detector is not None:
        setups = [dataclasses.replace(setups[0], on_global=detector.use, on_finish=detector.stop)]
    try:
        with single_threaded_blas(), _training(len(setups)) as pool:
            agents = [
                HmuAgent(dataclasses.replace(s, metrics=sink, publisher=publisher), pool)
                for s, (sink, publisher) in zip(setups, sinks, strict=True)
            ]
            if detector is not None:
                detector.start()
            outcomes = list(await asyncio.gather(*(agent.run() for agent in agents)))
    finally:
        report = detector.stop() if detector is not None else None  # also if it failed
        if sampler is not None:
            sampler.cancel()
        for sink, _ in sinks:
            await sink.aclose()
    if report is not None:
        outcomes[0].detection = dataclasses.asdict(report)
    return outcomes


def _detector(
    scenario: Scenario, setups: list[HmuSetup], scaler: Standardiser | None, sink: MetricsSink
) -> LiveDetector | None:
    detect = scenario.traffic.detect
    if not detect.enabled:
        return None
    if len(setups) != 1 or scaler is None:
        raise UsageError("traffic.detect watches one interface: give one HMU (--id)")
    from iomt.hmu_agent.detection import LiveDetector  # scapy, only when detecting

    iface = detect.iface or scenario.traffic.iface
    assert iface is not None  # the scenario's validation asks for one
    return LiveDetector(setups[0].hmu_id, scaler, detect, iface, metrics=sink)


@contextlib.contextmanager
def _training(hmus: int) -> Iterator[Executor]:
    """One thread, warmed up, for one HMU; worker processes for several."""
    if hmus == 1:
        with ThreadPoolExecutor(1, thread_name_prefix="train") as pool:
            pool.submit(warm_up).result()
            yield pool
        return
    from iomt.scenarios.in_process import training_pool

    pool = training_pool()
    try:
        yield pool
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
