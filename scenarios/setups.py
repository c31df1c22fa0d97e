"""What each agent of a run is given: its setup built from the scenario, the run's shared parts."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from iomt.adversary.mitm import MitmProxy, route_through
from iomt.atomic import write_atomically
from iomt.blas import single_threaded_torch
from iomt.broker import BrokerHandle, client_kwargs
from iomt.fedlearn.model import init_weights

if TYPE_CHECKING:
    from iomt.fedlearn.cipher_enrolment import EnrolledCipher
    from iomt.fedlearn.neural_cipher import CipherNets
from iomt.fedlearn.pipeline import build_pipeline
from iomt.hmu_agent.churn import ChurnPlan
from iomt.hmu_agent.link_profile import LinkPlan
from iomt.hmu_agent.setup import HmuSetup
from iomt.monitoring.forwarder import ForwardLimits, MetricsForwarder
from iomt.monitoring.sink import MetricsSink
from iomt.qkd_channel.agent import ChannelSetup
from iomt.scenarios.data_plan import FederatedData, cache_dir
from iomt.scenarios.fog_nodes import FogBrokers
from iomt.scenarios.schema import Scenario
from iomt.server_agent.checkpoint import Checkpoint
from iomt.server_agent.runner import ServerAgent, ServerSetup
from iomt.wire.topics import SERVER_ID

log = logging.getLogger(__name__)

RoundCallback = Callable[[dict[str, Any]], None]


def make_enrolment(hmus: list[str]) -> dict[str, bytes]:
    """A fresh 256-bit enrolment secret per HMU: it authenticates QKD post-processing."""
    return {h: secrets.token_bytes(32) for h in hmus}


@dataclass(frozen=True)
class HeKeys:
    """The run's CKKS keys: ``secret`` for the HMUs, ``public`` for the server."""

    secret: bytes
    public: bytes


def make_he_keys(scenario: Scenario) -> HeKeys | None:
    """A CKKS context for a run whose updates are encrypted (the key authority's job at
    enrolment, done here by the launcher, which keeps no copy after handing them out)."""
    if scenario.update_encryption.kind != "ckks":
        return None
    from iomt.fedlearn import ckks

    context = ckks.new_context()
    return HeKeys(ckks.secret_bytes(context), ckks.public_bytes(context))


def make_cipher(scenario: Scenario) -> EnrolledCipher | None:
    """SAFE-MED's neural cipher for a run that uses it, trained by the key authority (here
    the launcher) on random blocks (``iomt.fedlearn.cipher_enrolment``).

    The cipher depends on nothing of the run but its settings and the seed, so it is
    kept in the cache folder under a hash of both and of the cipher's code
    (``cipher_file``): another run with the same settings (another point of a sweep)
    loads it instead of training.
    """
    path = cipher_file(scenario)
    if path is None:
        return None
    import torch

    from iomt.fedlearn import cipher_enrolment as ce

    cfg = scenario.update_encryption.neural
    if path.is_file():
        return ce.from_state(cfg, scenario.seed, torch.load(path, weights_only=True))
    with single_threaded_torch():  # small networks: one thread beats two (93 s to 114 s)
        enrolled = ce.enrol_cipher(cfg, scenario.seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda fh: torch.save(ce.saved_state(enrolled), fh))
    return enrolled


def cipher_file(scenario: Scenario) -> Path | None:
    """Where the run's neural cipher is cached; None when the run uses none."""
    if scenario.update_encryption.kind != "neural":
        return None
    from iomt.fedlearn import cipher_enrolment as ce

    cfg = scenario.update_encryption.neural
    # one thread: two sum in another order and train another cipher from the same seed
    training = cfg.model_dump_json(exclude={"unbiased"})  # how the server reads, not trains
    digest = hashlib.sha256(f"{training}/{scenario.seed}/1 thread".encode())
    for module in (ce, ce.nc):
        digest.update(Path(module.__file__ or "").read_bytes())
    return cache_dir(scenario) / "ciphers" / f"{digest.hexdigest()[:32]}.pt"


def ciphers_missing(scenarios: Sequence[Scenario]) -> list[Scenario]:
    """One scenario for each neural cipher ``scenarios`` need that the cache lacks."""
    wanted: dict[Path, Scenario] = {}
    for scenario in scenarios:
        path = cipher_file(scenario)
        if path is not None and not path.is_file():
            wanted.setdefault(path, scenario)
    return list(wanted.values())


