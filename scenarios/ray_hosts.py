"""HMU agents placed on a Ray cluster: one host task per node runs a group of HMUs.

``iomt run --executor ray [--address ADDR]``: the launcher starts the broker and the
server as for any run, joins the Ray cluster at ``ADDR`` (default ``auto``: the cluster
``ray start`` made on this machine) and splits the HMUs over the cluster's alive nodes,
round robin in id order.  On each node one host task (a Ray task pinned to the node,
asking for no CPU of Ray's books: its HMUs' training pool is its own) runs its group
with ``serve_hmus`` for the whole run, as ``iomt hmu --ids`` does: one MQTT session per
HMU to the broker's URL, torch imported once per core, only selected HMUs training.
So 100 HMUs on two nodes are two Ray workers, not 100 processes.

Each HMU's setup (its share of the data, its broker password and enrolment secret)
travels to its host in the task's arguments, through Ray's object store: the cluster is
trusted with what the HMUs hold.  A host's outcomes come back as the call's result,
one report per HMU with the node it ran on.  A host that dies, raises, or has not
returned ``EXIT_WAIT_S`` after the server finished has each of its HMUs reported as
failed, never as done (and the run as not completed).

Every node needs the same install (``./setup.sh`` with ``pip install -e .[ray]``) and
``ray start`` run from that environment.  The broker must be reachable by every node:
the launcher's own Mosquitto listens on 127.0.0.1, enough for a cluster on one
machine; across hosts, set ``broker.url`` to a broker all of them reach.  Ray is
imported here only, and only for ``--executor ray``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

from iomt.errors import RunError, UsageError
from iomt.hmu_agent.setup import HmuSetup
from iomt.scenarios.schema import Scenario
from iomt.scenarios.setups import RunParts, churn_away_s
from iomt.server_agent.setup import ServerOutcome

log = logging.getLogger(__name__)

EXIT_WAIT_S = 30.0
"""How long the hosts have, after the server's outcome, to return their HMUs' outcomes."""
CONNECT_TIMEOUT_S = 3.0


def serve_group(scenario: Scenario, setups: list[HmuSetup]) -> list[dict[str, Any]]:
    """What a host task does: run its HMUs to the end; one report per HMU."""
    from iomt.blas import single_threaded_blas
    from iomt.scenarios.hmu_service import serve_hmus

    with single_threaded_blas():
        outcomes = asyncio.run(serve_hmus(scenario, setups))
    return [o.as_report() for o in outcomes]


def groups(hmus: list[str], nodes: list[str]) -> dict[str, list[str]]:
    """HMUs split over ``nodes`` round robin in id order (nodes without HMUs left out)."""
    placed: dict[str, list[str]] = {n: [] for n in nodes}
    for i, hmu in enumerate(hmus):
        placed[nodes[i % len(nodes)]].append(hmu)
    return {n: members for n, members in placed.items() if members}


def _no_cluster(address: str, why: str) -> UsageError:
    return UsageError(
        f"--address {address}: no Ray cluster there ({why}); start one with"
        " `ray start --head` or pass the HOST:PORT it printed"
    )


def _reachable(address: str) -> None:
    """Refuse at once an address nothing listens on (Ray itself retries for minutes)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--address {address}: give HOST:PORT of the Ray head, or auto")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise _no_cluster(address, exc.strerror or type(exc).__name__) from None


def _ray(address: str) -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError(
            "--executor ray needs Ray: pip install 'iomt-testbed[ray]' (or .[ray] here)"
        ) from None
    if address != "auto":
        _reachable(address)
    try:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _no_cluster(address, first.rstrip(".")) from None
    return ray


@contextlib.contextmanager
def ray_cluster(address: str) -> Iterator[Any]:
    """The ``ray`` module joined to the cluster at ``address``, left on the way out."""
    ray = _ray(address)
    try:
        yield ray
    finally:
        ray.shutdown()


async def run_on_ray(run: RunParts, ray: Any) -> tuple[ServerOutcome, dict[str, Any]]:
    """The server here, the HMUs in one host task per alive node of the joined cluster."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive"))
    if not nodes:
        raise RunError("the Ray cluster has no alive node")
    placed = groups(run.scenario.hmu_ids, nodes)
    host = ray.remote(num_cpus=0, max_retries=0)(serve_group)  # an HMU never runs twice
    calls = {}
    for node, members in placed.items():
        strategy = NodeAffinitySchedulingStrategy(node_id=node, soft=False)
        setups = [run.hmu(h) for h in members]
        calls[node] = host.options(scheduling_strategy=strategy).remote(run.scenario, setups)
        log.info("ray: %d HMUs on node %s", len(members), node[:12])
    outcome = await run.server().run()
    wait_s = EXIT_WAIT_S + churn_away_s(run.scenario)
    return outcome, await asyncio.to_thread(_collect, ray, calls, placed, wait_s)


def _collect(
    ray: Any, calls: dict[str, Any], placed: dict[str, list[str]], wait_s: float
) -> dict[str, Any]:
    """Each HMU's report from its host, with its node; a host that failed fails its HMUs."""
    deadline = time.monotonic() + wait_s
    report: dict[str, Any] = {}
    for node, ref in calls.items():
        members = placed[node]
        try:
            reports = ray.get(ref, timeout=max(0.1, deadline - time.monotonic()))
        except Exception as exc:  # the host died, timed out or raised: its HMUs are not done
            ray.cancel(ref, force=True)
            error = f"host on Ray node {node[:12]} failed: {type(exc).__name__}: {exc}"
            reports = [{"state": "failed", "error": error[:300]} for _ in members]
        for hmu, entry in zip(members, reports, strict=True):
            report[hmu] = {**entry, "ray_node": node}
    return report
