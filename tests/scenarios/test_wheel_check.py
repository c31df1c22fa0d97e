"""The aarch64 wheel check's pure parts: what it asks pip and how it reads the answer."""

import pytest

from iomt.scenarios.wheel_check import missing, pip_args, requirements, wheels


def test_it_resolves_the_runtime_dependencies_with_torch_pinned_as_setup_does():
    deps = requirements()
    (torch,) = [d for d in deps if d.startswith("torch")]
    assert torch.startswith("torch==")
    assert any(d.startswith("qiskit-aer") for d in deps) and not any("pytest" in d for d in deps)


def test_pip_is_asked_for_wheels_of_every_manylinux_up_to_bookworms_glibc():
    args = pip_args("aarch64", "3.11")
    assert "--only-binary=:all:" in args and "--dry-run" in args
    platforms = [args[i + 1] for i, a in enumerate(args) if a == "--platform"]
    assert "manylinux_2_17_aarch64" in platforms and "manylinux_2_36_aarch64" in platforms
    assert "manylinux2014_aarch64" in platforms and "cp311" in args


def test_the_package_without_a_wheel_is_named():
    stderr = (
        "ERROR: Could not find a version that satisfies the requirement foo>=1\n"
        "ERROR: No matching distribution found for foo>=1; platform_system == 'Linux'\n"
    )
    assert missing(stderr) == "foo>=1"
    assert missing("ERROR: something else") is None


def test_the_report_lists_wheels_and_refuses_a_source_build():
    item = lambda name, file: {"metadata": {"name": name, "version": "1.0"},  # noqa: E731
                               "download_info": {"url": f"https://example.org/{file}"}}  # fmt: skip
    numpy = item("numpy", "numpy-1.0-cp311-cp311-manylinux_2_28_aarch64.whl")
    found = wheels({"install": [numpy, item("nvidia-nccl", "nvidia_nccl-1.0-py3-none-any.whl")]})
    assert [w.name for w in found] == ["numpy", "nvidia-nccl"] and found[1].cuda
    with pytest.raises(ValueError, match="foo: would build from foo-1.0.tar.gz"):
        wheels({"install": [item("foo", "foo-1.0.tar.gz")]})