def enrol_ahead(scenarios: Sequence[Scenario], pool: Executor) -> None:
    """Train the ciphers of ``scenarios`` into the cache, one per worker of ``pool`` at a
    time (each alone on its core)."""
    for future in [pool.submit(make_cipher_file, s) for s in scenarios]:
        future.result()


def make_cipher_file(scenario: Scenario) -> None:
    """``make_cipher`` for its cache file alone (what a worker process sends back)."""
    make_cipher(scenario)


def channel_setup(scenario: Scenario, run_id: str, kwargs: dict[str, Any]) -> ChannelSetup:
    hmus = scenario.hmu_ids
    rng = np.random.default_rng([scenario.seed, 0xE5E])
    return ChannelSetup(
        run_id=run_id,
        hmus=hmus,
        qkd=scenario.qkd,
        eavesdroppers=scenario.qkd.eavesdroppers_for(hmus, rng),
        seed=scenario.seed,
        client_kwargs=kwargs,
    )


def server_setup(
    scenario: Scenario,
    data: FederatedData,
    run_id: str,
    run_dir: Path,
    kwargs: dict[str, Any],
    on_round: RoundCallback | None,
    enrolment: dict[str, bytes] | None = None,
    handle: BrokerHandle | None = None,
    sink: MetricsSink | None = None,
    resume: Checkpoint | None = None,
    he_public: bytes | None = None,
) -> ServerSetup:
    forwarder = (
        MetricsForwarder(run_id, emit=sink.emit, limits=ForwardLimits.from_config(scenario.metrics))
        if sink is not None
        else None
    )
    return ServerSetup(
        run_id=run_id,
        hmus=scenario.hmu_ids,
        federation=scenario.federation,
        hidden=scenario.training.hidden,
        initial_weights=init_weights(data.n_features, scenario.training.hidden, scenario.seed),
        x_test=data.x_test,
        y_test=data.y_test,
        validation=(data.x_val, data.y_val) if data.x_val is not None else None,
        seed=scenario.seed,
        run_dir=run_dir,
        privacy_audit=scenario.privacy_audit,
        client_kwargs=kwargs,
        on_round=on_round,
        qkd=scenario.qkd,
        secrets=enrolment or {},
        revoke=handle.revoke if handle is not None else None,
        emit=sink.emit if sink is not None else None,
        forwarder=forwarder,
        defence=scenario.defence,
        reconnect_s=scenario.broker.reconnect_s,
        resume=resume,
        he_public=he_public,
    )


def hmu_state_dir(run_dir: Path, hmu: str) -> Path:
    """Where a launcher's HMU keeps the state it carries between rounds."""
    return run_dir / "checkpoints" / "hmus" / hmu


def link_plan(scenario: Scenario) -> LinkPlan | None:
    """The HMUs' link and compute profiles of ``scenario`` (None: unlimited)."""
    links = scenario.links
    if not links.enabled:
        return None
    return LinkPlan(
        links.bandwidth_kbps, links.latency_ms, links.compute_ghz, links.reference_ghz,
        scenario.seed, kernel=links.shaping == "tc",
    )  # fmt: skip


def churn_away_s(scenario: Scenario) -> float:
    """The longest an HMU of ``scenario`` stays off the network on churn (0 without)."""
    fed = scenario.federation
    return fed.churn_offline_s[1] if fed.churn else 0.0


def hmu_setup(
    scenario: Scenario,
    data: FederatedData,
    run_id: str,
    hmu: str,
    kwargs: dict[str, Any],
    secret: bytes | None = None,
    state_dir: Path | None = None,
    he_context: bytes | None = None,
    cipher: CipherNets | None = None,
) -> HmuSetup:
    x, y = data.parts[hmu]
    fed = scenario.federation
    bits = cipher.cfg.key_bits if cipher is not None and cipher.cfg.keyed else 0
    return HmuSetup(
        run_id=run_id,
        hmu_id=hmu,
        x=x,
        y=y,
        training=scenario.training,
        seed=scenario.seed,
        client_kwargs=kwargs,
        qkd=scenario.qkd,
        secret=secret,
        server_gone_s=scenario.federation.server_gone_s,
        reconnect_s=scenario.broker.reconnect_s,
        state_dir=state_dir,
        he_context=he_context,
        cipher_key_bits=bits,
        flood=flood if (flood := scenario.attacks.flood) and flood.hmu == hmu else None,
        churn=ChurnPlan(fed.churn, fed.churn_offline_s, scenario.seed) if fed.churn else None,
        links=link_plan(scenario),
        pipeline=build_pipeline(
            attacks=scenario.attacks,
            privacy=scenario.privacy,
            compression=scenario.compression,
            hmus=scenario.hmu_ids,
            seed=scenario.seed,
            he_context=he_context,
            encoder=cipher.encoder if cipher else None,  # never the decoder
            key_bits=bits,
        ),
    )


