"""FL + HE over the real broker: a 3-HMU, 2-round run with ``update_encryption: ckks``
completes, in one process and with HMU processes, with the plaintext run's model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from iomt.server_agent.checkpoint import read_checkpoint
from tests.integration.test_run import TINY, check_results, iomt, only_run_dir

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("processes", [False, True], ids=["in-process", "processes"])
def test_a_ckks_run_completes_with_the_plaintext_model(
    processes: bool, dataset_path: Path, tmp_path: Path
) -> None:
    runs = {}
    for kind in ("ckks", "none"):
        path = tmp_path / f"{kind}.yaml"
        path.write_text(
            TINY + f"data: {{dataset: {dataset_path}, limit: 3000}}\n"
            f"update_encryption: {{kind: {kind}}}\n"
        )
        out = tmp_path / kind
        proc = iomt("run", str(path), "--out", str(out), *(["--processes"] if processes else []))
        assert proc.returncode == 0, proc.stderr
        runs[kind] = only_run_dir(out)
    results = json.loads((runs["ckks"] / "results.json").read_text())
    plain = json.loads((runs["none"] / "results.json").read_text())
    check_results(results, rounds=2, hmus=3)
    assert results["update_encryption"]["kind"] == "ckks"
    # the server reads no single update under CKKS, every one in plaintext
    assert results["leakage"]["headline"] == 0.0 and plain["leakage"]["headline"] == 100.0
    # bytes measured where they leave each HMU: two CKKS-8192 vectors (~0.66 MB) per update
    assert (
        results["communication"]["mb_up_per_hmu_round"]
        > 15 * plain["communication"]["mb_up_per_hmu_round"]
    )
    assert all(r["bytes_up"] > 3 * 600_000 for r in results["rounds"])
    # the aggregate of encrypted deltas (CKKS error ~1e-8) gives the plaintext model
    reference = read_checkpoint(runs["none"]).weights
    for name, value in read_checkpoint(runs["ckks"]).weights.items():
        np.testing.assert_allclose(value, reference[name], atol=1e-5)
    assert abs(results["final"]["accuracy"] - plain["final"]["accuracy"]) <= 1e-3
    log = (runs["ckks"] / "run.log").read_text()
    assert "round 2: asked hmu-01 to decrypt the aggregate" in log


@pytest.mark.parametrize("keyed", [False, True], ids=["keyless", "keyed-by-qkd"])
def test_a_neural_cipher_run_completes_and_reports_its_leakage(
    keyed: bool, dataset_path: Path, tmp_path: Path
) -> None:
    path = tmp_path / "neural.yaml"
    path.write_text(
        TINY + f"data: {{dataset: {dataset_path}, limit: 3000}}\n"
        f"update_encryption: {{kind: neural, neural: {{max_epochs: 5, train_blocks: 2000,"
        f" keyed: {str(keyed).lower()}, unbiased: {str(keyed).lower()}}}}}\n"
        + ("qkd: {enabled: true}\n" if keyed else "")
    )
    proc = iomt("run", str(path), "--out", str(tmp_path / "runs"), "--processes")
    assert proc.returncode == 0, proc.stderr
    results = json.loads((only_run_dir(tmp_path / "runs") / "results.json").read_text())
    check_results(results, rounds=2, hmus=3)
    assert results["update_encryption"]["kind"] == "neural"
    leakage = results["leakage"]
    assert leakage["insider"] == "hmu-01" and leakage["victim_blocks"] % 2 == 0  # 2 victims
    assert leakage["keyed"] is keyed and results["rejected"] == {}
    for figure in ("fresh_attacker", "co_trained_adversary", "decoder_recovers"):
        assert 0 <= leakage[figure] <= 100
    assert 0 < leakage["decoder_gain"] <= 1  # the keyed run's server divided it out
    # the ciphertext replaced the weights on the wire: blocks of 128 float32 and a scale
    assert all(r["bytes_up"] < 3 * 30_000 for r in results["rounds"])
