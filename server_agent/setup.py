"""What the FL server is given for a run, and what it hands back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iomt.fedlearn.config import FederationConfig
from iomt.fedlearn.defence_config import DefenceConfig
from iomt.fedlearn.model import Weights
from iomt.monitoring.forwarder import MetricsForwarder
from iomt.monitoring.point import Point
from iomt.qkd_channel.config import QkdConfig
from iomt.server_agent.checkpoint import Checkpoint
from iomt.wire.topics import SERVER_ID


@dataclass(frozen=True)
class ServerSetup:
    """Everything the server needs for one run."""

    run_id: str
    hmus: list[str]
    federation: FederationConfig
    hidden: tuple[int, ...]
    initial_weights: Weights
    x_test: np.ndarray
    y_test: np.ndarray
    seed: int
    run_dir: Path
    client_kwargs: dict[str, Any]
    on_round: Callable[[dict[str, Any]], None] | None = None
    qkd: QkdConfig | None = None
    secrets: dict[str, bytes] = field(default_factory=dict)
    """Enrolment secret of each HMU; authenticates QKD post-processing."""
    revoke: Callable[[str], Awaitable[bool]] | None = None
    """Withdraw an HMU's right to publish updates at the broker."""
    emit: Callable[[Point], None] | None = None
    """Where metrics go (a ``MetricsSink.emit``); None: nowhere."""
    forwarder: MetricsForwarder | None = None
    """Accepts HMUs' metrics published over MQTT (field HMUs without InfluxDB)."""
    defence: DefenceConfig = DefenceConfig()
    reconnect_s: float = 0.0
    """How long the server reconnects to a lost broker before the run ends (0: never)."""
    aggregator_id: str = SERVER_ID
    """This aggregator's id: the tier whose members it serves (``iomt.wire.topics``)."""
    resume: Checkpoint | None = None
    """Continue from this checkpoint instead of from ``initial_weights``."""
    he_public: bytes | None = None
    """The run's public CKKS context (no secret key) when updates are encrypted."""
    neural_decoder: object | None = None
    """The neural cipher's decoder network, when updates are encoded with it."""
    cipher_key_bits: int = 0
    """Key bits of a keyed neural cipher, drawn per HMU and round from its QKD link."""
    neural_gain: float = 1.0
    """The decoder's gain, divided out of each decoded update (``fedlearn.decoder_gain``)."""
    privacy_audit: bool = False
    """Keep each round's global model and updates as read (``server_agent.audit``)."""
    validation: tuple[np.ndarray, np.ndarray] | None = None
    """Held-out rows to choose the alarm threshold on each round (else it is 0.5)."""


@dataclass
class ServerOutcome:
    """What a finished run produced."""

    completed: bool
    reason: str
    rounds: list[dict[str, Any]]
    final: dict[str, Any]
    weights: Weights
    version: int = 0
    """Version of ``weights``: the aggregations that made it."""
    rejected: dict[str, int] = field(default_factory=dict)
    refused_by_peer: dict[str, dict[str, int]] = field(default_factory=dict)
    isolations: dict[str, dict[str, Any]] = field(default_factory=dict)
    """HMU -> why it was isolated, and when (wall clock) the broker enforced it."""
    qkd: dict[str, dict[str, Any]] = field(default_factory=dict)
    isolated: list[str] = field(default_factory=list)
    keying_seconds: list[float] = field(default_factory=list)
    mitm: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Filled by the launcher: what a man-in-the-middle on an HMU's path saw and did."""
    asynchronous: dict[str, Any] = field(default_factory=dict)
    """Asynchronous federation: buffer, bound, applied and refused updates by staleness."""
    fogs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Filled by the launcher in a fog topology: each fog aggregator's report."""
