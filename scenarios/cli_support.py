"""What every ``iomt`` command shares: one-line errors with exit codes, and --debug."""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

import typer

from iomt.errors import TestbedError

F = TypeVar("F", bound=Callable[..., Any])


DEBUGGING: ContextVar[bool] = ContextVar("iomt_debugging", default=False)
"""Whether this invocation asked for ``--debug`` (tracebacks instead of one line); set by
the root command for the invocation's context, never a module-wide switch."""


def debugging() -> bool:
    return DEBUGGING.get()


def fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def guarded(fn: F) -> F:
    """Turn the testbed's errors into one line and an exit code; keep tracebacks for --debug."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TestbedError as exc:
            if debugging():
                raise
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:  # a bug: say so plainly, keep the details for --debug
            if debugging():
                raise
            raise fail(
                f"internal error: {type(exc).__name__}: {exc} (rerun with --debug)", 1
            ) from None

    return wrapper  # type: ignore[return-value]
