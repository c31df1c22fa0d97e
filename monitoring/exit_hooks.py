"""Closing what must not lose data when the process ends: at interpreter exit and on SIGTERM.

``close_at_exit(obj)`` closes ``obj`` (anything with ``close()``) when the interpreter
exits, before ``concurrent.futures`` stops its thread pools; ``exit_on_sigterm()`` makes
SIGTERM end the process the way SIGINT does, so ``finally`` blocks and those hooks run.
"""

from __future__ import annotations

import atexit
import logging
import signal
import threading
import weakref
from types import FrameType
from typing import Protocol

log = logging.getLogger(__name__)


class Closable(Protocol):
    def close(self) -> object: ...


_OPEN: weakref.WeakSet[Closable] = weakref.WeakSet()
_hook_lock = threading.Lock()
_hooked = False


def close_at_exit(obj: Closable) -> None:
    """Close ``obj`` at interpreter exit unless ``forget_at_exit`` was called first."""
    _OPEN.add(obj)
    _register_exit_hook()


def forget_at_exit(obj: Closable) -> None:
    _OPEN.discard(obj)


def _close_open() -> None:
    for obj in list(_OPEN):
        try:
            obj.close()
        except Exception:  # exiting: one failing must not keep another from flushing
            log.exception("closing %r at exit failed", obj)


def _register_exit_hook() -> None:
    """Close what is open at interpreter exit, before ``concurrent.futures`` stops its pools.

    ``threading._register_atexit`` hooks run in ``threading._shutdown``, earlier than
    ``atexit`` functions and in reverse order of registration; registered after
    ``concurrent.futures`` is imported, ours runs while thread pools still accept work.
    """
    global _hooked
    with _hook_lock:
        if _hooked:
            return
        register = getattr(threading, "_register_atexit", None)
        try:
            if register is not None:
                register(_close_open)
            else:  # pragma: no cover - other Python implementations
                atexit.register(_close_open)
        except RuntimeError:  # the interpreter is already shutting down
            return
        _hooked = True


def _raise_exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def exit_on_sigterm() -> bool:
    """Make SIGTERM raise ``SystemExit(143)`` like SIGINT raises ``KeyboardInterrupt``.

    Only in the main thread and only where SIGTERM still has its default action (which
    would end the process without running ``finally`` blocks or exit hooks).  Returns
    whether the handler was installed.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return False
    signal.signal(signal.SIGTERM, _raise_exit)
    return True
