"""The server's checkpoint: the global model, its version and the round log, written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from iomt.fedlearn.model import Weights


def write_checkpoint(
    run_dir: Path, run_id: str, weights: Weights, version: int, rounds: list[dict[str, Any]]
) -> None:
    """``checkpoints/global.npz`` and ``checkpoints/state.json``; a crash leaves the old pair."""
    ckpt = run_dir / "checkpoints"
    ckpt.mkdir(parents=True, exist_ok=True)
    tmp = ckpt / "global.npz.tmp"
    with tmp.open("wb") as fh:
        np.savez(fh, **weights)
    os.replace(tmp, ckpt / "global.npz")
    last = rounds[-1]["round"] if rounds else 0
    state = {"run_id": run_id, "round": last, "version": version, "rounds": rounds}
    tmp_state = ckpt / "state.json.tmp"
    tmp_state.write_text(json.dumps(state, indent=1))
    os.replace(tmp_state, ckpt / "state.json")
