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

__all__ = [
    "check_device",
    "console",
    "fail",
    "friendly_errors",
    "interrupted",
    "positive",
    "progress",
    "progress_bar",
    "resumable",
]

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: object, code: int = 2) -> typer.Exit:
    """Print ``error: message`` (rich markup escaped, so ``[depth]`` survives); return the Exit to raise."""
    console.print(f"[red]error:[/red] {escape(str(message))}")
    return typer.Exit(code)


def check_device(value: str | None) -> str | None:
    """typer callback of ``--device``: a torch device this build and machine can use, else a BadParameter
    saying why (so ``--device cuda:7`` on a CPU build ends with a message, not a traceback)."""
    if value is None:
        return None
    import torch

    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        raise typer.BadParameter(f"{value!r} is not a torch device (e.g. cpu, cuda, cuda:0)") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise typer.BadParameter(
                f"{value}: no CUDA device here (torch {torch.__version__}); use --device cpu"
            )
        if device.index is not None and device.index >= count:
            raise typer.BadParameter(
                f"{value}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
            )
        return value
    try:  # other device types: usable if a tensor can live there
        torch.empty(0, device=device)
    except Exception as e:  # RuntimeError, AssertionError ("not compiled with ..."), backend errors
        raise typer.BadParameter(f"{value}: not usable here ({e})") from None
    return value


def positive(value: float | None) -> float | None:
    """typer callback of a number that must be > 0 (None passes: the option's own default applies)."""
    if value is not None and value <= 0:
        raise typer.BadParameter(f"must be > 0, got {value}")
    return value


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
