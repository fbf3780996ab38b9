"""The video branch of `faceparse predict`: a video file, or a folder of frames read as a clip."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from faceparse.cli.common import console, fail, progress_bar, resumable
from faceparse.inference.predictor import FaceParser


def predict_clip(
    parser: FaceParser,
    source: Path,
    out: Path,
    *,
    fps: float | None,
    detect: bool,
    overwrite: bool,
    max_pixels: int | None,
    max_side: int | None,
) -> None:
    """Parse a clip with a progress bar; a video that ends before its declared length is reported."""
    from faceparse.inference.detect import DetectorUnavailable
    from faceparse.inference.video import predict_video

    if parser.modality != "rgb":
        raise typer.BadParameter("video and frame-folder input is RGB only", param_hint="--modality")
    try:
        with resumable(out), progress_bar(f"parsing {source.name}") as on_progress:
            report = predict_video(
                parser,
                source,
                out,
                fps=fps,
                detect=detect,
                overwrite=overwrite,
                max_pixels=max_pixels,
                max_side=max_side,
                on_progress=on_progress,
            )
    except DetectorUnavailable as e:
        raise fail(e) from None
    console.print(
        f"{report.frames} frames ({report.parsed} parsed, {report.kept} kept from an earlier run): "
        f"label maps in {escape(str(report.labels))}, overlay video {escape(str(report.overlay))}, "
        f"summary {escape(str(report.summary))}",
        soft_wrap=True,
    )
    for problem in report.problems:
        console.print(f"[yellow]warning:[/yellow] {escape(problem)}", soft_wrap=True)
