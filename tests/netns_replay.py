"""Live-traffic tests: a watcher in one network namespace, a replay into it from another."""

from __future__ import annotations

import select
import subprocess
import time
from collections.abc import Callable


def ready(proc: subprocess.Popen, timeout: float) -> bool:
    """Whether ``proc`` printed ``ready`` within ``timeout`` seconds."""
    readable, _, _ = select.select([proc.stdout], [], [], timeout)
    return bool(readable) and proc.stdout.readline().strip() == "ready"  # type: ignore[union-attr]


def replay_while_watching(
    watcher: subprocess.Popen, start_replay: Callable[[], subprocess.Popen], timeout: float = 60
) -> tuple[str, str]:
    """Once ``watcher`` is ready, run the replay; both must exit 0.  Returns the replay's
    stdout and the watcher's last line; kills whichever is still running on the way out."""
    replay = None
    try:
        assert ready(watcher, timeout), watcher.stderr.read() if watcher.poll() is not None else ""
        time.sleep(0.2)  # the watcher's socket is open before "ready"; let it settle
        replay = start_replay()
        sent, err = replay.communicate(timeout=timeout)
        assert replay.returncode == 0, err
        got, err = watcher.communicate(timeout=timeout)
        assert watcher.returncode == 0, err
    finally:
        for proc in (watcher, replay):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    return sent, got.strip().splitlines()[-1]
