"""`faceparse predict` (label maps for images) and `faceparse export-onnx` (a verified ONNX graph)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from faceparse.cli import app
from faceparse.cli.common import check_device, console, fail, friendly_errors, positive, progress

_CHECKPOINT_HELP = (
    "Weights: an engine checkpoint, stage or run folder; a faceparse .safetensors file (convert-fpt); "
    "or a face-parsing.PyTorch .pth."
)


@app.command("predict")
@friendly_errors
def predict_command(
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help=_CHECKPOINT_HELP),
    input_path: Path = typer.Option(
        ...,
        "--input",
        "-i",
        help="An image file, a folder of images, or a video (.mp4 .mov .avi .mkv .webm: label maps in "
        "OUT/<stem>/, an overlay video OUT/<stem>.overlay.mp4, per-frame boxes in OUT/<stem>.json).",
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Output folder: <stem>.png label maps (8-bit class ids, as score-masks reads).",
    ),
    modality: str = typer.Option(
        "rgb", "--modality", help="rgb: colour images; depth: depth maps (see --depth-units)."
    ),
    depth_units: str = typer.Option(
        "nearness",
        "--depth-units",
        help="Depth input: nearness (our 16/8-bit PNGs, near = bright); mm (uint16 PNG/TIFF, a depth "
        "camera's millimetres); m (float metres: .npy or 32-bit TIFF). Metric depth is converted to the "
        "parser's encoding (docs/inference.md, Metric depth).",
    ),
    depth_range: float = typer.Option(
        None,
        "--depth-range",
        min=0.0,
        help="Metric depth: metres of depth the encoding spans (default: the parser's training data, "
        "else 0.3).",
    ),
    intrinsics: str = typer.Option(
        None,
        "--intrinsics",
        help="Metric depth given as distance along each pixel's ray: the camera's fx,fy,cx,cy in pixels, "
        "to convert it to camera z (not needed for z-depth: Kinect, RealSense).",
    ),
    batch: int = typer.Option(8, "--batch", min=1, help="Images per forward pass."),
    detect: bool = typer.Option(
        False,
        "--detect",
        help="RGB only: crop to the detected face (MediaPipe: the [depth] extra), paste back.",
    ),
    align: bool = typer.Option(
        False,
        "--align",
        help="Warp every face (MediaPipe: the [depth] extra) into the parser's training framing, parse, "
        "warp back; each image's faces (box, five landmarks, score) go to OUT/faces/<stem>.json. Depth "
        "maps take their landmarks from --rgb frames, else are cropped square around their surface.",
    ),
    rgb_frames: Path = typer.Option(
        None,
        "--rgb",
        help="With --align and --modality depth: a folder of RGB frames paired with the depth maps by file "
        "stem (same size), whose faces align them.",
    ),
    overlay: bool = typer.Option(
        False, "--overlay", help="Also write colour overlays to OUT/overlay/<stem>.png."
    ),
    size: int = typer.Option(
        None,
        "--size",
        min=16,
        help="Network input side in pixels (default: the training size, 512 for .pth).",
    ),
    device: str = typer.Option(
        "cpu", "--device", callback=check_device, help="torch device, e.g. cpu or cuda:0."
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Redo images whose label map exists (default: skip them, so reruns resume). Nothing ever "
        "replaces an input image, nor a file that is not a label map.",
    ),
    max_megapixels: float = typer.Option(
        None,
        "--max-megapixels",
        min=0.0,
        help="Refuse images that would decode to more megapixels than this, checked from the file header "
        "before decoding (default 64; parsing costs about 15 bytes a pixel).",
    ),
    max_side: int = typer.Option(
        None,
        "--max-side",
        min=1,
        help="Parse images longer than this many pixels (longer side) shrunk to fit, aspect kept; their "
        "label maps and overlays have the shrunk size. JPEGs are decoded at 1/2, 1/4 or 1/8 scale where "
        "that still covers it, so --max-megapixels then applies to the reduced size.",
    ),
    video_fps: float = typer.Option(
        None,
        "--video-fps",
        callback=positive,
        help="Read a folder of frames as one clip at this frame rate (outputs as for a video), or override "
        "a video's own frame rate in its overlay video.",
    ),
) -> None:
    """Predict label maps for an image, a folder or a video; unreadable images are reported and skipped."""
    from faceparse.data.format import MAX_PIXELS, megapixels
    from faceparse.inference.detect import DetectorUnavailable
    from faceparse.inference.metric_depth import DEPTH_UNITS, METRIC_SUFFIXES
    from faceparse.inference.predictor import face_parser, list_inputs, predict_files
    from faceparse.inference.video import is_video

    if modality not in ("rgb", "depth"):
        raise typer.BadParameter(f"must be rgb or depth, got {modality!r}", param_hint="--modality")
    if detect and modality != "rgb":
        raise typer.BadParameter("face detection works on RGB images only", param_hint="--detect")
    if rgb_frames is not None and not (align and modality == "depth"):
        raise typer.BadParameter("paired RGB frames align depth maps: use with --align --modality depth")
    if rgb_frames is not None and not rgb_frames.is_dir():
        raise typer.BadParameter(f"{rgb_frames} is not a folder", param_hint="--rgb")
    if detect and align:
        raise typer.BadParameter(
            "--align finds and crops every face itself; drop --detect", param_hint="--align"
        )
    if align and (video_fps is not None or is_video(input_path)):  # predict_clip has no aligned route yet
        raise typer.BadParameter("videos are parsed with --detect, not aligned yet", param_hint="--align")
    if depth_units not in DEPTH_UNITS:
        raise typer.BadParameter(f"must be one of {', '.join(DEPTH_UNITS)}", param_hint="--depth-units")
    metric = depth_units != "nearness"
    if metric and modality != "depth":
        raise typer.BadParameter("metric depth needs --modality depth", param_hint="--depth-units")
    if not metric and (depth_range is not None or intrinsics is not None):
        hint = "--depth-range" if depth_range is not None else "--intrinsics"
        raise typer.BadParameter("applies to metric depth (--depth-units mm or m)", param_hint=hint)
    inputs = list_inputs(input_path, modality, METRIC_SUFFIXES if metric else None)
    max_pixels = MAX_PIXELS if max_megapixels is None else round(max_megapixels * 1e6)
    parser = face_parser(
        checkpoint,
        modality,
        device,
        size=size,
        batch_size=batch,
        depth_units=depth_units,
        depth_range_m=depth_range,
        intrinsics=_intrinsics(intrinsics),
    )
    console.print(
        f"{parser.info.arch} {parser.modality} parser, {len(parser.classes)} classes ({parser.scheme.name}), "
        f"input {parser.input_size[1]}x{parser.input_size[0]}, from {parser.info.source}"
    )
    if parser.metric is not None:
        console.print(f"metric depth in {depth_units}, encoded over {parser.metric.range_m:g} m")
    if video_fps is not None or is_video(input_path):
        from faceparse.cli.video import predict_clip

        return predict_clip(
            parser, input_path, out, fps=video_fps, detect=detect, overwrite=overwrite,
            max_pixels=max_pixels, max_side=max_side,
        )  # fmt: skip
    try:
        with progress() as bar:
            task = bar.add_task("predicting", total=len(inputs), info="")
            report = predict_files(
                parser,
                inputs,
                out,
                detect=detect,
                align=align,
                rgb_frames=rgb_frames,
                overlay=overlay,
                overwrite=overwrite,
                max_pixels=max_pixels,
                max_side=max_side,
                on_image=lambda path: bar.update(task, advance=1, info=path.name),
            )
    except DetectorUnavailable as e:
        raise fail(e) from None
    console.print(f"wrote {len(report.written)} label maps to {escape(str(out))}")
    if align:
        from faceparse.inference.align import resolve_framing

        framing = parser.framing or resolve_framing(parser.info)
        faceless = sum(1 for n in report.faces.values() if n == 0)
        console.print(
            f"aligned {sum(report.faces.values())} faces to inter-ocular distance / width {framing.iod:.3f} "
            f"({escape(framing.source)}); {faceless} images without a face were parsed whole; boxes, "
            f"landmarks and scores in {escape(str(out / 'faces'))}/",
            soft_wrap=True,
        )
    if report.downscaled:
        console.print(
            f"downscaled {len(report.downscaled)} images to fit --max-side {max_side}; "
            "their label maps have the size they were parsed at:"
        )
        for path, (width, height), (w, h) in report.downscaled:
            console.print(f"  {escape(str(path))}: {width}×{height} parsed at {w}×{h}", soft_wrap=True)
    if report.skipped:
        console.print(f"skipped {len(report.skipped)} images already predicted (--overwrite redoes them)")
    if report.failed:
        for path, problem in report.failed:
            console.print(f"[red]failed:[/red] {escape(f'{path}: {problem}')}", soft_wrap=True)
        if report.too_large:
            console.print(
                f"{len(report.too_large)} images exceed {megapixels(max_pixels)} megapixels: raise "
                "--max-megapixels (memory permitting), or pass --max-side to decode JPEGs reduced and "
                "parse them shrunk"
            )
        console.print(f"[red]{len(report.failed)} of {len(inputs)} images failed[/red]")
        raise typer.Exit(1)


def _intrinsics(text: str | None) -> tuple[float, float, float, float] | None:
    if text is None:
        return None
    try:
        fx, fy, cx, cy = (float(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"expected fx,fy,cx,cy (4 numbers), got {text!r}") from None
    return fx, fy, cx, cy


@app.command("export-onnx")
@friendly_errors
def export_onnx_command(
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help=_CHECKPOINT_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="Output .onnx file (written only once verified)."),
    network: str = typer.Option(
        "parser",
        "--network",
        help="parser (the RGB or depth parser, see --modality) or generator (RGB→depth).",
    ),
    modality: str = typer.Option("rgb", "--modality", help="Which parser to export: rgb or depth."),
    size: int = typer.Option(
        None, "--size", min=16, help="Input side in pixels (default: the recorded input size)."
    ),
    opset: int = typer.Option(17, "--opset", help="ONNX opset version."),
    static_batch: bool = typer.Option(
        False, "--static-batch", help="Fix the batch size at 1 instead of a symbolic batch axis."
    ),
    tolerance: float = typer.Option(
        1e-4,
        "--tolerance",
        help="Largest accepted |onnxruntime - PyTorch| on the random check input, relative to the "
        "output's scale (times max(1, max |output|)).",
    ),
) -> None:
    """Export a parser's main logits (or the generator's depth) to ONNX, verified in onnxruntime."""
    from faceparse.inference.export import ExportError, export_onnx
    from faceparse.inference.predictor import load_network

    if network not in ("parser", "generator"):
        raise typer.BadParameter(f"must be parser or generator, got {network!r}", param_hint="--network")
    if modality not in ("rgb", "depth"):
        raise typer.BadParameter(f"must be rgb or depth, got {modality!r}", param_hint="--modality")
    role = "generator" if network == "generator" else f"parser_{modality}"
    loaded = load_network(checkpoint, role, size)
    with console.status(
        f"exporting {loaded.info.arch} ({role}) at {loaded.info.input_size[1]}x{loaded.info.input_size[0]}"
    ):
        try:
            report = export_onnx(
                loaded, out, opset=opset, dynamic_batch=not static_batch, tolerance=tolerance
            )
        except ExportError as e:
            raise fail(e) from None
    console.print(
        f"wrote {report.path}; checked on input {list(report.input_shape)} → {list(report.output_shape)}, "
        f"max |onnxruntime - PyTorch| = {report.max_abs_diff:.3g}"
    )
