"""Shared CLI plumbing: rich console, progress bars, and turning DataError into a clean exit."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.markup import escape

from faceparse.utils.io import DataError
from faceparse.utils.progress import console, progress, progress_bar

__all__ = ["console", "fail", "friendly_errors", "progress", "progress_bar"]

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: object, code: int = 2) -> typer.Exit:
    """Print ``error: message`` (rich markup escaped, so ``[depth]`` survives); return the Exit to raise."""
    console.print(f"[red]error:[/red] {escape(str(message))}")
    return typer.Exit(code)


def friendly_errors(fn: F) -> F:
    """Report DataError / FileNotFoundError as one red line and exit code 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (DataError, FileNotFoundError) as e:
            raise fail(e) from None

    return wrapper  # type: ignore[return-value]
