"""Tests of the data set download against a real HTTP server on 127.0.0.1 serving copies."""

from __future__ import annotations

import functools
import socket
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from iomt.errors import DataError
from iomt.traffic.fetch import (
    APP_DIR,
    DATASET_NAME,
    EXPECTED_SHA256,
    WUSTL_URL,
    _LineEndings,
    dataset_facts,
    default_dataset_locations,
    default_dataset_path,
    fetch_dataset,
    import_dataset,
    verify_dataset,
)
from iomt.traffic.synthetic import generate
from iomt.traffic.wustl_csv import write_csv


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (base signature)
        pass


@pytest.fixture(scope="module")
def original(dataset_path: Path) -> bytes:
    return dataset_path.read_bytes()


@pytest.fixture(scope="module")
def server(original: bytes, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of an HTTP server holding the data set as published, with CRLF, cut, altered."""
    root = tmp_path_factory.mktemp("served")
    (root / "good.csv").write_bytes(original)
    (root / "crlf.csv").write_bytes(original.replace(b"\n", b"\r\n"))
    (root / "truncated.csv").write_bytes(original[: len(original) // 2])
    # One reading changed, same rows and labels: only the hash can tell.
    at = original.index(b",normal,0\n") - 1
    assert original[at : at + 1].isdigit()
    digit = b"7" if original[at : at + 1] != b"7" else b"8"
    (root / "altered.csv").write_bytes(original[:at] + digit + original[at + 1 :])
    write_csv(generate(2000, np.random.default_rng(0)), root / "synthetic.csv")
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _one_line_error(excinfo: pytest.ExceptionInfo[DataError]) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and message
    return message


@pytest.mark.real_data
def test_published_copy_verifies_and_lands_at_dest(server, original, tmp_path) -> None:
    dest = tmp_path / "data" / "wustl.csv"
    report = fetch_dataset(f"{server}/good.csv", dest, timeout_s=10)
    assert report.path == dest and dest.read_bytes() == original
    assert report.bytes_received == len(original) and not report.crlf_converted
    facts = report.facts
    assert (facts.rows, facts.columns, facts.normal, facts.attack) == (16318, 45, 14272, 2046)
    assert facts.sha256 == EXPECTED_SHA256 and facts.mismatches() == []
    assert sorted(p.name for p in dest.parent.iterdir()) == ["wustl.csv"]  # no temp file left


@pytest.mark.real_data
def test_crlf_copy_verifies_and_is_stored_with_lf(server, original, tmp_path) -> None:
    report = fetch_dataset(f"{server}/crlf.csv", tmp_path / "w.csv", timeout_s=10)
    assert report.crlf_converted
    assert report.bytes_received == len(original) + original.count(b"\n")
    assert (tmp_path / "w.csv").read_bytes() == original


@pytest.mark.real_data
def test_destination_directory_gets_the_standard_name(server, tmp_path) -> None:
    report = fetch_dataset(f"{server}/good.csv", tmp_path, timeout_s=10)
    assert report.path == tmp_path / DATASET_NAME and report.path.is_file()


@pytest.mark.parametrize(
    ("name", "expected", "absent"),
    [
        ("truncated.csv", "rows instead of 16,318", None),
        ("altered.csv", "sha256", "rows instead"),
        ("synthetic.csv", "2,000 rows instead of 16,318", None),
    ],
)
def test_wrong_content_fails_and_leaves_nothing(server, tmp_path, name, expected, absent) -> None:
    dest = tmp_path / "d" / "wustl.csv"
    with pytest.raises(DataError) as excinfo:
        fetch_dataset(f"{server}/{name}", dest, timeout_s=10)
    message = _one_line_error(excinfo)
    assert expected in message and "not WUSTL-EHMS-2020" in message
    if absent:
        assert absent not in message
    assert list(dest.parent.iterdir()) == []


def test_http_404_is_a_one_line_error(server, tmp_path) -> None:
    with pytest.raises(DataError) as excinfo:
        fetch_dataset(f"{server}/missing.csv", tmp_path / "w.csv", timeout_s=10)
    assert "HTTP 404" in _one_line_error(excinfo)
    assert list(tmp_path.iterdir()) == []


def test_failed_fetch_keeps_the_file_already_there(server, tmp_path) -> None:
    dest = tmp_path / "w.csv"
    dest.write_text("previous copy\n")
    with pytest.raises(DataError):
        fetch_dataset(f"{server}/truncated.csv", dest, timeout_s=10)
    assert dest.read_text() == "previous copy\n"
    assert [p.name for p in tmp_path.iterdir()] == ["w.csv"]


def test_unreachable_server_is_a_one_line_error(tmp_path) -> None:
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DataError) as excinfo:
        fetch_dataset(f"http://127.0.0.1:{port}/x.csv", tmp_path / "w.csv", timeout_s=5)
    assert "cannot reach" in _one_line_error(excinfo)
    assert list(tmp_path.iterdir()) == []


def test_silent_server_times_out(tmp_path) -> None:
    with socket.socket() as silent:  # the kernel accepts the connection; nobody answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/x.csv"
        with pytest.raises(DataError) as excinfo:
            fetch_dataset(url, tmp_path / "w.csv", timeout_s=0.3)
    message = _one_line_error(excinfo)
    assert "0.3 s" in message or "timed out" in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.real_data
def test_verify_dataset_names_what_differs(dataset_path, tmp_path) -> None:
    assert verify_dataset(dataset_path).sha256 == EXPECTED_SHA256
    shifted = tmp_path / "shifted.csv"
    lines = dataset_path.read_text().splitlines(keepends=True)
    shifted.write_text(lines[0] + "".join(lines[2:]))  # first row dropped: a normal one
    with pytest.raises(DataError) as excinfo:
        verify_dataset(shifted)
    message = _one_line_error(excinfo)
    assert "16,317 rows" in message and "14,271 normal labels" in message
    assert "attack labels" not in message
    assert shifted.exists()  # verifying never deletes


def test_line_endings_are_converted_across_chunk_boundaries() -> None:
    data = b"a,b\r\n1,2\r\n\r\n3\r4\r\n"
    endings = _LineEndings()
    out = b"".join(endings.feed(data[i : i + 1]) for i in range(len(data))) + endings.flush()
    assert out == b"a,b\n1,2\n\n3\r4\n" and endings.converted  # a lone CR stays
    plain = _LineEndings()
    assert plain.feed(b"x\r") + plain.feed(b"y\n") + plain.flush() == b"x\ry\n"
    assert not plain.converted


@pytest.mark.real_data
def test_facts_hash_is_line_ending_independent(original, tmp_path) -> None:
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(original.replace(b"\n", b"\r\n"))
    assert dataset_facts(crlf).sha256 == EXPECTED_SHA256


def test_default_locations_follow_xdg(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("XDG_DATA_DIRS", f"/opt/a:relative/b:/opt/a:{tmp_path / 'c'}")
    assert default_dataset_path() == tmp_path / "xdg" / APP_DIR / DATASET_NAME
    assert default_dataset_locations() == [
        tmp_path / "xdg" / APP_DIR / DATASET_NAME,
        Path("/opt/a") / APP_DIR / DATASET_NAME,
        tmp_path / "c" / APP_DIR / DATASET_NAME,
    ]
    monkeypatch.setenv("XDG_DATA_HOME", "not/absolute")  # the spec says: ignore it
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_DATA_DIRS")
    assert default_dataset_locations() == [
        tmp_path / "home" / ".local" / "share" / APP_DIR / DATASET_NAME,
        Path("/usr/local/share") / APP_DIR / DATASET_NAME,
        Path("/usr/share") / APP_DIR / DATASET_NAME,
    ]


def test_default_url_is_the_wustl_file() -> None:
    assert WUSTL_URL.startswith("https://www.cse.wustl.edu/~jain/ehms/")
    assert WUSTL_URL.endswith("wustl-ehms-2020_with_attacks_categories.csv")


@pytest.mark.real_data
def test_a_copy_obtained_by_hand_is_verified_and_installed(original, tmp_path) -> None:
    by_hand = tmp_path / "Downloads" / "wustl-ehms-2020_with_attacks_categories.csv"
    by_hand.parent.mkdir()
    by_hand.write_bytes(original.replace(b"\n", b"\r\n"))  # saved on Windows, say
    (tmp_path / "share").mkdir()  # a directory: the file gets the standard name
    report = import_dataset(by_hand, tmp_path / "share")
    assert report.path == tmp_path / "share" / DATASET_NAME
    assert report.path.read_bytes() == original and report.facts.sha256 == EXPECTED_SHA256
    assert by_hand.read_bytes() == original.replace(b"\n", b"\r\n")  # the source untouched


def test_an_import_that_differs_names_what_and_installs_nothing(server, tmp_path) -> None:
    dest = tmp_path / "share" / DATASET_NAME
    cut = tmp_path / "cut.csv"
    write_csv(generate(500, np.random.default_rng(1)), cut)
    with pytest.raises(DataError) as excinfo:
        import_dataset(cut, dest)
    message = _one_line_error(excinfo)
    assert "500 rows instead of 16,318" in message and "nothing installed" in message
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    with pytest.raises(DataError, match="no such file"):
        import_dataset(tmp_path / "missing.csv", dest)
