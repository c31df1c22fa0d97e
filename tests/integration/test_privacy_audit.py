"""``privacy_audit: true`` keeps the curious server's view of each round, and ``iomt
attack`` runs inversion and membership inference on it: an HMU's update under FedAvg,
only the aggregate under CKKS."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from iomt.server_agent import audit
from iomt.server_agent.checkpoint import read_checkpoint
from tests.integration.test_run import TINY, iomt, only_run_dir

pytestmark = pytest.mark.integration


def audited_run(tmp_path: Path, dataset_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.yaml"
    path.write_text(
        TINY + f"data: {{dataset: {dataset_path}, limit: 3000}}\nprivacy_audit: true\n"
        f"update_encryption: {{kind: {kind}}}\n"
    )
    proc = iomt("run", str(path), "--out", str(tmp_path / kind))
    assert proc.returncode == 0, proc.stderr
    return only_run_dir(tmp_path / kind)


def test_the_audit_keeps_what_the_server_read_and_the_attacks_run_on_it(
    tmp_path: Path, dataset_path: Path
) -> None:
    run = audited_run(tmp_path, dataset_path, "none")
    assert audit.rounds_kept(run) == [1, 2]
    assert (run / "audit").stat().st_mode & 0o077 == 0
    base, seen = audit.read_round(run, 2)
    assert sorted(seen) == ["hmu-01", "hmu-02", "hmu-03"]
    # FedAvg of what the server read, from round 2's global model, is the final model
    final = read_checkpoint(run).weights
    for key in base:
        assert not np.allclose(seen["hmu-01"][key], base[key])
        np.testing.assert_allclose(np.mean([w[key] for w in seen.values()], axis=0),
                                   final[key], atol=1e-4)  # fmt: skip

    proc = iomt("attack", "inversion", str(run), "--hmu", "hmu-02", "--round", "2",
                "--rows", "4", "--steps", "200")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "step 200/200" in proc.stderr and "| its records |" in proc.stdout
    report = json.loads((run / "attacks" / "inversion-hmu-02-round-2.json").read_text())
    assert report["attacked"] == "its update" and report["rows"] == 4
    for side in ("against_its_records", "against_held_out_records"):
        assert -1 <= report[side]["ssim"] <= 1 and np.isfinite(report[side]["psnr"])

    proc = iomt("attack", "mia", str(run), "--hmu", "hmu-03")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((run / "attacks" / "mia.json").read_text())["results"]
    assert [(r["target"], r["attack"]) for r in rows] == [
        ("global model", "loss threshold"), ("global model", "shadow models"),
        ("hmu-03 as read, round 2", "loss threshold"), ("hmu-03 as read, round 2", "shadow models"),
    ]  # fmt: skip
    assert all(0 <= r["balanced_accuracy"] <= 1 and 0 <= r["auc"] <= 1 for r in rows)

    for args, named in (
        (["inversion", str(run), "--hmu", "hmu-02", "--round", "7"], "no audit of round 7"),
        (["inversion", str(run), "--hmu", "hmu-09", "--round", "1"], "--hmu hmu-09"),
        (["mia", str(tmp_path)], "not a run directory"),
    ):
        proc = iomt("attack", *args)
        assert proc.returncode == 2 and named in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_under_ckks_the_server_reads_only_the_aggregate(tmp_path: Path, dataset_path: Path):
    run = audited_run(tmp_path, dataset_path, "ckks")
    _, seen = audit.read_round(run, 1)
    assert list(seen) == [audit.AGGREGATE]
    proc = iomt("attack", "inversion", str(run), "--hmu", "hmu-01", "--round", "1",
                "--rows", "2", "--steps", "50", "--restarts", "2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "the decrypted aggregate (CKKS)" in proc.stdout
    report = json.loads((run / "attacks" / "inversion-hmu-01-round-1.json").read_text())
    assert report["restarts"] == 2
