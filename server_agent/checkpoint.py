"""The server's checkpoint: the global model, its version and the round log, written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from iomt.atomic import write_atomically, write_text_atomically
from iomt.errors import EnvironmentProblem
from iomt.fedlearn.model import Weights


def write_checkpoint(
    run_dir: Path, run_id: str, weights: Weights, version: int, rounds: list[dict[str, Any]]
) -> None:
    """``checkpoints/global.npz`` and ``checkpoints/state.json``, each written whole; a full
    disk raises ``EnvironmentProblem`` and leaves the previous pair and no temporary file."""
    ckpt = run_dir / "checkpoints"
    try:
        ckpt.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot create {ckpt}: {exc.strerror or exc}") from None
    write_atomically(ckpt / "global.npz", lambda fh: np.savez(fh, **weights))
    last = rounds[-1]["round"] if rounds else 0
    state = {"run_id": run_id, "round": last, "version": version, "rounds": rounds}
    write_text_atomically(ckpt / "state.json", json.dumps(state, indent=1))
