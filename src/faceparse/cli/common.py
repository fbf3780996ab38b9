"""Shared CLI plumbing: rich console, progress bars, and turning DataError into a clean exit."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from faceparse.utils.io import DataError

console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def progress(transient: bool = False) -> Progress:
    """The standard progress bar: description, bar, n/N, elapsed, ETA."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=transient,
    )


def friendly_errors(fn: F) -> F:
    """Report DataError / FileNotFoundError as one red line and exit code 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (DataError, FileNotFoundError) as e:
            console.print(f"[red]error:[/red] {escape(str(e))}")
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]
