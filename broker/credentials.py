"""Per-agent MQTT credentials and Mosquitto's PBKDF2-SHA512 password-file format.

Mosquitto 2.0 stores ``username:$7$<iterations>$<base64 salt>$<base64 hash>``, where
hash = PBKDF2-HMAC-SHA512(password, salt, iterations) with a 12-byte salt and a 64-byte
output (RFC 8018, section 5.2); ``mosquitto_passwd`` uses 101 iterations.  Generating
the lines here keeps the testbed independent of the ``mosquitto_passwd`` binary, and
the embedded amqtt fallback verifies the very same lines.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

SALT_BYTES = 12
DEFAULT_ITERATIONS = 101
_PASSWORD_BYTES = 24  # 192 bits of entropy, 32 URL-safe characters


@dataclass(frozen=True)
class Credentials:
    """The username and password one agent connects with (the password is kept out of repr)."""

    username: str
    password: str = field(repr=False)


def make_credentials(agent_ids: Iterable[str]) -> dict[str, Credentials]:
    """A fresh random password for every agent id; the username is the agent id itself."""
    creds: dict[str, Credentials] = {}
    for agent in agent_ids:
        if agent in creds:
            raise ValueError(f"agent id {agent!r} appears twice")
        if not agent or ":" in agent or any(c.isspace() for c in agent):
            raise ValueError(f"agent id {agent!r} cannot be an MQTT username")
        creds[agent] = Credentials(agent, secrets.token_urlsafe(_PASSWORD_BYTES))
    return creds


def mosquitto_hash(
    password: str, salt: bytes | None = None, iterations: int = DEFAULT_ITERATIONS
) -> str:
    """The ``$7$...`` hash Mosquitto 2.0 keeps for ``password`` (the part after ``user:``)."""
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    if salt is None:
        salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return "$7${}${}${}".format(
        iterations, base64.b64encode(salt).decode("ascii"), base64.b64encode(digest).decode("ascii")
    )


def verify_mosquitto_hash(password: str, hashed: str) -> bool:
    """Whether ``password`` matches a ``$7$`` hash; malformed hashes never match."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "7":
        return False
    try:
        iterations = int(parts[2])
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except (ValueError, binascii.Error):
        return False
    if iterations < 1 or not expected:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return hmac.compare_digest(digest, expected)


def render_password_file(credentials: Mapping[str, Credentials]) -> str:
    """The text of a Mosquitto ``password_file`` holding every agent's hashed password."""
    lines = [f"{c.username}:{mosquitto_hash(c.password)}" for c in credentials.values()]
    return "\n".join(lines) + "\n"


def parse_password_file(text: str) -> dict[str, str]:
    """``{username: hash}`` from the text of a password file; blank and ``#`` lines skipped."""
    users: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        username, sep, hashed = line.partition(":")
        if not sep or not username or not hashed:
            raise ValueError(f"password file line {number} is not 'username:hash'")
        users[username] = hashed
    return users
