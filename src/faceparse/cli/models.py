"""`faceparse models` (list the registry) and `faceparse convert-fpt` (face-parsing.PyTorch → safetensors)."""

from __future__ import annotations

from pathlib import Path

import typer

from faceparse.cli import app
from faceparse.cli.common import console, fail, friendly_errors


@app.command("models")
def models_command(
    count: bool = typer.Option(
        True, "--count/--no-count", help="Count default-configuration parameters (built on the meta device)."
    ),
) -> None:
    """List the registered networks, with their parameter counts at default settings."""
    from rich.table import Table

    from faceparse.models.registry import MODELS, list_models

    table = Table("name", "parameters", "description")
    for name in list_models():
        table.add_row(name, _param_count(name) if count else "-", MODELS[name][1])
    console.print(table)


def _param_count(name: str) -> str:
    import torch

    from faceparse.models.registry import build_model

    try:
        with torch.device("meta"):  # shapes only: no memory, no init cost
            model = build_model(name)
    except ValueError as e:  # e.g. a registered module that is not installed
        return f"unavailable ({e})"
    return f"{sum(p.numel() for p in model.parameters()):,}"


@app.command("convert-fpt")
@friendly_errors
def convert_fpt(
    src: Path = typer.Argument(..., help="Local face-parsing.PyTorch checkpoint, e.g. 79999_iter.pth."),
    dst: Path = typer.Argument(
        ..., help="Output .safetensors file; a .json metadata sidecar is written beside it."
    ),
    in_channels: int = typer.Option(
        3,
        "--in-channels",
        min=1,
        help="Input channels of the converted model; 1 sums the stem's RGB kernels.",
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace DST (and its .json sidecar) if they exist."
    ),
) -> None:
    """Convert face-parsing.PyTorch BiSeNet weights to faceparse safetensors with label-scheme metadata."""
    from faceparse.models.pretrained import convert_face_parsing_pytorch, sidecar_path

    if dst.suffix != ".safetensors":
        raise typer.BadParameter(f"{dst}: the destination must end in .safetensors", param_hint="DST")
    existing = [path for path in (dst, sidecar_path(dst)) if path.exists()]
    if existing and not overwrite:
        raise fail(f"{existing[0]}: already exists; pass --overwrite to replace it")
    info = convert_face_parsing_pytorch(src, dst, in_channels=in_channels)
    console.print(
        f"wrote {dst} and {sidecar_path(dst)}: {info.arch}, {info.num_classes} classes "
        f"({info.label_scheme}), {info.in_channels}-channel input, normalisation {info.normalization}"
    )
