"""Parsing a clip: a video file (decoded by OpenCV's FFmpeg backend) or a folder of frames, frame by frame.

``predict_video(parser, "clip.mp4", out)`` writes

* ``out/clip/frame-000000.png``, ... : one label map per frame (8-bit class ids, as ``predict`` writes);
  a folder of frames keeps its images' names (``out/<folder>/<stem>.png``);
* ``out/clip.overlay.mp4``: the frames with the class colours blended over them, at the clip's frame rate
  (MPEG-4 Part 2, OpenCV's ``mp4v``: the encoder every OpenCV wheel ships);
* ``out/clip.json``: the clip's frame rate, size and frame counts, and one record per frame (its label
  map, and with ``detect`` its face box and detector score).

Resume: a frame whose label map exists is not parsed again (with ``detect``, only if ``clip.json``
also holds its box), but every frame is decoded again, because the overlay video is always encoded whole,
from the frames and their label maps, to a temporary file renamed at the end. ``clip.json`` is rewritten
(atomically) every few seconds while the clip is parsed, so the boxes of an interrupted run survive.

Only RGB: depth video has no common container format, so depth clips are out of scope (parse a folder of
depth PNGs with the folder mode of ``predict``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceparse.data.format import MAX_PIXELS, label_map_problem, megapixels
from faceparse.inference.detect import Box
from faceparse.inference.predictor import (
    FaceParser,
    list_inputs,
    read_input,
)
from faceparse.utils.io import DataError, file_identity
from faceparse.utils.progress import OnProgress

__all__ = ["VIDEO_SUFFIXES", "Clip", "VideoReport", "is_video", "open_clip", "predict_video"]

VIDEO_SUFFIXES = (
    ".mp4",
    ".m4v",
    ".mov",
    ".avi",
    ".mkv",
    ".webm",
    ".mpg",
    ".mpeg",
    ".wmv",
    ".flv",
    ".ts",
    ".3gp",
)
OVERLAY_FOURCC = "mp4v"
CHECKPOINT_SECONDS = 5.0  # how often clip.json is rewritten while a clip is parsed


def is_video(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a video file (by its extension; whether it decodes is another matter)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


@dataclass
class Clip:
    """A sequence of RGB frames with a frame rate: a video file or a folder of images."""

    path: Path
    name: str  # the outputs' stem: the video's stem or the folder's name
    fps: float
    declared: int | None  # frames the container (or the folder) says it holds; None when unknown
    read: Callable[[], Iterator[tuple[str, np.ndarray]]] = field(repr=False)  # see frames()
    files: dict[str, Path] = field(default_factory=dict)  # a folder's frame name → its image

    def frames(self) -> Iterator[tuple[str, np.ndarray]]:
        """(frame name, (H, W, 3) uint8 RGB) in order, decoded afresh at each call."""
        return self.read()

    def where(self, name: str) -> Path:
        """The file to name in an error about frame ``name``: its image, or the video."""
        return self.files.get(name, self.path)


def open_clip(
    path: str | os.PathLike,
    fps: float | None = None,
    *,
    max_pixels: int | None = MAX_PIXELS,
    max_side: int | None = None,
) -> Clip:
    """A video file (``fps`` overrides its own frame rate) or a folder of frames (``fps`` required).

    Frames larger than ``max_pixels`` are refused before decoding; ``max_side`` shrinks larger frames to fit
    (aspect kept). A file OpenCV cannot open, or that holds no decodable frame, is a :class:`DataError`
    naming it.
    """
    path = Path(path)
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps}")
    if path.is_dir():
        if fps is None:
            raise ValueError(f"{path}: a folder of frames needs a frame rate (fps)")
        return _folder_clip(path, fps, max_pixels, max_side)
    if not path.is_file():
        raise DataError(path, "input not found")
    if not is_video(path):  # FFmpeg would read an image as a one-frame video
        raise DataError(path, f"not a video file (expected one of {' '.join(VIDEO_SUFFIXES)}) nor a folder")
    return _video_clip(path, fps, max_pixels, max_side)


def _video_clip(path: Path, fps: float | None, max_pixels: int | None, max_side: int | None) -> Clip:
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise DataError(path, "cannot be read as a video (OpenCV's FFmpeg backend could not open it)")
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        own_fps = float(capture.get(cv2.CAP_PROP_FPS))
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()
    if width <= 0 or height <= 0:
        raise DataError(path, "the video stream has no frame size; is it a video?")
    if max_pixels is not None and width * height > max_pixels:  # frames decode whole, --max-side or not
        raise DataError(
            path,
            f"frames of {width}×{height} exceed the cap of {megapixels(max_pixels)} megapixels "
            "(--max-megapixels)",
        )
    if fps is None:
        if not (math.isfinite(own_fps) and own_fps > 0):
            raise DataError(path, "the video does not say its frame rate; give one (--video-fps)")
        fps = own_fps

    def frames() -> Iterator[tuple[str, np.ndarray]]:
        capture = cv2.VideoCapture(str(path))
        try:
            index = 0
            while True:
                ok, bgr = capture.read()
                if not ok:
                    return
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # OpenCV decodes to BGR
                yield f"frame-{index:06d}", _fit(rgb, max_side)
                index += 1
        finally:
            capture.release()

    return Clip(path, path.stem, fps, count if count > 0 else None, frames)


def _fit(rgb: np.ndarray, max_side: int | None) -> np.ndarray:
    import cv2

    from faceparse.data.format import fit_within

    height, width = rgb.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return rgb
    w, h = fit_within((width, height), max_side)
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)


def _folder_clip(path: Path, fps: float, max_pixels: int | None, max_side: int | None) -> Clip:
    images = list_inputs(path, "rgb")
    stems: dict[str, Path] = {}
    for image in images:
        if image.stem in stems:
            raise DataError(image, f"same name as {stems[image.stem].name}: both would be frame {image.stem}")
        stems[image.stem] = image

    def frames() -> Iterator[tuple[str, np.ndarray]]:
        for image in images:
            yield image.stem, read_input(image, "rgb", max_pixels=max_pixels, max_side=max_side)

    return Clip(path, path.name, fps, len(images), frames, stems)


@dataclass
class VideoReport:
    labels: Path  # the folder of per-frame label maps
    overlay: Path  # the overlay video
    summary: Path  # the JSON
    frames: int = 0  # frames decoded (and in the overlay video)
    declared: int | None = None  # frames the container said it holds
    parsed: int = 0  # frames parsed in this run
    kept: int = 0  # frames whose label map existed and was kept
    problems: list[str] = field(default_factory=list)  # e.g. the video ended before its declared length

    @property
    def ended_early(self) -> bool:
        return self.declared is not None and self.frames < self.declared


@dataclass
class _Frame:
    name: str
    rgb: np.ndarray
    label: np.ndarray | None = None  # None until parsed


def predict_video(
    parser: FaceParser,
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    fps: float | None = None,
    detect: bool = False,
    overwrite: bool = False,
    alpha: float = 0.5,
    max_pixels: int | None = MAX_PIXELS,
    max_side: int | None = None,
    on_progress: OnProgress | None = None,
) -> VideoReport:
    """Parse every frame of a video file or of a folder of frames (``fps`` required for a folder); see the
    module docstring for the outputs and how an interrupted run resumes. ``overwrite`` parses every frame
    again. Outputs never replace an input, nor a file that is not a label map; writes are atomic.

    A video that stops decoding before the frame count its container declares (a truncated download, a
    corrupt packet) keeps the frames decoded so far; ``report.problems`` says so, as does the JSON.
    """
    from faceparse.utils.io import atomic_path

    if parser.modality != "rgb":
        raise ValueError("video input is RGB; depth clips are parsed as folders of depth PNGs")
    source = Path(source)
    clip = open_clip(source, fps, max_pixels=max_pixels, max_side=max_side)
    out_dir = Path(out_dir)
    report = VideoReport(
        labels=out_dir / clip.name,
        overlay=out_dir / f"{clip.name}.overlay.mp4",
        summary=out_dir / f"{clip.name}.json",
        declared=clip.declared,
    )
    _refuse_clobbering(source, report)
    known = {} if overwrite else _earlier_records(report.summary, _signature(clip), source, detect)
    run = _ClipRun(parser, clip, report, known, detect, overwrite, alpha, on_progress)
    if on_progress is not None:
        on_progress(0, clip.declared or 0, "")
    try:
        with atomic_path(report.overlay) as tmp:
            try:
                for name, rgb in clip.frames():
                    run.add(name, rgb, tmp)
                if run.writer is None:
                    raise DataError(source, "holds no frame that could be decoded")
                run.flush()
            finally:
                if run.writer is not None:
                    run.writer.close()
    finally:
        if run.writer is not None:  # the boxes found so far survive an interruption
            run.save_summary(complete=False)
    if report.ended_early:
        report.problems.append(
            f"{source}: decoding stopped after {report.frames} of the {report.declared} frames the file "
            "declares (truncated or corrupt); the outputs hold the frames decoded"
        )
    run.save_summary(complete=True)
    return report


def _earlier_records(summary: Path, signature: dict[str, Any], source: Path, detect: bool) -> dict[str, Any]:
    """Frame name → its record in the JSON of an earlier run on the same clip ({} when there is none, or
    when that run did not detect as this one does: its boxes are then not this run's)."""
    from faceparse.utils.io import read_json

    if not summary.exists():
        return {}
    earlier = read_json(summary)
    if not isinstance(earlier, dict) or earlier.get("source") != signature:
        raise DataError(
            summary,
            f"was written for another clip than {source} (or another version of it); pass --overwrite "
            "to parse this one from scratch, or choose another output folder",
        )
    if earlier.get("detect") != detect:
        return {}
    return {r["name"]: r for r in earlier.get("frames", []) if isinstance(r, dict) and "name" in r}


class _ClipRun:
    """The frames of one run in flight: frames wait in a buffer until a batch is worth parsing, then go to
    the overlay video in order; per-frame records build the JSON."""

    def __init__(
        self,
        parser: FaceParser,
        clip: Clip,
        report: VideoReport,
        known: dict[str, dict[str, Any]],
        detect: bool,
        overwrite: bool,
        alpha: float,
        on_progress: OnProgress | None,
    ) -> None:
        self.parser, self.clip, self.report = parser, clip, report
        self.known = known  # frame name → its record, for every frame with a label map (and box) on disk
        self.detect, self.overwrite, self.alpha, self.on_progress = detect, overwrite, alpha, on_progress
        self.writer: _OverlayWriter | None = None  # opened at the first frame, which gives the size
        self.buffer: list[_Frame] = []
        self.records: list[dict[str, Any]] = []  # the frames in the overlay video, in order
        self.saved = time.monotonic()
        self.summary: dict[str, Any] = {
            "source": _signature(clip),
            "fps": clip.fps,
            "width": None,
            "height": None,
            "frame_count": 0,  # frames decoded (and in the overlay video)
            "frames_declared": clip.declared,  # what the container says; null when it does not
            "complete": False,  # false while parsing, or after an interruption
            "problems": report.problems,
            "detect": detect,
            "scheme": parser.scheme.name,
            "classes": list(parser.classes),
            "labels": clip.name,
            "overlay": report.overlay.name,
            "frames": [],
        }

    def add(self, name: str, rgb: np.ndarray, video: Path) -> None:
        """Take the next frame: keep its label map from an earlier run, or queue it for parsing. The first
        frame opens the overlay video (being written at ``video``) at its size."""
        size = (int(rgb.shape[0]), int(rgb.shape[1]))
        if self.writer is None:
            clip = self.clip
            self.writer = _OverlayWriter(video, self.report.overlay, clip.fps, size, self.parser, self.alpha)
            self.summary.update(width=size[1], height=size[0])
        elif size != self.writer.size:
            raise DataError(
                self.clip.where(name),
                f"frame {name} is {size[1]}×{size[0]}, the clip's first frame {self.writer.size[1]}×"
                f"{self.writer.size[0]}; a clip's frames share one size",
            )
        frame = _Frame(name, rgb)
        if not self.overwrite and (name in self.known or not self.detect):  # with detect, only known boxes
            frame.label = _existing_label(self.report.labels / f"{name}.png", size)
            if frame.label is not None:
                self.known.setdefault(name, _record(name, self.clip.name, None, None, self.detect))
                self.report.kept += 1
        self.buffer.append(frame)
        # a full batch to parse, or enough kept frames waiting that memory matters
        pending = sum(f.label is None for f in self.buffer)
        if pending >= self.parser.batch_size or len(self.buffer) >= 4 * self.parser.batch_size:
            self.flush()

    def flush(self) -> None:
        """Parse the queued frames, write their label maps, and send the buffer to the overlay video."""
        assert self.writer is not None
        report, todo = self.report, [f for f in self.buffer if f.label is None]
        if todo:
            result = self.parser([f.rgb for f in todo], detect=self.detect, keep_logits=False)
            boxes = result.get("boxes", [None] * len(todo))
            scores = result.get("scores", [None] * len(todo))
            for frame, label, box, score in zip(todo, result["labels"], boxes, scores, strict=True):
                frame.label = np.ascontiguousarray(label)
                _write_label(report.labels / f"{frame.name}.png", frame.label)
                self.known[frame.name] = _record(frame.name, self.clip.name, box, score, self.detect)
            report.parsed += len(todo)
        for frame in self.buffer:
            assert frame.label is not None
            self.writer.write(frame.rgb, frame.label)
            self.records.append(self.known[frame.name])
            report.frames += 1
            if self.on_progress is not None:
                total = max(report.declared or 0, report.frames)
                self.on_progress(report.frames, total, f"{report.parsed} parsed, {report.kept} kept")
        self.buffer.clear()
        if time.monotonic() - self.saved > CHECKPOINT_SECONDS:
            self.save_summary()
            self.saved = time.monotonic()

    def save_summary(self, complete: bool = False) -> None:
        """Write the JSON: once complete, the frames in decoding order; before, every frame parsed so far
        (earlier runs' too), so that a rerun finds their boxes."""
        from faceparse.utils.io import atomic_write_json

        frames = self.records if complete else list(self.known.values())
        self.summary.update(frame_count=len(self.records), complete=complete, frames=frames)
        atomic_write_json(self.report.summary, self.summary)


def _record(name: str, clip_name: str, box: Box | None, score: float | None, detect: bool) -> dict[str, Any]:
    return {
        "name": name,
        "label": f"{clip_name}/{name}.png",
        "box": None if box is None else [int(v) for v in box],  # (x0, y0, side) of the square face crop
        "score": float(score) if detect and score is not None else None,
    }


def _signature(clip: Clip) -> dict[str, Any]:
    """What identifies the input, so that a rerun does not mix another clip's label maps into this one. A
    folder of frames by its name only: frames removed or added (an unreadable one, say) keep the others."""
    if clip.path.is_dir():
        return {"path": clip.path.name, "kind": "frames"}
    return {"path": clip.path.name, "kind": "video", "bytes": clip.path.stat().st_size}


def _refuse_clobbering(source: Path, report: VideoReport) -> None:
    """Outputs never replace the input: the video, or (for a folder of frames) the folder's images."""
    inputs = {file_identity(source)} - {None}
    if source.is_dir():
        inputs |= {file_identity(p) for p in source.iterdir()} - {None}
    outputs = (("overlay video", report.overlay), ("summary", report.summary), ("labels", report.labels))
    for what, out in outputs:
        if file_identity(out) in inputs:
            raise DataError(out, f"the {what} would replace the input {source}; choose another output folder")


def _existing_label(path: Path, size: tuple[int, int]) -> np.ndarray | None:
    """A frame's label map from an earlier run, or None when it must be parsed (missing, or another
    size: the clip was parsed with another --max-side). A file there that is no label map is refused."""
    from faceparse.data.format import read_label

    if not path.exists():
        return None
    if problem := label_map_problem(path):
        raise DataError(path, f"exists and is not a label map ({problem}); refusing to replace it")
    label = read_label(path)
    return label if label.shape == size else None


def _write_label(path: Path, label: np.ndarray) -> None:
    from faceparse.data.format import write_label

    if path.exists() and (problem := label_map_problem(path)):
        raise DataError(path, f"exists and is not a label map ({problem}); refusing to replace it")
    write_label(path, label)


class _OverlayWriter:
    """OpenCV's video writer for the overlay frames (RGB in, BGR to the encoder).

    MPEG-4 codes even sizes only (an odd-sized frame comes back a pixel short), so an odd width or height
    is padded by one pixel, repeating the last column or row: no part of a frame is lost.
    """

    def __init__(
        self,
        tmp: Path,
        final: Path,
        fps: float,
        size: tuple[int, int],
        parser: FaceParser,
        alpha: float,
    ) -> None:
        import cv2

        self.size = size
        self.scheme = parser.scheme
        self.alpha = alpha
        height, width = size
        self.pad = (height % 2, width % 2)
        coded = (width + self.pad[1], height + self.pad[0])
        self.writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*OVERLAY_FOURCC), fps, coded)
        if not self.writer.isOpened():
            raise DataError(final, f"OpenCV cannot encode {OVERLAY_FOURCC} video of {width}×{height} here")

    def write(self, rgb: np.ndarray, label: np.ndarray) -> None:
        import cv2

        from faceparse.inference.visualize import overlay

        picture = overlay(rgb, label, self.scheme, self.alpha)
        if any(self.pad):
            picture = np.pad(picture, ((0, self.pad[0]), (0, self.pad[1]), (0, 0)), mode="edge")
        self.writer.write(cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        self.writer.release()
