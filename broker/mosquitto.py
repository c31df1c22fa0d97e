"""Start, reload and stop a real Mosquitto for one run, from a config in the run directory.

Started as root, Mosquitto drops to the ``mosquitto`` account, which gets read access
to the files it needs (``iomt.broker.mosquitto_conf``).  If that account cannot even reach
the run directory (a parent without search permission, as under pytest's
``/tmp/pytest-of-root``), the config says ``user root`` and a warning is logged.
Without root nothing changes hands: the broker runs as the caller.

The broker's stderr (its only log destination) goes to ``<run_dir>/broker/mosquitto.log``
so that a failure can be reported with the tail of the log.  A broker is stopped with
SIGTERM (Mosquitto then saves its persistence file), then SIGKILL after a grace period;
a broker still alive when the interpreter exits, or when the process is killed, is ended
by the reaper (``iomt.orphans``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from iomt.broker.acl import AclRule, acl_for_run
from iomt.broker.bridge import Bridge, render_bridge
from iomt.broker.config import BrokerConfig
from iomt.broker.files import BrokerFiles, prepare_broker_files, write_acl
from iomt.broker.handle import BrokerHandle
from iomt.broker.mosquitto_conf import (
    SERVICE_ACCOUNT,
    can_traverse,
    hand_over,
    max_packet_bytes,
    render_mosquitto_conf,
    service_account,
)
from iomt.broker.ports import accepts_connections, free_port
from iomt.errors import BrokerError
from iomt.orphans import reap_with_me
from iomt.wire import topics

log = logging.getLogger(__name__)

SEARCH_DIRS: tuple[str, ...] = ("/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin")
_READY_MARK = " running"
_RELOAD_MARK = "Reloading config."
_PORT_TAKEN = "Address already in use"
_START_ATTEMPTS = 3
_POLL_S = 0.02


def find_mosquitto() -> str | None:
    """Path of the ``mosquitto`` binary on PATH or in the usual sbin directories."""
    found = shutil.which("mosquitto")
    if found is None:
        found = shutil.which("mosquitto", path=os.pathsep.join(SEARCH_DIRS))
    return found


def _one_line_tail(text: str, lines: int = 4, width: int = 400) -> str:
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    tail = " | ".join(kept) or "(empty log)"
    return tail if len(tail) <= width else "..." + tail[-width:]


class MosquittoBroker:
    """One Mosquitto process serving one run; usable with ``with`` or start/stop by hand.

    ``start()`` blocks until the broker accepts connections; ``start_async()`` waits
    without blocking the event loop.  ``stop()`` is idempotent and safe after a failed
    start.  The files live in ``<run_dir>/broker/``.
    """

    def __init__(
        self,
        config: BrokerConfig,
        run_dir: Path,
        run_id: str,
        hmu_ids: Sequence[str],
        *,
        binary: str | None = None,
        host: str = "127.0.0.1",
        startup_timeout_s: float = 10.0,
        stop_timeout_s: float = 5.0,
        tiers: Mapping[str, Sequence[str]] | None = None,
        bridge: Bridge | None = None,
        observers: Sequence[str] = (),
        also_on: str | None = None,
    ) -> None:
        """``tiers`` maps aggregators to members (``acl_for_run``; default: the server over
        ``hmu_ids``); ``bridge`` makes this a fog broker bridged to the cloud; ``observers``
        may read every run topic; ``also_on``: the plain port on one more address too."""
        if config.url is not None:
            raise BrokerError("broker.url is set: attach to that broker instead of starting one")
        self.config = config
        self.directory = Path(run_dir).resolve() / "broker"
        self.run_id = run_id
        self.hmu_ids = list(hmu_ids)
        self.tiers = tiers
        self.bridge, self.also_on = bridge, also_on
        self.observers = tuple(observers)
        self._revoked: set[str] = set()
        self._rules()  # fail on bad ids before anything starts
        self.binary = binary
        self.host = host
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.conf_file = self.directory / "mosquitto.conf"
        self.log_file = self.directory / "mosquitto.log"
        self.data_dir = self.directory / "data" if config.persistence else None
        self._files: BrokerFiles | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_offset = 0
        self._port = 0
        self._tls_port: int | None = None
        self._deadline = 0.0
        self._attempt = 0
        self._handle: BrokerHandle | None = None
        self._lock = threading.RLock()

    # -- public API ------------------------------------------------------------------

    @property
    def handle(self) -> BrokerHandle:
        if self._handle is None:
            raise BrokerError("the Mosquitto broker is not running")
        return self._handle

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> BrokerHandle:
        """Start Mosquitto and block until it accepts connections."""
        with self._lock:
            try:
                self._launch_first()
                while not self._ready():
                    time.sleep(_POLL_S)
            except BaseException:
                self.stop()
                raise
            return self._started()

    async def start_async(self) -> BrokerHandle:
        """Start Mosquitto and wait, without blocking the loop, until it accepts connections."""
        with self._lock:
            try:
                self._launch_first()
                await self._until_ready()
            except BaseException:
                self.stop()
                raise
            return self._started()

    def died(self) -> bool:
        """Whether the started broker has exited without being stopped."""
        return self._handle is not None and self._proc is not None and self._proc.poll() is not None

    async def restart_async(self) -> None:
        """Start Mosquitto again on the same port(s), from the same files and persistence."""
        with self._lock:
            log.warning("Mosquitto exited; restarting it on port %d", self._port)
            self._deadline = time.monotonic() + self.startup_timeout_s
            self._attempt = _START_ATTEMPTS - 1  # the port is ours: no retry elsewhere
            self._launch(same_ports=True)
            await self._until_ready()

    async def _until_ready(self) -> None:
        while not self._ready():
            await asyncio.sleep(_POLL_S)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_timeout_s``; never leaves the process behind."""
        with self._lock:
            self._handle = None
            self._terminate()
            if self._log is not None:
                self._log.close()
                self._log = None

    def revoke(self, hmu_id: str) -> bool:
        """Withdraw ``hmu_id``'s right to publish its update topic; block until enforced."""
        with self._lock:
            mark = self._begin_revoke(hmu_id)
            deadline = time.monotonic() + self.startup_timeout_s
            while not self._reloaded(mark, deadline):
                time.sleep(_POLL_S)
        log.info("HMU %s may no longer publish updates (Mosquitto ACL reloaded)", hmu_id)
        return True

    async def revoke_async(self, hmu_id: str) -> bool:
        """``revoke`` without blocking the event loop while Mosquitto reloads."""
        with self._lock:
            mark = self._begin_revoke(hmu_id)
            deadline = time.monotonic() + self.startup_timeout_s
            while not self._reloaded(mark, deadline):
                await asyncio.sleep(_POLL_S)
        log.info("HMU %s may no longer publish updates (Mosquitto ACL reloaded)", hmu_id)
        return True

    def __enter__(self) -> BrokerHandle:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _rules(self) -> dict[str, list[AclRule]]:
        rules = acl_for_run(self.run_id, self.hmu_ids, revoked=self._revoked, tiers=self.tiers)
        for observer in self.observers:
            if observer in rules:
                raise BrokerError(f"observer {observer!r} is already an agent of the run")
            rules[observer] = [AclRule("read", f"{topics.run_prefix(self.run_id)}/#")]
        return rules

    # -- start -----------------------------------------------------------------------

    def _launch_first(self) -> None:
        if self._proc is not None:
            raise BrokerError("this Mosquitto broker was already started")
        binary = self.binary or find_mosquitto()
        if binary is None:
            raise BrokerError(
                "no mosquitto binary found: install Mosquitto (Debian: apt-get install "
                "mosquitto) or set broker.kind to 'amqtt'"
            )
        self.binary = binary
        self._files = prepare_broker_files(
            self.directory, self.run_id, self.hmu_ids, tls=self.config.tls, rules=self._rules()
        )
        if self.data_dir is not None:
            self.data_dir.mkdir(exist_ok=True)
            os.chmod(self.data_dir, 0o700)
        self._deadline = time.monotonic() + self.startup_timeout_s
        self._attempt = 0
        self._launch()

    def _launch(self, *, same_ports: bool = False) -> None:
        assert self._files is not None and self.binary is not None
        self._attempt += 1
        try:
            if not same_ports:
                self._port = free_port(self.host)
                self._tls_port = free_port(self.host) if self.config.tls else None
                while self._tls_port == self._port:
                    self._tls_port = free_port(self.host)
        except OSError as exc:
            raise BrokerError(f"cannot listen on {self.host}: {exc.strerror}") from exc
        account = service_account()
        stay_root = account is not None and not can_traverse(self.directory.parent, account)
        if stay_root:
            log.warning(
                "user %r cannot reach %s (a parent directory lacks search permission); "
                "Mosquitto will keep running as root",
                SERVICE_ACCOUNT,
                self.directory,
            )
        conf = render_mosquitto_conf(
            run_id=self.run_id,
            host=self.host,
            port=self._port,
            files=self._files,
            max_packet_size=max_packet_bytes(self.config),
            data_dir=self.data_dir,
            tls_port=self._tls_port,
            stay_root=stay_root,
            bridge=render_bridge(self.bridge) if self.bridge is not None else (),
            also_on=self.also_on,
        )
        self.conf_file.write_text(conf, encoding="utf-8")
        os.chmod(self.conf_file, 0o600)
        if account is not None and not stay_root:
            hand_over(self._files, self.conf_file, self.data_dir, account)
        if self._log is None:
            self._log = open(self.log_file, "ab")  # noqa: SIM115 - closed in stop()
        self._log_offset = self._log.tell()
        self._proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf_file)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            close_fds=True,
        )
        reap_with_me(self._proc.pid)  # even a SIGKILLed launcher leaves no broker behind
        log.debug(
            "started %s (pid %d) on %s:%d", self.binary, self._proc.pid, self.host, self._port
        )

    def _log_text(self, since: int = 0) -> str:
        try:
            with open(self.log_file, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def _ready(self) -> bool:
        """One readiness check; raises BrokerError once the broker cannot come up."""
        assert self._proc is not None
        text = self._log_text(self._log_offset)
        if self._proc.poll() is not None:
            code = self._proc.returncode
            if _PORT_TAKEN in text and self._attempt < _START_ATTEMPTS:
                log.info("port %d was taken before Mosquitto bound it; retrying", self._port)
                self._launch()
                return False
            raise BrokerError(
                f"mosquitto exited with code {code} while starting on {self.host}:{self._port}: "
                f"{_one_line_tail(text)} (log: {self.log_file})"
            )
        # "running" is logged once every listener is open; probing the plain port is
        # enough (a bare probe of the TLS port only adds handshake errors to the log)
        if _READY_MARK in text and accepts_connections(self.host, self._port):
            return True
        if time.monotonic() > self._deadline:
            raise BrokerError(
                f"mosquitto did not accept connections on {self.host}:{self._port} within "
                f"{self.startup_timeout_s:g} s: {_one_line_tail(text)} (log: {self.log_file})"
            )
        return False

    def _started(self) -> BrokerHandle:
        assert self._files is not None and self._proc is not None
        tls = self._files.tls
        self._handle = BrokerHandle(
            kind="mosquitto",
            host=self.host,
            port=self._tls_port if self._tls_port is not None else self._port,
            tls=self._tls_port is not None,
            ca_file=tls.ca_cert if tls is not None else None,
            credentials=dict(self._files.credentials),
            plain_port=self._port,
            log_file=self.log_file,
            revoker=self,
        )
        log.info(
            "Mosquitto (pid %d) serves run %s at %s", self._proc.pid, self.run_id, self._handle.url
        )
        return self._handle

    # -- stop ------------------------------------------------------------------------

    def _terminate(self) -> None:
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=self.stop_timeout_s)
                except subprocess.TimeoutExpired:
                    log.warning("Mosquitto (pid %d) ignored SIGTERM; killing it", proc.pid)
                    proc.kill()
                    proc.wait()
        finally:
            if proc.poll() is None:  # interrupted while waiting: still never leave it behind
                proc.kill()
                proc.wait()
            self._proc = None
        if proc.returncode not in (0, -signal.SIGKILL):
            log.warning("Mosquitto exited with code %s (log: %s)", proc.returncode, self.log_file)

    # -- revocation ------------------------------------------------------------------

    def _begin_revoke(self, hmu_id: str) -> int:
        if hmu_id not in self.hmu_ids:
            raise ValueError(f"{hmu_id!r} is not an HMU of run {self.run_id}")
        if self._proc is None or self._proc.poll() is not None or self._files is None:
            raise BrokerError(f"cannot revoke {hmu_id}: the Mosquitto broker is not running")
        self._revoked.add(hmu_id)
        acl = self._files.acl_file
        owner = acl.stat()
        write_acl(acl, self._rules())
        if os.geteuid() == 0:
            os.chown(acl, owner.st_uid, owner.st_gid)
        os.chmod(acl, stat.S_IMODE(owner.st_mode))
        mark = self._log_text(self._log_offset).count(_RELOAD_MARK)
        self._proc.send_signal(signal.SIGHUP)
        return mark

    def _reloaded(self, mark: int, deadline: float) -> bool:
        """Whether Mosquitto logged a reload after ``mark`` earlier ones (it reloads the
        ACL in the same loop iteration, before it reads the next packet)."""
        text = self._log_text(self._log_offset)
        if text.count(_RELOAD_MARK) > mark:
            return True
        if self._proc is None or self._proc.poll() is not None:
            raise BrokerError(f"Mosquitto died while reloading its ACL: {_one_line_tail(text)}")
        if time.monotonic() > deadline:
            raise BrokerError(f"Mosquitto did not reload its ACL: {_one_line_tail(text)}")
        return False
