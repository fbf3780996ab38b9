"""Progress reporting: one callback convention for library code, and the rich bars the CLI draws.

The convention. A long library job (converting a raw dataset, generating the synthetic set, importing or
estimating depth, checking a dataset) takes a keyword argument ``on_progress: OnProgress | None = None``
and never draws anything itself. When given, the callback is called as ``on_progress(done, total, info)``:

* once before the work starts, with ``done`` = the units already finished (0, or on a resumed run the
  units that already existed and will be skipped), so a bar shows the total and the resumed state at once;
* then after each unit of work (a sample, an image, a depth map);

where ``done`` counts the units finished so far (including those skipped because they already existed;
it never decreases and ends at ``total``), ``total`` is the number of units, and ``info`` is a short free
text for the bar's last column, such as ``"3 bad"`` or ``"192px, 2 workers"`` (``""`` when there is
nothing to say). The callback runs in the calling process, between units; it should be cheap.

Drawing. :func:`progress_bar` turns a description into a rich bar driving such a callback; the CLI and
the workflow drivers use it around a library call::

    with progress_bar("synth") as on_progress:
        generate_dataset(out, num, on_progress=on_progress)

:func:`progress` is the underlying bar factory (description, bar, n/N, elapsed, ETA, info) and
:data:`console` the one rich console (stderr) that bars and CLI messages share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TypeAlias

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["OnProgress", "ProgressFactory", "console", "progress", "progress_bar"]

OnProgress: TypeAlias = Callable[[int, int, str], None]
# description → a context yielding the callback (or None: no bar); :func:`progress_bar` is one. Jobs made
# of several parts (the training stages) take a factory and open one bar per part.
ProgressFactory: TypeAlias = Callable[[str], AbstractContextManager[OnProgress | None]]
"""``on_progress(done, total, info)``: see the module docstring."""

console = Console(stderr=True)


def progress(transient: bool = False, disable: bool = False) -> Progress:
    """The standard progress bar: description, bar, n/N, elapsed, ETA, and a free ``info`` field."""
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
        disable=disable,
    )


@contextmanager
def progress_bar(
    description: str, enabled: bool = True, *, transient: bool = False
) -> Iterator[OnProgress | None]:
    """A rich bar labelled ``description``, driven by the :data:`OnProgress` callback this yields.

    Yields None when not ``enabled`` (library functions then report nothing). The bar's task is created
    at the first call, so it appears when the work starts, already showing a resumed run's progress;
    ``transient`` clears the bar when the block ends.
    """
    if not enabled:
        yield None
        return
    with progress(transient=transient) as bar:
        task: TaskID | None = None

        def on_progress(done: int, total: int, info: str) -> None:
            nonlocal task
            if task is None:
                task = bar.add_task(description, total=total, completed=done, info=info)
            else:
                bar.update(task, completed=done, total=total, info=info)

        yield on_progress
