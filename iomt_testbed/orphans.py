"""No orphans: the processes a launcher starts (Mosquitto, HMU agents) die with it.

A normal exit stops them in ``finally`` blocks, but a launcher killed with SIGKILL runs
no code at all.  So the first child started also starts a *reaper*: a small process
that reads the pid of every child on its standard input.  When the launcher dies, for
whatever reason, the kernel closes that pipe; the reaper reads end-of-file, sends
SIGTERM to every child still alive, and SIGKILL three seconds later.

``PR_SET_PDEATHSIG`` alone would not do: Mosquitto started as root drops to its own
user, and the kernel clears the parent-death signal on such a change of credentials.
The reaper runs as the launcher's user, and checks each pid's start time before it
signals, so a pid the system has reused for another process is left alone.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import threading
import time

_lock = threading.Lock()
_reaper: subprocess.Popen[bytes] | None = None


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode(errors="replace")
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def reap_with_me(pid: int) -> None:
    """Make sure process ``pid`` does not outlive this one (Linux; elsewhere a no-op)."""
    global _reaper
    started = start_time(pid)
    if started is None:
        return
    with _lock:
        if _reaper is None or _reaper.poll() is not None:
            if _reaper is None:
                atexit.register(_release)
            _reaper = subprocess.Popen(
                [sys.executable, "-m", "iomt.orphans"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C for the launcher is not for the reaper
            )
        assert _reaper.stdin is not None
        try:
            _reaper.stdin.write(f"{pid} {started}\n".encode())
            _reaper.stdin.flush()
        except BrokenPipeError:  # pragma: no cover - the reaper died; nothing left to tell
            _reaper = None


def _release() -> None:
    """At a normal exit: close the reaper's pipe (it ends what is left) and wait for it."""
    reaper = _reaper
    if reaper is None or reaper.stdin is None:
        return
    reaper.stdin.close()
    try:
        reaper.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover - it finishes on its own
        pass


def _signal_all(children: dict[int, str], signum: int) -> None:
    for pid, started in children.items():
        if start_time(pid) == started:
            try:
                os.kill(pid, signum)
            except (ProcessLookupError, PermissionError):
                pass


def _reap(grace_s: float = 3.0) -> None:
    """The reaper: collect ``pid start`` lines until the launcher's end, then end them all."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    children: dict[int, str] = {}
    for line in sys.stdin.buffer:
        fields = line.split()
        if len(fields) == 2 and fields[0].isdigit():
            children[int(fields[0])] = fields[1].decode()
    _signal_all(children, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not any(start_time(p) == s for p, s in children.items()):
            return
        time.sleep(0.05)
    _signal_all(children, signal.SIGKILL)


if __name__ == "__main__":
    _reap()
