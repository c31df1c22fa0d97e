"""The privacy audit: what the server saw in each round, kept for the attacks of
``iomt attack`` (``privacy_audit: true``).

``run_dir/audit/round-NNN.npz`` holds the global model the round's HMUs trained from
(``global/<parameter>``) and each HMU's weights as the server read them
(``<hmu>/<parameter>``): the plaintext or DP-noised update, the neural decoder's
output.  Under CKKS the server reads no single update, only the decrypted aggregate
(``aggregate/<parameter>``).  It is the curious server's view, as sensitive as the
updates themselves: the folder is the owner's only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from iomt.atomic import write_atomically
from iomt.errors import UsageError
from iomt.fedlearn.model import Weights

FOLDER = "audit"
GLOBAL, AGGREGATE = "global", "aggregate"


def round_file(run_dir: Path, round_: int) -> Path:
    return run_dir / FOLDER / f"round-{round_:03d}.npz"


def write_round(run_dir: Path, round_: int, base: Weights, seen: dict[str, Weights]) -> Path:
    """Keep round ``round_``'s global model and each party's weights as the server saw
    them (``seen``: HMU ids, or ``aggregate``)."""
    folder = run_dir / FOLDER
    folder.mkdir(mode=0o700, exist_ok=True)
    arrays = {f"{GLOBAL}/{k}": v for k, v in base.items()}
    for party, weights in seen.items():
        arrays.update({f"{party}/{k}": v for k, v in weights.items()})
    return write_atomically(round_file(run_dir, round_), lambda fh: np.savez(fh, **arrays))


def read_round(run_dir: Path, round_: int) -> tuple[Weights, dict[str, Weights]]:
    """The global model of round ``round_`` and what the server saw, by party."""
    path = round_file(run_dir, round_)
    if not path.is_file():
        kept = sorted(p.name for p in (run_dir / FOLDER).glob("round-*.npz"))
        hint = (
            f"rounds kept: {kept[0]}..{kept[-1]}" if kept
            else "run the scenario with privacy_audit: true"
        )  # fmt: skip
        raise UsageError(f"{path}: no audit of round {round_}; {hint}")
    parties: dict[str, Weights] = {}
    with np.load(path) as data:
        for name in data.files:
            party, key = name.split("/", 1)
            parties.setdefault(party, {})[key] = data[name]
    base = parties.pop(GLOBAL)
    return base, parties


def rounds_kept(run_dir: Path) -> list[int]:
    return sorted(int(p.stem.split("-")[1]) for p in (run_dir / FOLDER).glob("round-*.npz"))
