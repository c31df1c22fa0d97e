"""The files a local broker of a run reads: password hashes, ACL, TLS material, credentials.

Layout under ``<run_dir>/broker/``::

    passwd             Mosquitto ``$7$`` password hashes, one line per agent
    acl                the run's ACL (see ``iomt.broker.acl``), rewritten on revocation
    credentials.yaml   {agent_id: password} in clear, mode 0600, for agents started as
                       separate processes (the same format an external broker takes)
    tls/               ca.crt, server.crt, server.key when TLS is on
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from iomt.broker.acl import AclRule, acl_for_run, render_mosquitto_acl
from iomt.broker.credentials import Credentials, make_credentials, render_password_file
from iomt.broker.tls import TlsFiles, make_ca_and_server_cert
from iomt.wire import topics


@dataclass(frozen=True)
class BrokerFiles:
    """Where a local broker's generated files are, and the clear-text credentials."""

    directory: Path
    password_file: Path
    acl_file: Path
    credentials_file: Path
    credentials: dict[str, Credentials]
    tls: TlsFiles | None


def agent_ids(hmu_ids: Sequence[str]) -> list[str]:
    """Every agent that gets a credential: the server, the QKD channel and the HMUs."""
    return [topics.SERVER_ID, topics.CHANNEL_ID, *hmu_ids]


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    """Replace ``path`` atomically with ``text``; the file is never readable by others."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_acl(path: Path, rules: Mapping[str, Sequence[AclRule]], mode: int = 0o600) -> None:
    """Write the ACL file atomically, so a broker reloading it never sees half a file."""
    write_private(path, render_mosquitto_acl(rules), mode)


def prepare_broker_files(
    directory: Path,
    run_id: str,
    hmu_ids: Sequence[str],
    *,
    tls: bool,
    rules: Mapping[str, Sequence[AclRule]] | None = None,
) -> BrokerFiles:
    """Create ``directory`` and write fresh credentials, hashes, ACL and (maybe) TLS files.

    ``rules`` (default: ``acl_for_run``'s) is the whole ACL; every account it names gets
    a credential."""
    if rules is None:
        rules = acl_for_run(run_id, hmu_ids)  # validates ids before anything is written
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    credentials = make_credentials(dict.fromkeys([*agent_ids(hmu_ids), *rules]))
    files = BrokerFiles(
        directory=directory,
        password_file=directory / "passwd",
        acl_file=directory / "acl",
        credentials_file=directory / "credentials.yaml",
        credentials=credentials,
        tls=make_ca_and_server_cert(directory / "tls") if tls else None,
    )
    write_private(files.password_file, render_password_file(credentials))
    write_acl(files.acl_file, rules)
    clear = {agent: c.password for agent, c in credentials.items()}
    write_private(files.credentials_file, yaml.safe_dump(clear, sort_keys=False))
    return files
