"""`faceparse prepare ...`: convert the official raw datasets into the faceparse layout.

Exit codes: 0 when the conversion completed (bad samples, if any, are listed in a warning summary and
in ``<out>/prepare_report.json``); 2 on a fatal input error, or at the first bad sample with --strict.
"""

from __future__ import annotations

from pathlib import Path

import typer

from faceparse.cli import app
from faceparse.cli.common import console, friendly_errors, progress_bar, resumable

prepare_app = typer.Typer(
    help="Convert raw CelebAMask-HQ / LaPa / Helen downloads into faceparse datasets (resumable).",
    no_args_is_help=True,
)
app.add_typer(prepare_app, name="prepare")

ROOT = typer.Option(..., "--root", help="The raw dataset folder as downloaded and unpacked.")
OUT = typer.Option(..., "--out", help="Output dataset folder (created; an existing one is resumed).")
WORKERS = typer.Option(None, "--workers", min=1, help="Worker processes (default: CPU count, at most 8).")
STRICT = typer.Option(
    False, "--strict", help="Stop with exit code 2 at the first bad sample instead of skipping it."
)
OVERWRITE = typer.Option(False, "--overwrite", help="Re-convert samples already present in --out.")


def _summary(report) -> None:
    """Print the Table-1-style counts and a warning line per bad sample (at most 20)."""
    console.print(report.table())
    bad = report.bad
    if bad:
        console.print(f"[yellow]warning:[/yellow] {len(bad)} sample(s) skipped (see prepare_report.json):")
        for o in bad[:20]:
            console.print(f"  [yellow]{o.split}/{o.sid}[/yellow]: {o.path}: {o.problem}")
        if len(bad) > 20:
            console.print(f"  … and {len(bad) - 20} more")


@prepare_app.command("celebamask-hq")
@friendly_errors
def celebamask_hq(
    root: Path = ROOT,
    out: Path = OUT,
    scheme: str = typer.Option(
        "celebamask13",
        "--scheme",
        help="celebamask13 (the paper's CelebAMask-HQ-D "
        "classes) or celebamask19 (all 18 parts + background).",
    ),
    size: int = typer.Option(
        512, "--size", min=16, help="Label (and image) size; the official masks are 512."
    ),
    partition: Path = typer.Option(
        None, "--partition", help="CelebA's list_eval_partition.txt (default: looked for in --root)."
    ),
    png: bool = typer.Option(False, "--png", help="Store images as lossless PNG instead of JPEG quality 95."),
    workers: int = WORKERS,
    strict: bool = STRICT,
    overwrite: bool = OVERWRITE,
) -> None:
    """CelebAMask-HQ: paint part masks in the official order, resize images, split by CelebA's partition."""
    from faceparse.data.convert.celebamask import SCHEMES, convert_celebamask

    if scheme not in SCHEMES:
        raise typer.BadParameter(f"must be one of {', '.join(SCHEMES)}", param_hint="--scheme")

    with resumable(out), progress_bar("CelebAMask-HQ") as on_progress:
        report = convert_celebamask(
            root,
            out,
            scheme=scheme,
            size=size,
            partition=partition,
            workers=workers,
            strict=strict,
            overwrite=overwrite,
            rgb_ext=".png" if png else ".jpg",
            on_progress=on_progress,
        )
    _summary(report)


@prepare_app.command("lapa")
@friendly_errors
def lapa(
    root: Path = ROOT,
    out: Path = OUT,
    workers: int = WORKERS,
    strict: bool = STRICT,
    overwrite: bool = OVERWRITE,
) -> None:
    """LaPa: native resolution, images copied unchanged, landmarks kept in landmarks/<id>.txt."""
    from faceparse.data.convert.lapa import convert_lapa

    with resumable(out), progress_bar("LaPa") as on_progress:
        report = convert_lapa(
            root, out, workers=workers, strict=strict, overwrite=overwrite, on_progress=on_progress
        )
    _summary(report)


@prepare_app.command("helen")
@friendly_errors
def helen(
    root: Path = ROOT,
    out: Path = OUT,
    drop_hair: bool = typer.Option(
        False, "--drop-hair", help="Helen-D (paper §3.1): hair becomes background, and hair depth is cleared."
    ),
    workers: int = WORKERS,
    strict: bool = STRICT,
    overwrite: bool = OVERWRITE,
) -> None:
    """Helen (SmithCVPR2013): argmax over the 11 soft class maps; exemplars/tuning/testing splits."""
    from faceparse.data.convert.helen import convert_helen

    with resumable(out), progress_bar("Helen-D" if drop_hair else "Helen") as on_progress:
        report = convert_helen(
            root,
            out,
            drop_hair=drop_hair,
            workers=workers,
            strict=strict,
            overwrite=overwrite,
            on_progress=on_progress,
        )
    _summary(report)
