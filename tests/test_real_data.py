"""The dataset fixture falls back to synthetic data; CI never skips a real-data test."""

from __future__ import annotations

import pytest

from iomt.traffic.dataset import read_wustl_csv
from tests.real_data import ROOT, SYNTHETIC_ROWS, gate

REAL_DATA_TEST = """
import pytest

@pytest.mark.real_data
def test_needs_the_real_file():
    assert True
"""

FIXTURE_TEST = """
from iomt.traffic.dataset import read_wustl_csv

def test_reads_the_dataset(dataset_path):
    table = read_wustl_csv(dataset_path)
    assert "synthetic" in dataset_path.name
    assert len(table) == {rows}
"""


@pytest.mark.parametrize(
    ("has_real", "ci", "verdict"),
    [(True, False, "run"), (True, True, "run"), (False, False, "skip"), (False, True, "fail")],
)
def test_gate(has_real: bool, ci: bool, verdict: str) -> None:
    assert gate(has_real, ci) == verdict


@pytest.fixture
def no_dataset(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytest run that uses this suite's plugin and finds no dataset."""
    monkeypatch.setenv("IOMT_DATASET", str(pytester.path / "absent.csv"))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # so the inner run finds tests.real_data
    pytester.makeconftest('pytest_plugins = ["tests.real_data"]')
    return pytester


def test_without_the_dataset_the_fixture_gives_synthetic_data(no_dataset: pytest.Pytester) -> None:
    no_dataset.makepyfile(FIXTURE_TEST.format(rows=SYNTHETIC_ROWS))
    no_dataset.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_without_the_dataset_a_real_data_test_is_skipped(
    no_dataset: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    no_dataset.makepyfile(REAL_DATA_TEST)
    result = no_dataset.runpytest_subprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*needs the real WUSTL-EHMS-2020 CSV*"])


def test_in_ci_a_real_data_test_fails_rather_than_skips(
    no_dataset: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    no_dataset.makepyfile(REAL_DATA_TEST)
    result = no_dataset.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)  # failed in setup: the run exits non-zero
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*CI is set but the dataset is missing*"])


def test_the_suite_dataset_is_wustl_shaped(dataset_path) -> None:
    table = read_wustl_csv(dataset_path)
    assert len(table) >= 1000