def open_sink(scenario: Scenario, run_id: str, run_dir: Path | None) -> MetricsSink:
    """The run's metrics sink: ``metrics.lp`` in the run directory, and InfluxDB if set."""
    strategy = scenario.defence.aggregator + ("+qkd" if scenario.qkd.enabled else "")
    tags = {"run": run_id, "scenario": scenario.name, "strategy": strategy}
    return MetricsSink.from_config(scenario.metrics, run_dir=run_dir, tags=tags)


@dataclass
class RunParts:
    """One run's shared parts, handed to whichever shape runs the agents."""

    scenario: Scenario
    data: FederatedData
    run_id: str
    run_dir: Path
    handle: BrokerHandle
    sink: MetricsSink
    on_round: RoundCallback | None = None
    executor: Executor | None = None
    enrolment: dict[str, bytes] = field(default_factory=dict)
    eves: dict[str, MitmProxy] = field(default_factory=dict)
    resume: Checkpoint | None = None
    """The checkpoint a resumed run continues from."""
    he_keys: HeKeys | None = None
    """The run's CKKS keys when updates are encrypted."""
    cipher: EnrolledCipher | None = None
    """The run's neural cipher: its encoder goes to the HMUs, its decoder to the server."""
    fogs: FogBrokers | None = None
    """The fog brokers in a fog topology: the server's members are then the fogs."""
    network: Any = None
    """``HmuNetwork`` under ``links.shaping: tc``: each HMU's namespace and kernel link."""

    def server(self) -> ServerAgent:
        kwargs = client_kwargs(self.handle, SERVER_ID)
        setup = server_setup(
            self.scenario,
            self.data,
            self.run_id,
            self.run_dir,
            kwargs,
            self.on_round,
            self.enrolment,
            self.handle,
            self.sink,
            self.resume,
            self.he_keys.public if self.he_keys else None,
        )
        if self.fogs is not None:
            fogs = list(self.fogs.members)
            federation = setup.federation.model_copy(update={"clients_per_round": len(fogs)})
            setup = dataclasses.replace(setup, hmus=fogs, federation=federation)
        if self.cipher is not None:
            cipher = self.cipher.nets
            bits = cipher.cfg.key_bits if cipher.cfg.keyed else 0
            gain = 1.0
            if cipher.cfg.unbiased:
                from iomt.fedlearn.decoder_gain import decoder_gain

                gain = decoder_gain(cipher, self.scenario.seed)
            setup = dataclasses.replace(
                setup, neural_decoder=cipher.decoder, cipher_key_bits=bits, neural_gain=gain
            )
        return ServerAgent(setup)

    def hmu(self, hmu: str) -> HmuSetup:
        """The setup of one HMU of this run, with its own secrets only."""
        setup = hmu_setup(
            self.scenario, self.data, self.run_id, hmu, self.hmu_kwargs(hmu),
            self.enrolment.get(hmu), hmu_state_dir(self.run_dir, hmu),
            self.he_keys.secret if self.he_keys else None,
            self.cipher.nets if self.cipher else None,
        )  # fmt: skip
        if self.fogs is not None:
            setup = dataclasses.replace(setup, aggregator=self.fogs.fog_of(hmu))
        if self.network is not None:  # the broker by the namespaces' bridge; shaped links
            kwargs = {**setup.client_kwargs, "hostname": self.network.address}
            link = self.network.links[hmu]
            setup = dataclasses.replace(setup, client_kwargs=kwargs, on_upload=link)
        return setup

    def hmu_kwargs(self, hmu: str) -> dict[str, Any]:
        """How an HMU reaches its broker (its fog's in a fog topology): directly, or
        through Eve where she sits on its path."""
        if self.fogs is not None:
            return client_kwargs(self.fogs.handles[self.fogs.fog_of(hmu)], hmu)
        kwargs = client_kwargs(self.handle, hmu)
        return route_through(kwargs, self.eves[hmu]) if hmu in self.eves else kwargs
