"""The project installs as one import package, ``iomt``, and no module loads under two names."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = [
    "adversary",
    "broker",
    "fedlearn",
    "hmu_agent",
    "monitoring",
    "qkd_channel",
    "scenarios",
    "server_agent",
    "traffic",
    "wire",
    "iomt_testbed",
]


def tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [name for name in out.split("\0") if name]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the tracked files (the checkout stays untouched)."""
    src = tmp_path_factory.mktemp("src")
    for name in tracked_files():
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(src)],
        check=True, capture_output=True,
    )  # fmt: skip
    (found,) = out.glob("*.whl")
    return found


def test_the_wheel_installs_one_top_level_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    dist_info = {t for t in tops if t.endswith(".dist-info")}
    assert len(dist_info) == 1
    assert tops - dist_info == {"iomt"}


def test_the_wheel_keeps_every_module_and_data_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "iomt/errors.py" in names
    assert "iomt/broker/acl.py" in names
    assert "iomt/qkd_channel/eve/usd.py" in names
    assert "iomt/scenarios/quickstart.yaml" in names
    assert "iomt/scenarios/scenario.schema.json" in names  # the modelines point at it
    assert "iomt/monitoring/grafana/dashboards/qkd.json" in names
    tracked = {n for n in tracked_files() if n.endswith(".py") and n.split("/")[0] in FOLDERS}
    packaged = {n.removeprefix("iomt/") for n in names if n.endswith(".py")}
    expected = {n.replace("iomt_testbed/", "", 1) for n in tracked}
    assert expected == packaged


def module_names() -> list[str]:
    """Every ``iomt`` module, from the folders' files."""
    names = []
    for path in tracked_files():
        parts = path.removesuffix(".py").split("/")
        if not path.endswith(".py") or parts[0] not in FOLDERS:
            continue
        parts[0] = "iomt" if parts[0] == "iomt_testbed" else f"iomt.{parts[0]}"
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


def test_no_module_loads_under_a_bare_name() -> None:
    """Import every module from the checkout, where the bare folders are importable too."""
    modules = module_names()
    probe = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"bare = sorted(m for m in sys.modules if m.split('.')[0] in {FOLDERS!r})\n"
        "print(len(sys.modules), ','.join(bare))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    count, _, bare = out.stdout.strip().partition(" ")
    assert int(count) > len(modules)
    assert bare == ""
