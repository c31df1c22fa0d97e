"""``results.json``: what a run did, in one file a plotting script can read."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

RESULTS_FILE = "results.json"
ROUND_FIELDS = (
    "round",
    "selected",
    "received",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "loss",
    "duration_s",
    "bytes_up",
    "bytes_down",
)
FINAL_FIELDS = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "macro_f1",
    "fpr",
    "roc_auc",
    "detection_time_ms",
)


def write_results(run_dir: Path, results: dict[str, Any]) -> Path:
    """Write ``results.json`` atomically (a reader never sees half a file)."""
    missing = [k for k in ("scenario", "seed", "broker", "rounds", "final") if k not in results]
    if missing:
        raise ValueError(f"results lack {', '.join(missing)}")
    path = run_dir / RESULTS_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, default=_plain) + "\n")
    os.replace(tmp, path)
    return path


def read_results(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / RESULTS_FILE).read_text())


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as JSON numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to results.json")
