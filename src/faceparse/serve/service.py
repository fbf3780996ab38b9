"""What the web page does with an upload, without the web: check it, decode it, parse it, draw the result.

:class:`ParseService` holds the networks of one checkpoint (the RGB parser, the depth parser and the
translator, each when the checkpoint has it) and turns the bytes of an uploaded file into a
:class:`ParseResult`: the label map, its colours, the overlay, the legend and, for RGB, the translator's
predicted depth, as PNG bytes. Bad input is an :class:`UploadRefused` carrying the HTTP status and a
message for the page; every check runs before anything large is decoded:

1. the upload's size in bytes (``max_upload_bytes``; the app refuses a larger request body before
   reading it);
2. its type, sniffed from the content with Pillow (never trusted from the name or the browser);
3. the pixels its header claims, against ``max_pixels`` (the project's decompression-bomb guard,
   :func:`faceparse.data.format.open_header`): a 177-byte PNG claiming 100000×100000 is refused unread;
4. the decode itself through the project's readers (EXIF orientation, truncated files), whose
   :class:`~faceparse.utils.io.DataError` becomes the message, naming the uploaded file.
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceparse.data.format import MAX_PIXELS, ImageTooLarge, megapixels, open_header
from faceparse.inference.align import Landmarker
from faceparse.inference.detect import (
    DEFAULT_MARGIN,
    Box,
    Detector,
    DetectorUnavailable,
    crop_square,
    paste_labels,
)
from faceparse.inference.predictor import FaceParser, LoadedNetwork, face_parser, load_network, read_input
from faceparse.labels import LabelScheme
from faceparse.utils.facemesh import square_box
from faceparse.utils.io import DataError

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # a 50-megapixel phone JPEG is 10-20 MB
MAX_SIDE = 2048  # larger images are parsed shrunk to fit: the network sees 512² anyway, the page stays light
PARSERS = ("rgb", "depth")
# Formats accepted per parser, as Pillow names them (sniffed from the bytes). MPO: phones' JPEGs.
FORMATS = {"rgb": ("PNG", "JPEG", "MPO", "BMP", "WEBP", "TIFF"), "depth": ("PNG", "TIFF")}
_SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "MPO": ".jpg", "BMP": ".bmp", "WEBP": ".webp", "TIFF": ".tif"}
# How a depth upload's values are read. Hook for metric depth (issue 12, `--depth-units`): its units
# ("mm", ...) join this tuple and :func:`_read_upload` converts them to nearness; until then only
# nearness PNGs (near = bright, 0 = no surface; docs/datasets.md) are accepted.
DEPTH_UNITS = ("nearness", "mm")  # a nearness PNG, or a depth camera's uint16 millimetres
NO_TRANSLATOR = "no translator in this checkpoint"


class UploadRefused(Exception):
    """An upload the page cannot parse: ``status`` is the HTTP status, ``message`` says why, for people."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class ParseResult:
    """One parsed upload. Pictures are PNG bytes at the size parsed (``size``, (H, W))."""

    parser: str  # rgb | depth
    size: tuple[int, int]  # (H, W) parsed
    original_size: tuple[int, int]  # (H, W) as uploaded (displayed orientation)
    scheme: LabelScheme
    labels: np.ndarray  # (H, W) uint8 class ids
    pictures: dict[str, bytes]  # input, colors, overlay, labels (8-bit ids), depth (RGB with a translator)
    box: Box | None = None  # the square face crop (x0, y0, side): detect's, or the translator's with align
    faces: list[dict[str, Any]] = field(default_factory=list)  # align: each face's box, landmarks, score
    depth_note: str = ""  # why there is no predicted depth
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def legend(self) -> list[dict[str, Any]]:
        """Every class of the scheme: id, name, display name, colour and the fraction of pixels it has."""
        counts = np.bincount(self.labels.ravel(), minlength=self.scheme.num_classes)
        total = max(1, int(self.labels.size))
        return [
            {
                "id": k,
                "name": name,
                "pretty": self.scheme.pretty(name),
                "color": "#{:02x}{:02x}{:02x}".format(*self.scheme.colors[k]),
                "fraction": round(int(counts[k]) / total, 5),
            }
            for k, name in enumerate(self.scheme.classes)
        ]


