"""Does every runtime dependency install from binary wheels on a Raspberry Pi?

Resolves the project's runtime dependencies (``pyproject.toml``, with torch pinned as
``setup.sh`` pins it) for 64-bit ARM Linux (``manylinux`` up to the glibc of Raspberry
Pi OS bookworm, 2.36), CPython 3.11, binary wheels only, with pip's resolver in
``--dry-run`` mode: pip reads each wheel's metadata from the index and downloads and
installs nothing. It exits 1 naming the first package without such a wheel, else lists
every wheel it would take and what weighs on a Pi (CUDA packages pulled by torch).

Run: ``.venv/bin/python -m iomt.scenarios.wheel_check [--arch aarch64] [--python 3.11]``
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GLIBC_MINORS = range(17, 37)  # manylinux_2_17 .. manylinux_2_36 (bookworm's glibc)


def pip_args(arch: str, python: str) -> list[str]:
    """The ``pip install`` options that make pip resolve for ``arch`` and ``python``."""
    platforms = [f"manylinux_2_{m}_{arch}" for m in GLIBC_MINORS] + [f"manylinux2014_{arch}"]
    version = python.replace(".", "")
    return [
        "--dry-run", "--ignore-installed", "--only-binary=:all:",
        *(x for p in platforms for x in ("--platform", p)),
        "--python-version", python, "--implementation", "cp",
        "--abi", f"cp{version}", "--abi", "abi3", "--abi", "none",
    ]  # fmt: skip


def requirements(root: Path = ROOT) -> list[str]:
    """The runtime dependencies, torch pinned as ``setup.sh`` installs it."""
    deps = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    pin = re.search(r'"(torch==[\w.]+)"', (root / "setup.sh").read_text())
    return [pin.group(1) if pin and d.startswith("torch") else d for d in deps]


def missing(stderr: str) -> str | None:
    """The package pip found no wheel for, from its error output."""
    found = re.search(r"No matching distribution found for ([^\s;]+)", stderr)
    return found.group(1) if found else None


@dataclass(frozen=True)
class Wheel:
    name: str
    version: str
    file: str

    @property
    def cuda(self) -> bool:
        return self.name.startswith(("nvidia-", "cuda-", "triton"))


def wheels(report: dict) -> list[Wheel]:
    """What pip's ``--report`` says it would install, refusing anything but wheels."""
    out = []
    for item in report["install"]:
        meta, url = item["metadata"], item["download_info"]["url"]
        file = url.rsplit("/", 1)[-1]
        if not file.endswith(".whl"):
            raise ValueError(f"{meta['name']}: would build from {file}, not a wheel")
        out.append(Wheel(meta["name"], meta["version"], file))
    return sorted(out, key=lambda w: w.name.lower())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="aarch64")
    parser.add_argument("--python", default="3.11")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        report_file = Path(scratch) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "-q", *pip_args(args.arch, args.python),
               "--target", str(Path(scratch) / "t"), "--report", str(report_file),
               *requirements()]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            name = missing(proc.stderr) or proc.stderr.strip().splitlines()[-1]
            sys.exit(f"error: no {args.arch} wheel for Python {args.python}: {name}")
        found = wheels(json.loads(report_file.read_text()))
    for wheel in found:
        print(f"{wheel.name}=={wheel.version}  {wheel.file}")
    heavy = [w.name for w in found if w.cuda]
    print(f"ok: {len(found)} packages, every one a binary wheel for manylinux {args.arch},"
          f" CPython {args.python}")  # fmt: skip
    if heavy:
        print(f"note: torch from PyPI brings {len(heavy)} CUDA packages on {args.arch}"
              f" ({', '.join(heavy[:3])}, ...); on a Pi install torch's CPU wheel first:"
              " pip install torch --index-url https://download.pytorch.org/whl/cpu"
              " (that index is not checked here)")  # fmt: skip


if __name__ == "__main__":
    main()
