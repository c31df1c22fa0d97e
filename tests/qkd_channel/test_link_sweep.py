"""``iomt qkd sweep`` and the link options of ``iomt qkd simulate``: B92's textbook
figures on an ideal link, exact binomial intervals, and a scenario's link.

Simulated figures are checked against theory within ``SIGMAS`` binomial standard errors
(seeded sessions of 2^16 qubits)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from iomt.errors import UsageError
from iomt.qkd_channel.link_sweep import clopper_pearson, parse_range
from iomt.scenarios.cli import app
from tests.qkd_channel.helpers import SIGMAS

IDEAL = ["--detector-efficiency", "1", "--dark-count", "0", "--depolarising", "0",
         "--db-per-km", "0"]  # fmt: skip
QUBITS = 2**16


def cli(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result, (json.loads(result.stdout) if result.exit_code == 0 else None)


def test_ranges_include_both_ends_and_bad_ones_are_refused():
    assert parse_range("0:1:0.1", "--fraction") == pytest.approx([i / 10 for i in range(11)])
    assert parse_range("20", "--length-km") == [20.0]
    for bad in ("1:0:0.1", "0:1:0", "a:b:c", "0:1", "0:1000:0.001"):
        with pytest.raises(UsageError, match="--fraction"):
            parse_range(bad, "--fraction")


def test_clopper_pearson_is_the_exact_interval():
    assert clopper_pearson(0, 10) == (0.0, pytest.approx(0.30850, abs=1e-5))  # 1 - 0.025^(1/10)
    assert clopper_pearson(10, 10) == (pytest.approx(0.69150, abs=1e-5), 1.0)
    low, high = clopper_pearson(250, 1000)
    assert low < 0.25 < high and high - low == pytest.approx(
        2 * 1.96 * math.sqrt(0.1875 / 1000), rel=0.05
    )


@pytest.mark.parametrize(
    ("eve", "conclusive", "qber"),
    [(None, 1 / 4, 0.0), ("intercept-resend", 3 / 8, 1 / 3)],  # B92 on an ideal link
)
def test_on_an_ideal_link_the_sweep_meets_b92s_textbook_figures(
    tmp_path: Path, eve, conclusive, qber
):
    axis = ["--length-km", "0:5:5"] if eve is None else ["--eve", eve, "--fraction", "0.5:1:0.5"]
    out = tmp_path / "sweep.png"
    result, report = cli("qkd", "sweep", *axis, *IDEAL, "--qubits", str(QUBITS), "--seed", "3",
                         "--out", str(out), "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    last = report["points"][-1]
    assert last["theory_conclusive"] == pytest.approx(conclusive)
    assert last["theory_qber"] == pytest.approx(qber)
    for p in report["points"]:
        assert p["conclusive_low"] <= p["conclusive_rate"] <= p["conclusive_high"]
        assert p["qber_low"] <= p["qber"] <= p["qber_high"]
        spread = math.sqrt(p["theory_conclusive"] * (1 - p["theory_conclusive"]) / QUBITS)
        assert abs(p["conclusive_rate"] - p["theory_conclusive"]) <= SIGMAS * spread
        sample = 0.1 * p["conclusive_rate"] * QUBITS  # qkd.sample_fraction of the sifted bits
        q_spread = max(math.sqrt(p["theory_qber"] * (1 - p["theory_qber"]) / sample), 1 / sample)
        assert abs(p["qber"] - p["theory_qber"]) <= SIGMAS * q_spread
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_conclusive_rate_falls_with_fibre_length_as_theory_says(tmp_path: Path):
    result, report = cli("qkd", "sweep", "--length-km", "0:60:30", "--qubits", str(QUBITS),
                         "--out", str(tmp_path / "s.png"), "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    rates = [p["conclusive_rate"] for p in report["points"]]
    theory = [p["theory_conclusive"] for p in report["points"]]
    assert rates[0] > rates[1] > rates[2] and theory[2] == pytest.approx(
        theory[0] * 10**-1.2, rel=1e-3
    )  # 0.2 dB/km; dark counts add a little


def test_simulate_takes_a_scenarios_link_and_options_on_top(tmp_path: Path):
    noisy = tmp_path / "noisy.yaml"
    noisy.write_text(yaml.safe_dump({"name": "noisy", "qkd": {"depolarising": 0.2}}))
    args = ["qkd", "simulate", "--qubits", str(QUBITS), "--seed", "1", "--json"]
    _, plain = cli(*args)
    _, from_file = cli(*args, "--scenario", str(noisy))
    _, overridden = cli(*args, "--scenario", str(noisy), "--depolarising", "0.01")
    assert from_file["qber"] > 0.05 > plain["qber"]  # 0.2 depolarising: QBER about 0.1
    assert overridden == plain


def test_usage_errors_are_one_line():
    for args, message in [
        (["--fraction", "0:1:0.5"], "needs --eve"),
        (["--eve", "usd"], "one of --fraction or --length-km"),
        (["--eve", "bogus", "--fraction", "1"], "choose one of"),
    ]:
        result, _ = cli("qkd", "sweep", *args)
        assert result.exit_code == 2 and message in result.output, result.output
