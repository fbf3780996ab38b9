"""`faceparse synth`: write a procedural synthetic RGB-D face-parsing dataset (faceparse.data.synth)."""

from __future__ import annotations

from pathlib import Path

import typer

from faceparse.cli import app
from faceparse.cli.common import console, friendly_errors, progress_bar, resumable


@app.command()
@friendly_errors
def synth(
    out: Path = typer.Option(..., "--out", "-o", help="Output dataset folder (created; a rerun resumes it)."),
    num: int = typer.Option(1000, "--num", "-n", min=1, help="Number of samples."),
    size: int = typer.Option(256, "--size", "-s", min=16, help="Image side in pixels (square images)."),
    seed: int = typer.Option(
        0, "--seed", min=0, help="Dataset seed: sample i uses the RNG seeded by (seed, i)."
    ),
    workers: int = typer.Option(
        None,
        "--workers",
        "-w",
        min=1,
        help="Worker processes (default: all CPU cores). Output does not depend on it.",
    ),
    fov: float = typer.Option(
        32.0,
        "--fov",
        min=10.0,
        max=90.0,
        help="Camera vertical field of view in degrees: the framing. The default 32 frames faces like "
        "CelebAMask-HQ (inter-ocular distance / width 0.24); larger values frame them smaller.",
    ),
) -> None:
    """Generate synthetic heads (RGB, depth, celebamask13 labels, metadata) with train/val/test splits."""
    from faceparse.data.synth import generate_dataset

    with resumable(out), progress_bar("synth") as on_progress:
        info = generate_dataset(
            out, num, size=size, seed=seed, workers=workers, fov_deg=fov, on_progress=on_progress
        )
    counts = ", ".join(f"{k} {v}" for k, v in info.counts.items())
    console.print(f"[green]wrote[/green] {out} ({info.scheme}, {size}x{size}; {counts})")
