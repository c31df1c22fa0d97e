"""One HMU with its own metrics and training thread: ``iomt hmu``, and each HMU process of
``iomt run --processes``."""

from __future__ import annotations

import asyncio
import dataclasses
from concurrent.futures import ThreadPoolExecutor

from iomt.blas import single_threaded_blas
from iomt.fedlearn.train import warm_up
from iomt.hmu_agent.runner import HmuAgent
from iomt.hmu_agent.setup import HmuOutcome, HmuSetup
from iomt.monitoring.publisher import MqttMetricsPublisher
from iomt.monitoring.resources import ResourceSampler
from iomt.monitoring.sink import MetricsSink
from iomt.scenarios.schema import Scenario
from iomt.wire import topics


async def serve_hmu(scenario: Scenario, setup: HmuSetup) -> HmuOutcome:
    """Run one HMU with its own metrics (to InfluxDB, or over MQTT to the server) and one
    training thread: what ``iomt hmu`` and each HMU process of ``iomt run --processes`` do."""
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
    interval = scenario.metrics.resources_interval_s
    sampler = (
        asyncio.create_task(ResourceSampler(hmu, interval).run(sink.emit))
        if scenario.metrics.enabled and interval > 0
        else None
    )
    try:
        with single_threaded_blas(), ThreadPoolExecutor(1, thread_name_prefix="train") as pool:
            await asyncio.get_running_loop().run_in_executor(pool, warm_up)
            setup = dataclasses.replace(setup, metrics=sink, publisher=publisher)
            return await HmuAgent(setup, pool).run()
    finally:
        if sampler is not None:
            sampler.cancel()
        await sink.aclose()
