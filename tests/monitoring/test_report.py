"""The run report renders, and headless Chromium loads every plot and shows the key numbers."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from iomt.monitoring.report import REPORT_FILE, render_report

HMUS = [f"hmu-{i:02d}" for i in range(1, 6)]


def results_fixture(with_qkd: bool) -> dict[str, Any]:
    """A results.json as ``build_results`` writes it (plus later sections)."""
    rng = np.random.default_rng(7)
    rounds = []
    for r in range(1, 6):
        acc = 0.80 + 0.03 * r
        rounds.append({
            "round": r, "selected": HMUS, "received": HMUS[:4] if r == 3 else HMUS,
            "timed_out": r == 3, "accuracy": acc, "precision": acc - 0.1, "recall": acc - 0.05,
            "f1": acc - 0.08, "loss": 0.5 / r, "duration_s": 0.4 + 0.01 * r,
            "bytes_up": 5 * 27_412, "bytes_down": 6 * 27_388,
        })  # fmt: skip
    results: dict[str, Any] = {
        "scenario": "fedq-eve", "run_id": "fedq-eve-20260101-120000-ab12", "seed": 7,
        "mode": "in-process",
        "broker": {"kind": "mosquitto", "url": "mqtt://127.0.0.1:41883", "tls": False},
        "data": {"dataset": "wustl-ehms-2020.csv", "rows": 16318, "features": ["SrcBytes"],
                 "keep_identifiers": False, "test_rows": 3264},
        "completed": True, "reason": "5 rounds done", "rounds": rounds,
        "final": {"accuracy": 0.9731, "precision": 0.8812, "recall": 0.9023, "f1": 0.8916,
                  "macro_f1": 0.9390, "fpr": 0.0171, "roc_auc": 0.9822, "loss": 0.0934,
                  "detection_time_ms": 0.0042, "confusion": [[2805, 49], [40, 370]], "n": 3264},
        "rejected": {"AuthenticationError": 3},
        "hmus": {h: {"state": "done", "rounds_trained": 5, "rejected": {}} for h in HMUS},
        "wall_time_s": 4.321,
    }  # fmt: skip
    if with_qkd:
        results["qkd_threshold"] = 0.11
        results["qkd"] = {
            h: {"qber": q, "qber_upper": q + 0.02, "conclusive_rate": 0.25, "sifted_bits": 1800,
                "leaked_bits": 420, "final_key_bits": 0 if q > 0.11 else 512,
                "status": "isolated" if q > 0.11 else "accepted",
                "reason": "QBER bound above threshold" if q > 0.11 else "", "sessions": 2,
                "link": {"eta": 0.9}}
            for h, q in zip(HMUS[:4], [0.02, 0.031, 0.24, 0.018], strict=True)
        }  # fmt: skip
        results["qkd"]["hmu-05"] = {"status": "no-session", "link": {}}
        results["isolated"] = ["hmu-03"]
        results["qkd_keying_s"] = [0.42]
        for record in rounds:
            record["trust"] = {h: float(rng.uniform(0.6, 1.0)) for h in HMUS if h != "hmu-03"}
            record["flagged"] = ["hmu-05"] if record["round"] >= 4 else []
    return results


def write_run(tmp_path: Path, results: dict[str, Any]) -> Path:
    run_dir = tmp_path / results["run_id"]
    run_dir.mkdir()
    (run_dir / "results.json").write_text(json.dumps(results, indent=2))
    return run_dir


class _Attrs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.body: dict[str, str | None] = {}
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self.body = dict(attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


PROBE = """
<img id="control" src="plots/no-such-plot.png" alt="a broken image, on purpose">
<script>
window.addEventListener("load", function () {
  var seen = Array.prototype.map.call(document.images, function (img) {
    return {id: img.id, src: img.getAttribute("src"), complete: img.complete,
            width: img.naturalWidth, height: img.naturalHeight};
  });
  document.body.setAttribute("data-images", JSON.stringify(seen));
});
</script>
"""


def load_in_chromium(report: Path, tmp_path: Path) -> tuple[list[dict[str, Any]], str]:
    """Open a copy of the report with a probe in headless Chromium; images and page text."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("the report test needs Chromium: apt-get install chromium", pytrace=False)
    page = report.with_name("probe.html")
    page.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    cmd = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--disable-extensions", f"--user-data-dir={tmp_path / 'chromium'}",
        "--virtual-time-budget=5000", "--dump-dom", page.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    parser = _Attrs()
    parser.feed(done.stdout.decode())
    assert parser.body.get("data-images"), done.stdout.decode()[-2000:]
    return json.loads(parser.body["data-images"] or "[]"), " ".join(parser.text)


def test_full_report_loads_every_plot_in_a_browser(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, results_fixture(with_qkd=True))
    report = render_report(run_dir)
    assert report == run_dir / REPORT_FILE
    images, text = load_in_chromium(report, tmp_path)
    control = [i for i in images if i["id"] == "control"]
    plots = [i for i in images if i["id"] != "control"]
    assert control and control[0]["width"] == 0  # the probe does see a broken image
    assert sorted(i["src"] for i in plots) == [
        "plots/confusion.png", "plots/qber.png", "plots/scores.png", "plots/traffic.png",
        "plots/trust.png",
    ]  # fmt: skip
    for img in plots:
        assert img["complete"] and img["width"] > 200 and img["height"] > 200, img
    run_id = "fedq-eve-20260101-120000-ab12"
    for number in ("0.9731", "0.8916", "0.8812", "0.9023", "0.9822", "4.3210", "0.9500", run_id,
                   "AuthenticationError"):  # fmt: skip
        assert number in text, number
    assert "omitted" not in text
    assert "red: link refused (HMU isolated); grey: no finished key session" in text


def test_plots_without_data_are_omitted_with_a_note(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, results_fixture(with_qkd=False))
    images, text = load_in_chromium(render_report(run_dir), tmp_path)
    plots = sorted(i["src"] for i in images if i["id"] != "control")
    assert plots == ["plots/confusion.png", "plots/scores.png", "plots/traffic.png"]
    assert all(i["width"] > 200 for i in images if i["id"] != "control")
    assert "QBER of each HMU's QKD link: omitted" in text
    assert "Trust of each HMU per round: omitted" in text
    assert not (run_dir / "plots" / "qber.png").exists()


def test_a_run_that_never_finished_a_round_still_has_a_report(tmp_path: Path) -> None:
    results = copy.deepcopy(results_fixture(with_qkd=False))
    results.update(rounds=[], completed=False, reason="no HMU came online")
    results["final"].pop("confusion")
    html = render_report(write_run(tmp_path, results)).read_text()
    assert "<img" not in html
    assert html.count(": omitted, ") == 5
    assert "no HMU came online" in html
