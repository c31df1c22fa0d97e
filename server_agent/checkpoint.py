"""The server's checkpoint: everything a resumed run needs, written atomically after every round.

``checkpoints/global-<version>.npz`` holds the global model and ``checkpoints/state.json``
the rest, naming that file; ``checkpoints/global.npz`` is a copy of the latest model
for readers.  The model file is written before the state that names it, and the older
one removed after, so a process killed at any point leaves a state and a model that
belong together.  The state holds
the round log, the model's version, the client-selection generator's state, the trust
ledger and anomaly history, the isolated HMUs and the refusal counts.  The privacy
spent by each HMU is derived from the round log (``iomt.scenarios.accounting``).
Keys are never written: a resumed run runs its key sessions afresh.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iomt.atomic import write_atomically, write_text_atomically
from iomt.errors import EnvironmentProblem, UsageError
from iomt.fedlearn.model import Weights
from iomt.fedlearn.trust import TrustLedger
from iomt.server_agent.coordinator import RoundCoordinator

STATE_FILE = "state.json"
WEIGHTS_FILE = "global.npz"


@dataclass
class Checkpoint:
    """The server's state after round ``completed_rounds``."""

    run_id: str
    weights: Weights
    version: int
    rounds: list[dict[str, Any]]
    rng: dict[str, Any]
    """The client-selection generator's ``bit_generator.state``."""
    trust: dict[str, Any] = field(default_factory=dict)
    """``{"trust": {hmu: score}, "history": {hmu: [rounds flagged]}}`` (trust-weighted runs)."""
    isolated: list[str] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)

    @property
    def completed_rounds(self) -> int:
        return self.rounds[-1]["round"] if self.rounds else 0


def write_checkpoint(run_dir: Path, ckpt: Checkpoint) -> None:
    """Both files, each written whole; a full disk raises ``EnvironmentProblem`` and leaves
    the previous pair and no temporary file."""
    folder = run_dir / "checkpoints"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot create {folder}: {exc.strerror or exc}") from None
    versioned = f"global-{ckpt.version:06d}.npz"
    write_atomically(folder / versioned, lambda fh: np.savez(fh, **ckpt.weights))
    state = {
        "run_id": ckpt.run_id,
        "weights": versioned,
        "round": ckpt.completed_rounds,
        "version": ckpt.version,
        "rng": ckpt.rng,
        "trust": ckpt.trust,
        "isolated": ckpt.isolated,
        "rejected": ckpt.rejected,
        "rounds": ckpt.rounds,
    }
    write_text_atomically(folder / STATE_FILE, json.dumps(state, indent=1))
    write_atomically(folder / WEIGHTS_FILE, lambda fh: fh.write((folder / versioned).read_bytes()))
    for old in folder.glob("global-*.npz"):
        if old.name != versioned:
            old.unlink(missing_ok=True)


def read_checkpoint(run_dir: Path) -> Checkpoint:
    """The checkpoint of ``run_dir``; ``UsageError`` naming the file when there is none."""
    folder = run_dir / "checkpoints"
    state_path = folder / STATE_FILE
    try:
        state = json.loads(state_path.read_text())
        with np.load(folder / str(state["weights"])) as npz:
            weights = {k: npz[k] for k in npz.files}
        return Checkpoint(
            run_id=str(state["run_id"]),
            weights=weights,
            version=int(state["version"]),
            rounds=list(state["rounds"]),
            rng=dict(state["rng"]),
            trust=dict(state.get("trust") or {}),
            isolated=list(state.get("isolated") or []),
            rejected={str(k): int(v) for k, v in (state.get("rejected") or {}).items()},
        )
    except FileNotFoundError:
        raise UsageError(
            f"{state_path}: no checkpoint: the run finished no round; start it again"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(
            f"{state_path}: not a checkpoint this version can resume ({exc})"
        ) from None


def checkpoint_of(
    run_id: str,
    weights: Weights,
    rounds: list[dict[str, Any]],
    core: RoundCoordinator,
    ledger: TrustLedger | None,
    isolated: list[str],
    rejected: dict[str, int],
) -> Checkpoint:
    """The server's state as its current round closes (before the coordinator counts it)."""
    return Checkpoint(
        run_id=run_id,
        weights=weights,
        version=core.version + 1,
        rounds=rounds,
        rng=core.rng_state(),
        trust={"trust": ledger.trust, "history": ledger.history} if ledger else {},
        isolated=list(isolated),
        rejected=dict(rejected),
    )


def restore(ckpt: Checkpoint, core: RoundCoordinator, ledger: TrustLedger | None) -> None:
    """Put the coordinator and the trust ledger back as ``ckpt`` has them."""
    core.restore(ckpt.completed_rounds, ckpt.version, ckpt.rng, ckpt.isolated)
    if ledger is not None and ckpt.trust:
        ledger.trust = {str(k): float(v) for k, v in ckpt.trust["trust"].items()}
        ledger.history = {str(k): list(v) for k, v in ckpt.trust["history"].items()}
