"""`faceparse depth ...`: add depth to a prepared dataset (released zips, Deep3dPortrait, meshes, offline).

Exit codes: 0 when the job completed (problems are listed as warnings); 2 on a fatal input error, or at
the first bad sample with --strict.
"""

from __future__ import annotations

from pathlib import Path

import typer

from faceparse.cli import app
from faceparse.cli.common import console, fail, friendly_errors, positive, progress_bar
from faceparse.utils.locks import folder_lock

depth_app = typer.Typer(
    help="Build depth maps: import the authors' released depth or Deep3dPortrait outputs, render meshes, "
    "or estimate offline with MediaPipe.",
    no_args_is_help=True,
)
app.add_typer(depth_app, name="depth")

DATA = typer.Option(..., "--data", help="A dataset prepared with `faceparse prepare` (dataset.json).")
KEEP = typer.Option(
    False,
    "--keep-missing",
    help="Keep samples without depth in the splits "
    "(default: drop them, as the paper's Table 1 did; full lists stay in splits/full/).",
)
OVERWRITE = typer.Option(False, "--overwrite", help="Replace depth maps already present.")
STRICT = typer.Option(False, "--strict", help="Stop with exit code 2 at the first bad file.")


def _print_import(report) -> None:
    console.print(report.table())
    problems = report.problems()
    for p in problems[:20]:
        console.print(f"[yellow]warning:[/yellow] {p}")
    if len(problems) > 20:
        console.print(f"  … and {len(problems) - 20} more")
    for s, ids in report.sample_without_depth.items():
        if ids:
            more = f" (+{len(ids) - 10} more)" if len(ids) > 10 else ""
            console.print(
                f"[yellow]{s}: {len(ids)} sample(s) without depth:[/yellow] {', '.join(ids[:10])}{more}"
            )
    if report.depth_without_sample:
        d = report.depth_without_sample
        console.print(f"[yellow]{len(d)} depth file(s) match no sample:[/yellow] {', '.join(d[:10])}")


@depth_app.command("import-released")
@friendly_errors
def import_released_cmd(
    src: Path = typer.Option(
        ..., "--src", help="CelebAMask-HQ-D.zip / LaPa-D.zip / Helen-D.zip, or its unpacked folder."
    ),
    data: Path = DATA,
    keep_missing: bool = KEEP,
    overwrite: bool = OVERWRITE,
    strict: bool = STRICT,
) -> None:
    """Merge the authors' released 8-bit depth into a prepared dataset as 16-bit nearness."""
    from faceparse.depth.released import import_released

    # one writer per dataset folder (faceparse.utils.locks): a second import is refused, naming this one
    with (
        folder_lock(data, "faceparse depth import-released", create=False),
        progress_bar("importing depth") as on_progress,
    ):
        report = import_released(
            src,
            data,
            drop_missing=not keep_missing,
            overwrite=overwrite,
            strict=strict,
            on_progress=on_progress,
        )
    _print_import(report)


@depth_app.command("import-deep3dportrait")
@friendly_errors
def import_deep3dportrait_cmd(
    mats: Path = typer.Option(
        ..., "--mats", help="Deep3dPortrait step-3 output folder (<id>.mat with depth, mask)."
    ),
    data: Path = DATA,
    crops: Path = typer.Option(None, "--crops", help="Step-1 folder with crop_param (default: --mats)."),
    source_width: int = typer.Option(
        None,
        "--source-width",
        min=1,
        help="Width of the images Deep3dPortrait ran on (default: the dataset's rgb/ image).",
    ),
    source_height: int = typer.Option(None, "--source-height", min=1, help="Height of those images."),
    depth_range: float = typer.Option(
        3.0, "--depth-range", callback=positive, help="Metric span (dm) mapped to nearness 1 → 0."
    ),
    keep_missing: bool = KEEP,
    overwrite: bool = OVERWRITE,
    strict: bool = STRICT,
) -> None:
    """Convert Deep 3D Portrait head depth (the paper's model) into the dataset's frame and encoding."""
    from faceparse.depth.deep3dportrait import import_deep3dportrait

    if (source_width is None) != (source_height is None):
        raise typer.BadParameter("give both --source-width and --source-height, or neither")
    size = (source_width, source_height) if source_width is not None else None
    with (
        folder_lock(data, "faceparse depth import-deep3dportrait", create=False),
        progress_bar("Deep3dPortrait depth") as on_progress,
    ):
        report = import_deep3dportrait(
            mats,
            data,
            crops=crops,
            source_size=size,
            depth_range=depth_range,
            drop_missing=not keep_missing,
            overwrite=overwrite,
            strict=strict,
            on_progress=on_progress,
        )
    _print_import(report)


@depth_app.command("from-mesh")
@friendly_errors
def from_mesh_cmd(
    mesh: Path = typer.Option(..., "--mesh", help="Mesh file (.obj, .ply, ... anything trimesh loads)."),
    out: Path = typer.Option(..., "--out", help="Output 16-bit nearness PNG."),
    camera: str = typer.Option(
        ...,
        "--camera",
        help="Camera as a JSON file or inline JSON: fx, fy, cx, cy, width, "
        "height, optional R (3×3 world→camera) and t (3); OpenCV convention.",
    ),
    mask_out: Path = typer.Option(None, "--mask-out", help="Also write the coverage mask (0/255 PNG)."),
    depth_range: float = typer.Option(
        None,
        "--depth-range",
        callback=positive,
        help="Span (mesh units) mapped to nearness 1 → 0 (default: the rendered depth's own span).",
    ),
) -> None:
    """Render a mesh into a depth map with the shared ray-casting renderer."""
    from faceparse.depth.deep3dportrait import depth_from_mesh, load_camera

    cam = load_camera(camera)
    res = depth_from_mesh(mesh, cam, out, mask_out=mask_out, depth_range=depth_range)
    console.print(f"wrote {out} ({cam.width}×{cam.height}, {int(res.mask.sum()):,} surface pixels)")


@depth_app.command("estimate")
@friendly_errors
def estimate_cmd(
    images: Path = typer.Option(..., "--images", help="Folder of RGB images."),
    out: Path = typer.Option(..., "--out", help="Output folder for <stem>.png depth (16-bit nearness)."),
    labels: Path = typer.Option(
        None,
        "--labels",
        help="Folder of <stem>.png label maps: depth is extended over "
        "every labelled pixel, and face coverage is scored.",
    ),
    min_quality: float = typer.Option(
        0.5,
        "--min-quality",
        min=0.0,
        max=1.0,
        help="Discard estimates scoring below this (detector score × face coverage).",
    ),
    overwrite: bool = OVERWRITE,
    strict: bool = STRICT,
) -> None:
    """Offline depth with MediaPipe's face mesh plus a smooth head fill (needs the optional depth extra)."""
    from faceparse.depth.estimate import estimate_folder

    try:
        with folder_lock(out, "faceparse depth estimate"), progress_bar("estimating depth") as on_progress:
            report = estimate_folder(
                images,
                out,
                labels=labels,
                min_quality=min_quality,
                overwrite=overwrite,
                strict=strict,
                on_progress=on_progress,
            )
    except RuntimeError as e:
        raise fail(e) from None
    console.print(report.table())
    for item in [
        *report.bad,
        *(f"no face: {n}" for n in report.no_face),
        *(f"low quality: {q}" for q in report.low_quality),
    ][:20]:
        console.print(f"[yellow]warning:[/yellow] {item}")
