"""`faceparse check-data`, `faceparse stats` and `faceparse pack`: thin layers over faceparse.data.check and
faceparse.data.packed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from faceparse.cli import app
from faceparse.cli.common import console, friendly_errors, progress, progress_bar

if TYPE_CHECKING:
    from faceparse.data.check import CheckReport

out = Console()  # results go to stdout; progress and errors to stderr (cli.common.console)

_SPLIT_HEADINGS = {"train": "Train set", "val": "Validation set", "test": "Test set", "total": "Total"}


def _run_check(root: Path, splits: list[str] | None, workers: int | None) -> CheckReport:
    from faceparse.data.check import check_dataset

    with progress_bar(f"checking {root.name}", transient=True) as on_progress:
        return check_dataset(root, splits or None, workers=workers, on_progress=on_progress)


def _class_table(report: CheckReport, title: str) -> Table:
    scheme = report.scheme
    assert scheme is not None
    table = Table("id", "class", "pixels", "share", "images", title=title)
    pixels, images, shares = report.class_pixels(), report.class_images(), report.class_shares()
    for i, name in enumerate(scheme.classes):
        table.add_row(str(i), name, f"{pixels[i]:,}", f"{100 * shares[i]:.2f}%", f"{images[i]:,}")
    ignored = report.ignored_pixels()
    if ignored:
        table.add_row("255", "(ignore)", f"{ignored:,}", "", "")
    return table


def _split_table(report: CheckReport) -> Table:
    table = Table("split", "samples", "with depth", title="splits")
    for split, n in report.split_counts.items():
        table.add_row(split, f"{n:,}", f"{report.depth_counts.get(split, 0):,}")
    return table


def _print_problems(report: CheckReport) -> None:
    for p in report.problems:
        colour = "red" if p.severity == "error" else "yellow"
        # soft_wrap: a long path stays on one line (greppable), whatever the terminal width
        out.print(
            f"[{colour}]{p.severity}[/{colour}] {escape(str(p.path))}: {escape(p.message)}", soft_wrap=True
        )


@app.command("check-data")
@friendly_errors
def check_data(
    root: Path = typer.Argument(
        ..., help="Dataset folder (faceparse layout, a packed one, or the authors' released depth layout)."
    ),
    split: list[str] = typer.Option(
        None, "--split", "-s", help="Check only this split (repeatable); default: all."
    ),
    workers: int = typer.Option(None, min=1, help="Decoding threads (default: CPU count + 1, at most 8)."),
) -> None:
    """Validate a dataset: every bad file is named; exit code 1 when anything is wrong."""
    report = _run_check(root, split, workers)
    if report.scheme is not None:
        out.print(_class_table(report, f"{root} ({report.layout} layout, scheme {report.scheme.name})"))
        out.print(_split_table(report))
    _print_problems(report)
    n_err, n_warn = len(report.errors), len(report.warnings)
    if n_err:
        out.print(
            f"[red]FAILED[/red]: {n_err} error(s), {n_warn} warning(s) in {report.checked} samples",
            soft_wrap=True,
        )
        raise typer.Exit(1)
    out.print(f"[green]OK[/green]: {report.checked} samples, {n_warn} warning(s)", soft_wrap=True)


@app.command("pack")
@friendly_errors
def pack(
    data: Path = typer.Argument(..., help="Dataset folder (faceparse layout) to pack."),
    packed: Path = typer.Option(
        ..., "--out", "-o", help="Packed folder to write; re-running on an interrupted one resumes it."
    ),
    size: int = typer.Option(
        None, "--size", min=1, help="Resize every sample to N×N (needed when a split's sizes differ)."
    ),
    chunk_size: int = typer.Option(
        None,
        "--chunk-size",
        min=1,
        help="Samples per chunk file (default 256; a resumed pack keeps its own).",
    ),
    split: list[str] = typer.Option(
        None, "--split", "-s", help="Pack only this split (repeatable); default: all."
    ),
    workers: int = typer.Option(None, min=1, help="Decoding threads (default: CPU count + 1, at most 8)."),
) -> None:
    """Pack a dataset into chunked, memory-mapped numpy arrays: read with no decoding (feeding GPUs)."""
    from faceparse.data.packed import pack_dataset

    with progress_bar(f"packing {data.name}") as on_progress:
        manifest = pack_dataset(
            data, packed, size=size, chunk_size=chunk_size, splits=split or None, workers=workers,
            on_progress=on_progress,
        )  # fmt: skip
    disk = sum(f.stat().st_size for f in packed.rglob("*.npy"))
    counts = ", ".join(f"{name} {info.count:,}" for name, info in manifest.splits.items())
    out.print(
        f"[green]packed[/green] {escape(str(data))} → {escape(str(packed))}: {counts} "
        f"({disk / 2**20:,.1f} MiB in chunks of {manifest.chunk_size})",
        soft_wrap=True,
    )


@app.command("stats")
@friendly_errors
def stats(
    root: Path = typer.Argument(..., help="Dataset folder."),
    workers: int = typer.Option(None, min=1, help="Decoding threads (default: CPU count + 1, at most 8)."),
    framing: int = typer.Option(
        0,
        "--framing",
        min=0,
        help="Also measure the framing on the first N test images: inter-ocular distance / width by "
        "MediaPipe's face mesh (needs faceparse[depth]); CelebA-HQ measures 0.24.",
    ),
) -> None:
    """Print the dataset's Table-1 row (paper Table 1: train/val/test/total) and per-class pixel shares."""
    if framing:
        _print_framing(root, framing)
    report = _run_check(root, None, workers)
    if report.scheme is None:  # not a dataset at all: the check has said why
        _print_problems(report)
        raise typer.Exit(1)
    row = report.table1_row()
    table = Table("Dataset", *(_SPLIT_HEADINGS[k] for k in row), title="Table 1 row")
    table.add_row(report.root.name, *(f"{v:,}" for v in row.values()))
    out.print(table)
    out.print(_class_table(report, f"class pixel shares ({report.scheme.name})"))
    if report.errors:
        console.print(
            f"[yellow]warning:[/yellow] {len(report.errors)} problem(s) found; "
            f"run `faceparse check-data {escape(str(root))}`",
            soft_wrap=True,
        )


def _print_framing(root: Path, limit: int) -> None:
    from faceparse.data.framing import CELEBA_HQ_IOD, dataset_images, measure_framing

    count, images = dataset_images(root, "test", limit)
    with progress(transient=True) as bar:
        task = bar.add_task("face mesh", total=count, info="")
        report = measure_framing(images, on_image=lambda: bar.advance(task))
    table = Table("measure", "value", title=f"framing of {root.name} (test split, {count} images)")
    table.add_row("inter-ocular distance / width, median", f"{report.median:.3f}")
    for q, v in report.quantiles().items():
        table.add_row(f"  quantile {q:g}", f"{v:.3f}")
    table.add_row("faces found / missed", f"{len(report.iod)} / {len(report.missed)}")
    table.add_row("CelebA-HQ (FACTS §5b)", " / ".join(f"{v:.3f}" for v in CELEBA_HQ_IOD))
    out.print(table)
