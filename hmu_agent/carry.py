"""What an HMU carries from one round it trains to the next, kept per round and on disk.

Two things outlive a round: the optimiser's moments (``keep_optimiser_state``) and the
pipeline's state (compression's error-feedback residual).  They are kept for the last
two rounds this HMU trained, because a run resumed from the server's checkpoint after
round R may invite it again for round R + 1, which it had already trained before the
crash: that round must start from what it carried out of its round before R + 1, not
out of R + 1 itself.

With a folder (``checkpoints/hmus/<hmu>/`` in a launcher's run directory, or an
``iomt hmu --state-dir``) each round's state is also written there, whole or not at
all, and read back when the HMU starts again.  The file is a JSON index (name, dtype,
shape) and the arrays' raw bytes: every HMU writes one each round, and ``np.savez``'s
zip archive cost ten times as much.  Not the wire's ``iomt.wire.codec``: the
compression residual is float64, which the wire rightly refuses.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from iomt.atomic import write_atomically
from iomt.fedlearn.train import OptimiserState

log = logging.getLogger(__name__)

KEEP = 2
SUFFIX = ".state"
_OPT, _PIPE = "optimiser:", "pipeline:"


@dataclass(frozen=True)
class Carried:
    """The state an HMU came out of ``round`` with."""

    round: int
    optimiser: OptimiserState | None = None
    pipeline: dict[str, np.ndarray] = field(default_factory=dict)


class CarriedStates:
    """The last ``KEEP`` rounds' carried state of one HMU."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self.kept: dict[int, Carried] = {}
        if folder is not None and folder.is_dir():
            for path in sorted(folder.glob(f"round-*{SUFFIX}")):
                self._load(path)

    def before(self, round_: int) -> Carried:
        """What to train round ``round_`` from: the newest state of an earlier round."""
        earlier = [r for r in self.kept if r < round_]
        return self.kept[max(earlier)] if earlier else Carried(0)

    def after(self, carried: Carried) -> None:
        """Keep what round ``carried.round`` ended with (and write it, with a folder)."""
        self.kept[carried.round] = carried
        for old in sorted(self.kept)[:-KEEP]:
            del self.kept[old]
            if self.folder is not None:
                (self.folder / _name(old)).unlink(missing_ok=True)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            arrays = {f"{_OPT}{k}": v for k, v in (carried.optimiser or {}).items()}
            arrays.update({f"{_PIPE}{k}": v for k, v in carried.pipeline.items()})
            blob = pack_arrays(arrays)
            write_atomically(self.folder / _name(carried.round), lambda fh: fh.write(blob))

    def _load(self, path: Path) -> None:
        try:
            round_ = int(path.stem.split("-", 1)[1])
            arrays = unpack_arrays(path.read_bytes())
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable, ignored: %s", path, exc)
            return
        optimiser = {k[len(_OPT) :]: v for k, v in arrays.items() if k.startswith(_OPT)}
        pipeline = {k[len(_PIPE) :]: v for k, v in arrays.items() if k.startswith(_PIPE)}
        self.kept[round_] = Carried(round_, optimiser or None, pipeline)


def _name(round_: int) -> str:
    return f"round-{round_:06d}{SUFFIX}"


def pack_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    """``arrays`` as a 4-byte index length, a JSON index and the raw bytes in its order."""
    index = json.dumps([[k, a.dtype.str, a.shape] for k, a in arrays.items()]).encode()
    body = b"".join(np.ascontiguousarray(a).tobytes() for a in arrays.values())
    return len(index).to_bytes(4, "little") + index + body


def unpack_arrays(blob: bytes) -> dict[str, np.ndarray]:
    """``pack_arrays``'s input back; ``ValueError`` if ``blob`` is not whole."""
    size = int.from_bytes(blob[:4], "little")
    try:
        index = json.loads(blob[4 : 4 + size])
        out, offset = {}, 4 + size
        for name, dtype, shape in index:
            count = int(np.prod(shape, dtype=np.int64))
            array = np.frombuffer(blob, np.dtype(dtype), count, offset).reshape(shape)
            out[str(name)], offset = array.copy(), offset + array.nbytes
    except (TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a state file: {exc}") from None
    if offset != len(blob):
        raise ValueError(f"state file has {len(blob) - offset} bytes past its arrays")
    return out
