"""Per-agent credentials and the Mosquitto ``$7$`` hash format."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from iomt.broker.credentials import (
    Credentials,
    make_credentials,
    mosquitto_hash,
    parse_password_file,
    render_password_file,
    verify_mosquitto_hash,
)


def test_hash_layout_matches_pbkdf2_sha512() -> None:
    salt = bytes(range(12))
    line = mosquitto_hash("s3cret", salt=salt, iterations=101)
    empty, seven, iterations, salt_b64, digest_b64 = line.split("$")
    assert (empty, seven, iterations) == ("", "7", "101")
    assert base64.b64decode(salt_b64) == salt
    expected = hashlib.pbkdf2_hmac("sha512", b"s3cret", salt, 101)
    assert base64.b64decode(digest_b64) == expected
    assert len(expected) == 64


def test_fresh_salts_and_verification() -> None:
    one, two = mosquitto_hash("pw"), mosquitto_hash("pw")
    assert one != two  # a random 12-byte salt each time
    assert verify_mosquitto_hash("pw", one) and verify_mosquitto_hash("pw", two)
    assert not verify_mosquitto_hash("pw2", one)
    assert not verify_mosquitto_hash("pw", "$6$abc$def")
    assert not verify_mosquitto_hash("pw", "$7$x$AAAA$BBBB")
    assert not verify_mosquitto_hash("pw", "garbage")


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="no mosquitto_passwd")
def test_verifies_what_mosquitto_passwd_writes(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(path), "alice", "wonder land"], check=True)
    hashes = parse_password_file(path.read_text())
    assert verify_mosquitto_hash("wonder land", hashes["alice"])
    assert not verify_mosquitto_hash("wonderland", hashes["alice"])


def test_make_credentials() -> None:
    creds = make_credentials(["server", "hmu-01"])
    assert set(creds) == {"server", "hmu-01"}
    assert creds["hmu-01"].username == "hmu-01"
    assert len(creds["hmu-01"].password) >= 32
    assert creds["server"].password != creds["hmu-01"].password
    assert creds["server"].password not in repr(creds)
    with pytest.raises(ValueError, match="twice"):
        make_credentials(["a", "a"])
    with pytest.raises(ValueError):
        make_credentials(["a:b"])


def test_password_file_round_trip() -> None:
    creds = {"a": Credentials("a", "pa"), "b": Credentials("b", "pb")}
    hashes = parse_password_file("# comment\n\n" + render_password_file(creds))
    assert set(hashes) == {"a", "b"}
    assert verify_mosquitto_hash("pa", hashes["a"])
    assert not verify_mosquitto_hash("pa", hashes["b"])
    with pytest.raises(ValueError, match="line 1"):
        parse_password_file("no-colon-here\n")