class ParseService:
    """The networks of one checkpoint and the checks an upload goes through (see the module docstring).

    The RGB parser, the depth parser and the translator (generator) are loaded once, each when the
    checkpoint has it (``unavailable`` says why one is missing); a checkpoint with neither parser is a
    :class:`DataError`. Calls are serialised: one image is parsed at a time, so memory stays bounded.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike,
        *,
        device: str = "cpu",
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
        max_pixels: int | None = MAX_PIXELS,
        max_side: int | None = MAX_SIDE,
        detector: Detector | None = None,
        landmarker: Landmarker | None = None,
    ):
        self.checkpoint = Path(checkpoint)
        self.max_upload_bytes, self.max_pixels, self.max_side = max_upload_bytes, max_pixels, max_side
        self.parsers: dict[str, FaceParser] = {}
        self.unavailable: dict[str, str] = {}
        errors: list[DataError] = []
        for modality in PARSERS:
            try:
                self.parsers[modality] = face_parser(
                    checkpoint, modality, device, detector=detector, landmarker=landmarker
                )
            except DataError as e:
                self.unavailable[modality] = str(e)
                errors.append(e)
        if not self.parsers:
            raise errors[0]  # the RGB parser's: missing weights, an unknown format, ...
        self.translator: LoadedNetwork | None = None
        try:
            self.translator = load_network(checkpoint, "generator")
            self.translator.model.to(device)
        except DataError as e:
            self.unavailable["translator"] = str(e)
        self.device = device
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        """What the page needs to know before an upload: parsers, limits, label scheme."""
        any_parser = next(iter(self.parsers.values()))
        return {
            "checkpoint": str(self.checkpoint),
            "parsers": {
                m: (f"{p.info.arch}, {len(p.classes)} classes, input {p.input_size[1]}×{p.input_size[0]}")
                for m, p in self.parsers.items()
            },
            "unavailable": self.unavailable,
            "translator": self.translator is not None,
            "scheme": any_parser.scheme.name,
            "depth_units": list(DEPTH_UNITS),
            "max_upload_bytes": self.max_upload_bytes,
            "max_megapixels": None if self.max_pixels is None else float(megapixels(self.max_pixels)),
            "max_side": self.max_side,
        }

    def parse(
        self,
        data: bytes,
        filename: str,
        parser: str = "rgb",
        *,
        align: bool = False,
        detect: bool = False,
        depth_units: str = "nearness",
    ) -> ParseResult:
        """``align``: every face warped into the parser's training framing by five landmarks and back
        (:mod:`faceparse.inference.align`); ``detect``: the largest face's square crop, pasted back."""
        """Check, decode and parse one uploaded file; :class:`UploadRefused` for anything it cannot take."""
        start = time.perf_counter()
        name = _display_name(filename)
        if parser not in PARSERS:
            raise UploadRefused(400, f"parser must be one of {', '.join(PARSERS)}, got {parser!r}")
        if parser not in self.parsers:
            raise UploadRefused(400, f"this checkpoint has no {parser} parser ({self.unavailable[parser]})")
        if parser == "depth" and depth_units not in DEPTH_UNITS:
            raise UploadRefused(
                400,
                f"depth units must be one of {', '.join(DEPTH_UNITS)}, got {depth_units!r}: a nearness PNG "
                "(near = bright) or a uint16 PNG/TIFF of millimetres",
            )
        if (align or detect) and parser != "rgb":
            raise UploadRefused(400, "align and detect face work on RGB photos; depth maps are parsed whole")
        if align and detect:
            raise UploadRefused(400, "choose align (every face, by landmarks) or detect (one square crop)")
        if not data:
            raise UploadRefused(400, f"{name}: the file is empty; choose an image to upload")
        if len(data) > self.max_upload_bytes:
            raise UploadRefused(413, too_many_bytes(name, len(data), self.max_upload_bytes))
        image, original = self._read_upload(data, name, parser, depth_units)
        face_parser_ = self.parsers[parser]
        with self._lock:
            try:
                out = face_parser_(image, detect=detect, align=align, keep_logits=False)
            except (DetectorUnavailable, RuntimeError) as e:  # MediaPipe missing: its install hint
                raise UploadRefused(501, f"face detection is not available here: {e}") from None
            box = out["boxes"][0] if detect else None
            faces = out["faces"][0] if align else []
            if faces:  # the translator sees the largest face's square crop, as with detect
                box = square_box(faces[0].box, DEFAULT_MARGIN)
            depth, depth_note = None, ""
            if parser == "rgb":
                depth, depth_note = self._translate(image, box)
        label = np.ascontiguousarray(out["labels"][0])
        result = ParseResult(
            parser=parser,
            size=(int(label.shape[0]), int(label.shape[1])),
            original_size=original,
            scheme=face_parser_.scheme,
            labels=label,
            pictures=_pictures(image, label, face_parser_.scheme, depth),
            box=box,
            depth_note=depth_note,
        )
        if result.size != original:
            result.notes.append(
                f"{original[1]}×{original[0]} parsed at {result.size[1]}×{result.size[0]} "
                f"(images longer than {self.max_side} pixels are shrunk to fit)"
            )
        result.faces = [face.to_json() for face in faces]
        if (detect and box is None) or (align and not faces):
            result.notes.append("no face found: the whole image was parsed")
        result.seconds = round(time.perf_counter() - start, 3)
        return result

    def _read_upload(
        self, data: bytes, name: str, parser: str, depth_units: str = "nearness"
    ) -> tuple[np.ndarray, tuple[int, int]]:
        """The upload decoded as the parser takes it, and its (H, W) as displayed before any shrinking.
        Depth in millimetres is converted to nearness over the range the depth parser was trained with
        (:mod:`faceparse.inference.metric_depth`, as ``predict --depth-units mm``)."""
        from faceparse.data.format import image_size
        from faceparse.inference.metric_depth import DEFAULT_RANGE_M, MetricDepth

        metric = None
        if parser == "depth" and depth_units != "nearness":
            metric = MetricDepth(depth_units, self.parsers["depth"].info.depth_range_m or DEFAULT_RANGE_M)

        try:
            with open_header(io.BytesIO(data), name, self.max_pixels, unreadable="not an image") as img:
                kind = img.format or "unknown"
        except ImageTooLarge as e:
            raise UploadRefused(400, str(e)) from None  # the decompression-bomb guard, before decoding
        except DataError as e:
            raise UploadRefused(415, f"{e}; upload {_formats(parser)}") from None
        if kind not in FORMATS[parser]:
            raise UploadRefused(415, f"{name}: a {kind} image; the {parser} parser takes {_formats(parser)}")
        # the project's readers take paths: decode a private copy (removed on return)
        with tempfile.TemporaryDirectory(prefix="faceparse-upload-") as tmp:
            path = Path(tmp) / f"upload{_SUFFIX[kind]}"
            path.write_bytes(data)
            try:
                width, height = image_size(path, max_pixels=None)
                image = read_input(
                    path, parser, max_pixels=self.max_pixels, max_side=self.max_side, metric=metric
                )
            except DataError as e:
                raise UploadRefused(400, f"{name}: {e.problem}") from None
        return image, (height, width)

    def _translate(self, rgb: np.ndarray, box: Box | None) -> tuple[np.ndarray | None, str]:
        """The translator's nearness (H, W) for an RGB image (the face crop with a box, zero outside)."""
        import cv2
        import torch

        from faceparse.data.normalize import NORMALIZATIONS, depth_from_network

        if self.translator is None:
            return None, NO_TRANSLATOR
        info = self.translator.info
        crop = rgb if box is None else crop_square(rgb, box)
        height, width = info.input_size
        small = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)
        pixels = torch.from_numpy(small).permute(2, 0, 1)[None].float().div(255.0).to(self.device)
        with torch.inference_mode():
            out = self.translator.model(NORMALIZATIONS[info.normalization](pixels))
        nearness = depth_from_network(out).clamp(0.0, 1.0)[0, 0].float().cpu().numpy()
        nearness = cv2.resize(nearness, (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_LINEAR)
        if box is None:
            return nearness, ""
        return paste_labels(nearness, box, rgb.shape[:2]), ""  # any map: zero outside the crop


def _pictures(
    image: np.ndarray, label: np.ndarray, scheme: LabelScheme, depth: np.ndarray | None
) -> dict[str, bytes]:
    from faceparse.inference.visualize import colorize, depth_to_rgb, overlay

    base = image if image.ndim == 3 else depth_to_rgb(image)
    pictures = {
        "input": png_bytes(base),
        "colors": png_bytes(colorize(label, scheme)),
        "overlay": png_bytes(overlay(base, label, scheme)),
        "labels": png_bytes(label),
    }
    if depth is not None:
        pictures["depth"] = png_bytes(depth_to_rgb(depth))
    return pictures


def png_bytes(array: np.ndarray) -> bytes:
    """(H, W) uint8 (gray) or (H, W, 3) uint8 (RGB) → PNG file bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _display_name(filename: str) -> str:
    """The uploaded file's own name for messages: no folders, printable, at most 100 characters."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable()) or "upload"
    return name if len(name) <= 100 else name[:97] + "..."


def _formats(parser: str) -> str:
    names: Sequence[str] = [f for f in FORMATS[parser] if f != "MPO"]
    return f"a {', '.join(names[:-1])} or {names[-1]} image" if len(names) > 1 else f"a {names[0]} image"


def too_many_bytes(name: str, size: int, limit: int) -> str:
    return f"{name}: {size / 2**20:.3g} MB is over the server's upload limit of {limit / 2**20:.3g} MB"
