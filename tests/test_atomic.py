"""Files written whole or not at all; a full disk or unwritable folder is one clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from iomt.atomic import new_run_dir, write_text_atomically
from iomt.errors import EnvironmentProblem, UsageError
from iomt.server_agent.checkpoint import Checkpoint, read_checkpoint, write_checkpoint

DEV_FULL = Path("/dev/full")  # every write to it fails with ENOSPC, as on a full disk
needs_dev_full = pytest.mark.skipif(not DEV_FULL.exists(), reason="needs /dev/full (Linux)")


def fill_disk_for(path: Path) -> Path:
    """Make the next atomic write of ``path`` land on a full disk."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.symlink_to(DEV_FULL)
    return tmp


@needs_dev_full
def test_a_full_disk_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = write_text_atomically(tmp_path / "results.json", "old\n")
    tmp = fill_disk_for(path)
    with pytest.raises(EnvironmentProblem, match="results.json: No space left on device"):
        write_text_atomically(path, "new\n")
    assert path.read_text() == "old\n"
    assert not tmp.exists() and not tmp.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


@needs_dev_full
def test_a_checkpoint_on_a_full_disk_keeps_the_last_one_whole(tmp_path: Path) -> None:
    first = {"w": np.ones(4, np.float32)}
    write_checkpoint(tmp_path, Checkpoint("r", first, 1, [{"round": 1}], rng={}))
    fill_disk_for(tmp_path / "checkpoints" / "global-000002.npz")
    with pytest.raises(EnvironmentProblem, match="global-000002.npz"):
        second = Checkpoint("r", {"w": np.zeros(4, np.float32)}, 2, [{"round": 2}], rng={})
        write_checkpoint(tmp_path, second)
    ckpt = tmp_path / "checkpoints"
    assert sorted(p.name for p in ckpt.iterdir()) == [
        "global-000001.npz",
        "global.npz",
        "state.json",
    ]
    with np.load(ckpt / "global.npz") as saved:
        np.testing.assert_array_equal(saved["w"], first["w"])
    assert json.loads((ckpt / "state.json").read_text())["version"] == 1
    assert read_checkpoint(tmp_path).version == 1


def test_a_run_directory_is_never_reused(tmp_path: Path) -> None:
    new_run_dir(tmp_path, "trial-1")
    with pytest.raises(UsageError, match="never writes into another's directory"):
        new_run_dir(tmp_path, "trial-1")


def test_an_unwritable_out_folder_is_an_environment_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(EnvironmentProblem, match="choose a writable --out"):
        new_run_dir(blocker / "runs", "trial-1")


def test_the_cli_says_so_in_one_line_with_its_own_exit_code(
    tmp_path: Path, dataset_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"name: s\ndata: {{dataset: {dataset_path}, limit: 500}}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "iomt.scenarios.cli", "run", str(scenario), "--out",
         str(blocker / "runs")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == EnvironmentProblem.exit_code == 4
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert "cannot create" in proc.stderr
