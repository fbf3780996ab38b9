"""Shared CLI plumbing: rich console, progress bars, and turning DataError into a clean exit."""

from __future__ import annotations

import functools
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.markup import escape

from faceparse.utils.io import DataError
from faceparse.utils.progress import console, progress, progress_bar

__all__ = ["console", "fail", "friendly_errors", "interrupted", "progress", "progress_bar", "resumable"]

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: object, code: int = 2) -> typer.Exit:
    """Print ``error: message`` (rich markup escaped, so ``[depth]`` survives); return the Exit to raise."""
    console.print(f"[red]error:[/red] {escape(str(message))}")
    return typer.Exit(code)


def interrupted(note: str = "") -> typer.Exit:
    """Print ``interrupted[: note]``; return the Exit (code 130, as a shell reports Ctrl-C) to raise."""
    # the command is over: a further Ctrl-C must not add a traceback to the message
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    console.print(f"[yellow]interrupted[/yellow]{': ' + escape(note) if note else ''}")
    return typer.Exit(130)


@contextmanager
def resumable(out: Path) -> Iterator[None]:
    """A Ctrl-C in the block ends the command cleanly (exit code 130), saying that a rerun resumes ``out``."""
    try:
        yield
    except KeyboardInterrupt:
        raise interrupted(f"{out} keeps what was finished; run the same command again to resume") from None


def friendly_errors(fn: F) -> F:
    """Report DataError / FileNotFoundError as one red line and exit code 2, and Ctrl-C as ``interrupted``
    with exit code 130 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (DataError, FileNotFoundError) as e:
            raise fail(e) from None
        except KeyboardInterrupt:
            raise interrupted() from None

    return wrapper  # type: ignore[return-value]
