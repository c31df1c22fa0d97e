"""The comparison table: mean ± std per column over seeds, and its three files."""

from pathlib import Path

import pytest

from iomt.scenarios.compare import run_figures, summarise, write_csv, write_markdown, write_plot


def results(acc, eps=None, tp=0, fn=0, fp=0, tn=5):
    privacy = {"hmu-01": {"epsilon_total": eps}} if eps is not None else {}
    return {
        "final": {
            "accuracy": acc,
            "precision": 0.5,
            "recall": 0.4,
            "f1": 0.44,
            "macro_f1": 0.7,
            "detection_time_ms": 0.01,
        },
        "rounds": [{"bytes_up": 100, "bytes_down": 300}, {"bytes_up": 200, "bytes_down": 400}],
        "privacy": privacy,
        "poisoning": {
            "tp": tp,
            "fn": fn,
            "fp": fp,
            "tn": tn,
            "tpr": tp / (tp + fn) if tp + fn else 0.0,
            "fpr": fp / (fp + tn),
        },
    }


def test_figures_apply_only_where_defined():
    plain = run_figures(results(0.9))
    assert plain["epsilon_total"] is None and plain["tpr"] is None
    assert plain["bytes_per_round"] == pytest.approx(500)
    attacked = run_figures(results(0.9, eps=15.0, tp=3, fn=1, fp=1, tn=15))
    assert attacked["epsilon_total"] == 15.0 and attacked["tpr"] == 0.75


def test_poison_resilience_against_the_same_seed_of_the_baseline():
    attacked = [results(0.45), results(0.90)]
    clean = [results(0.90), results(0.90)]
    row = summarise("attacked", [1, 2], attacked, clean)
    assert row.mean["resilience"] == pytest.approx(0.75)
    assert summarise("attacked", [1, 2], attacked).mean["resilience"] is None


def test_mean_and_sample_std_over_seeds(tmp_path: Path):
    row = summarise("s", [1, 2, 3], [results(0.90), results(0.92), results(0.94)])
    assert row.mean["accuracy"] == pytest.approx(0.92)
    assert row.std["accuracy"] == pytest.approx(0.02)
    assert row.mean["epsilon_total"] is None
    md = write_markdown([row], tmp_path / "c.md").read_text()
    assert "0.9200 ± 0.0200" in md and "| s | 3 |" in md
    csv_text = write_csv([row], tmp_path / "c.csv").read_text()
    assert csv_text.splitlines()[0].startswith("scenario,seeds,accuracy_mean,accuracy_std")
    png = write_plot([row], tmp_path / "c.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
