"""Files written whole or not at all, and run directories that are never reused.

A run's files (checkpoint, results) are written beside their final name and renamed
into place, so a reader or a crash never sees half a file; when the machine refuses
(an unwritable directory, a full disk) the partial file is removed, the previous
version stays as it was, and the caller gets one ``EnvironmentProblem`` naming the path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from iomt.errors import EnvironmentProblem, UsageError


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Write ``path`` through ``write(file)``: whole, or not at all and the old one kept."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise EnvironmentProblem(
            f"cannot write {path}: {exc.strerror or exc}; free space or choose another folder"
        ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomically(path: Path, text: str) -> Path:
    return write_atomically(path, lambda fh: fh.write(text.encode("utf-8")))


def new_run_dir(out_root: Path, run_id: str) -> Path:
    """A fresh directory for a run; an existing one is never written into."""
    run_dir = out_root / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise UsageError(
            f"{run_dir} exists: a run never writes into another's directory; "
            "choose another --run-id or --out"
        ) from None
    except OSError as exc:
        raise EnvironmentProblem(
            f"cannot create {run_dir}: {exc.strerror or exc}; choose a writable --out"
        ) from None
    return run_dir
