"""What an HMU agent is given for a run, and what it hands back."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iomt.adversary.flood import FloodReport
from iomt.fedlearn.config import TrainingConfig
from iomt.fedlearn.defence_config import FloodAttack
from iomt.fedlearn.pipeline import UpdatePipeline
from iomt.hmu_agent.churn import ChurnPlan, hmu_number
from iomt.hmu_agent.link_profile import LinkPlan
from iomt.monitoring.publisher import MqttMetricsPublisher
from iomt.monitoring.sink import MetricsSink
from iomt.qkd_channel.config import QkdConfig
from iomt.wire import topics


@dataclass(frozen=True)
class HmuSetup:
    """Everything one HMU needs: who it is, its local data, how to train and what to send."""

    run_id: str
    hmu_id: str
    x: np.ndarray
    y: np.ndarray
    training: TrainingConfig
    seed: int
    client_kwargs: dict[str, Any]
    qkd: QkdConfig | None = None
    secret: bytes | None = None
    """Enrolment secret shared with the server; authenticates QKD post-processing."""
    pipeline: UpdatePipeline = field(default_factory=UpdatePipeline)
    """What happens to each update after training (``iomt.fedlearn.pipeline``)."""
    aggregator: str = topics.SERVER_ID
    """The aggregator of this HMU's tier: its server, or its fog node."""
    reconnect_s: float = 0.0
    """How long to reconnect to a lost broker before giving up (0: never)."""
    server_gone_s: float = 60.0
    """Leave when the aggregator's status has said offline (its last will) this long."""
    metrics: MetricsSink | None = None
    """Where this HMU's own metrics go; None when the server records them for it."""
    publisher: MqttMetricsPublisher | None = None
    """Set when the HMU's metrics travel over MQTT to the server (field HMUs)."""
    state_dir: Path | None = None
    """Where the state carried between rounds is written, to resume from (``hmu_agent.carry``)."""
    on_online: Callable[[], None] | None = None
    """Called once this HMU is connected and has said it is online."""
    cipher_key_bits: int = 0
    """Key bits of a keyed neural cipher, drawn each round from the QKD link (0: none)."""
    he_context: bytes | None = None
    """The run's CKKS context with its secret key, when updates are encrypted (FL + HE)."""
    flood: FloodAttack | None = None
    """Set when this HMU's credentials flood its update topic instead of training."""
    churn: ChurnPlan | None = None
    """Set when HMUs drop off the network now and then (``federation.churn``)."""
    links: LinkPlan | None = None
    """Set when the scenario gives HMUs slow links or processors (``links``)."""
    on_upload: Callable[[int], None] | None = None
    """Called (in a thread) with a round just before that round's update goes out: the
    kernel link's shaping (``iomt.hmu_agent.kernel_link``)."""
    on_global: Callable[[dict[str, Any], int], None] | None = None
    """Called with the global weights (and version) of every invitation this HMU gets."""
    on_finish: Callable[[], None] | None = None
    """Called (in a thread) when the run has ended for this HMU, before its last metrics
    are sent: live detection's last window still reaches the server."""


@dataclass
class HmuOutcome:
    hmu_id: str
    rounds_trained: int
    reason: str
    rejected: dict[str, int]
    key_sessions: int = 0
    bytes: dict[int, dict[str, int]] = field(default_factory=dict)
    """Per round: ``up`` (update bytes this HMU published), ``down`` (invitation bytes in)."""
    failures: dict[int, str] = field(default_factory=dict)
    """Rounds this HMU was invited to but sent no update for, and why."""
    flood: FloodReport | None = None
    churn: list[dict[str, float]] = field(default_factory=list)
    """Each time this HMU dropped off: the round and the seconds it stayed away."""
    links: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Per round: the link and compute profile applied, and the seconds each cost."""
    detection: dict[str, Any] | None = None
    """Live detection's totals (``iomt.hmu_agent.detection.DetectionReport``), if it ran."""

    def as_report(self) -> dict[str, Any]:
        """This HMU's entry in ``results.json``'s ``hmus``."""
        return {
            "state": "done",
            "reason": self.reason,
            "rounds_trained": self.rounds_trained,
            "key_sessions": self.key_sessions,
            "rejected": self.rejected,
            "failures": {str(r): why for r, why in self.failures.items()},
            "bytes": {str(r): counts for r, counts in self.bytes.items()},
            **({"flood": dataclasses.asdict(self.flood)} if self.flood else {}),
            **({"churn": self.churn} if self.churn else {}),
            **({"links": {str(r): p for r, p in self.links.items()}} if self.links else {}),
        }


def round_seed(seed: int, hmu_id: str, round_: int) -> int:
    """A training seed unique to (scenario seed, HMU, round), stable across processes."""
    return int(np.random.SeedSequence([seed, hmu_number(hmu_id), round_]).generate_state(1)[0])
