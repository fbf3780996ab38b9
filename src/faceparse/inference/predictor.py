"""The face parser for users: ``face_parser(source)`` → a callable that turns images into labelled dicts.

One dict flows through the steps (as in facer): optional face detection → crop → resize to the network
size → normalise → network → main logits → resize back to each image's size → paste into the full frame.
Class names travel with the logits, so a caller never has to know the label scheme's order.

``source`` is any of

* an engine checkpoint (a checkpoint folder, a stage folder or a run folder; ``meta.json`` says the
  architecture, label scheme, normalisation and the training size);
* a faceparse ``.safetensors`` file with its metadata (``faceparse convert-fpt``, ``save_pretrained``);
* a face-parsing.PyTorch ``.pth`` state_dict (e.g. its released ``79999_iter.pth``; 512² input,
  ``celebamask19_fpt`` classes).

Preprocessing is the evaluation resize of :mod:`faceparse.data.transforms`: RGB by area (shrinking) or
bilinear interpolation, depth by the masked resize that keeps the background at 0; the aspect ratio is not
kept (face-parsing.PyTorch does the same). Logits come back to each image's size bilinearly, with
``align_corners=True`` as BiSeNet and EAGRNet upsample their own outputs (FACTS §4).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from faceparse.data.format import MAX_PIXELS, label_map_problem
from faceparse.inference.align import Framing, Landmarker, parse_aligned
from faceparse.inference.detect import (
    Box,
    Detector,
    crop_square,
    mediapipe_detector,
    paste_labels,
    paste_logits,
)
from faceparse.inference.metric_depth import DEFAULT_RANGE_M, DEPTH_UNITS, MetricDepth, range_in_metres
from faceparse.labels import LabelScheme, get_scheme
from faceparse.utils.io import DataError, file_identity

MODALITIES = ("rgb", "depth")
ROLES = ("parser_rgb", "parser_depth", "generator")
FPT_INPUT_SIZE = 512  # face-parsing.PyTorch evaluates at 512² (its test.py)
ImageInput = np.ndarray | str | os.PathLike


@dataclass(frozen=True)
class NetworkInfo:
    """Everything needed to feed one network and read its output, wherever its weights came from."""

    role: str  # parser_rgb | parser_depth | generator
    arch: str  # registry name: bisenet | eagrnet | unet_generator
    in_channels: int
    normalization: str  # key of faceparse.data.normalize.NORMALIZATIONS
    input_size: tuple[int, int]  # (H, W) the network is fed
    scheme: LabelScheme | None  # None for the generator
    source: str
    # metres of depth that nearness 1 → 0 spanned in the training data (dataset.json); None: not recorded
    depth_range_m: float | None = None

    @property
    def modality(self) -> str:
        return "depth" if self.role == "parser_depth" else "rgb"


@dataclass
class LoadedNetwork:
    model: nn.Module
    info: NetworkInfo


def _role_for(modality: str) -> str:
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    return f"parser_{modality}"


def _square(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    height, width = (int(s) for s in size)
    return (height, width)


# --- loading -------------------------------------------------------------------------------------------


def load_network(
    source: str | os.PathLike, role: str = "parser_rgb", size: int | Sequence[int] | None = None
) -> LoadedNetwork:
    """Load one network (``parser_rgb``, ``parser_depth`` or ``generator``) from any supported source.

    ``size`` overrides the input size recorded in the source (training ``data.size``, or 512 for
    face-parsing.PyTorch weights). The model is returned on the CPU, in eval mode.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    path = Path(source)
    if not path.exists():
        raise DataError(path, "weights not found (expected a checkpoint folder, .safetensors or .pth)")
    if path.is_dir():
        loaded = _load_engine_checkpoint(path, role)
    elif path.suffix == ".safetensors":
        loaded = _load_safetensors(path, role)
    elif path.suffix in (".pth", ".pt"):
        loaded = _load_fpt(path, role)
    else:
        raise DataError(path, "unknown weights format (expected a checkpoint folder, .safetensors or .pth)")
    if size is not None:
        loaded.info = dataclasses.replace(loaded.info, input_size=_square(size))
    return loaded


def _checkpoint_with(path: Path, role: str) -> Path:
    """The checkpoint to read ``role`` from: a run folder gives its LAST stage that trained ``role``
    (e.g. the RGB parser of pretrain-rgb when the last stage is pretrain-translator)."""
    from faceparse.runs.checkpoint import META_FILE, find_checkpoint, latest_checkpoint, read_meta
    from faceparse.runs.stages import STAGES

    if not (path / META_FILE).is_file() and latest_checkpoint(path) is None:
        for stage in reversed(STAGES):
            checkpoint = latest_checkpoint(path / stage.name)
            if checkpoint is not None and role in read_meta(checkpoint).get("networks", {}):
                return checkpoint
    return find_checkpoint(path)


def _load_engine_checkpoint(path: Path, role: str) -> LoadedNetwork:
    from faceparse.models import build_model
    from faceparse.models.pretrained import check_scheme_fits
    from faceparse.runs.checkpoint import META_FILE, load_weights, read_meta

    checkpoint = _checkpoint_with(path, role)
    meta = read_meta(checkpoint)
    specs = meta.get("networks", {})
    if role not in specs:
        raise DataError(
            checkpoint, f"holds no {role} network (it has: {', '.join(specs) or 'none'}); pick another stage"
        )
    spec = specs[role]
    scheme = None if role == "generator" else _scheme_from_meta(meta, checkpoint)
    if scheme is not None and "num_classes" in spec["kwargs"]:
        check_scheme_fits(scheme.name, int(spec["kwargs"]["num_classes"]), checkpoint / META_FILE)
    model = build_model(spec["builder"], **spec["kwargs"])
    load_weights(model, checkpoint, role)
    size = meta.get("config", {}).get("data", {}).get("size", FPT_INPUT_SIZE)
    info = NetworkInfo(
        role=role,
        arch=spec["builder"],
        in_channels=int(spec["kwargs"].get("in_channels", 3)),
        normalization=spec["normalization"],
        input_size=_square(size),
        scheme=scheme,
        source=str(checkpoint),
        depth_range_m=_trained_depth_range(meta),
    )
    return LoadedNetwork(model.eval(), info)


def _trained_depth_range(meta: dict) -> float | None:
    """The training data's depth range in metres: recorded in ``meta.json`` since metric depth input,
    else read from the training dataset's ``dataset.json`` when that folder is still there."""
    from faceparse.data.format import DATASET_JSON, read_info

    if isinstance(meta.get("depth"), dict):
        return range_in_metres(meta["depth"].get("range"), meta["depth"].get("unit"))
    root = meta.get("config", {}).get("data", {}).get("root")
    if not root or not (Path(root) / DATASET_JSON).is_file():
        return None
    try:
        depth = read_info(root).depth
    except DataError:
        return None
    return range_in_metres(depth.range, depth.unit)


def _scheme_from_meta(meta: dict, checkpoint: Path) -> LabelScheme:
    stored = meta.get("scheme") or {}
    try:
        scheme = get_scheme(stored.get("name", ""))
    except KeyError as e:
        raise DataError(checkpoint / "meta.json", str(e.args[0])) from None
    if "classes" in stored and list(stored["classes"]) != list(scheme.classes):
        raise DataError(
            checkpoint / "meta.json",
            f"its classes {stored['classes']} differ from the {scheme.name} scheme's {list(scheme.classes)}",
        )
    return scheme


def _load_safetensors(path: Path, role: str) -> LoadedNetwork:
    from faceparse.models.pretrained import load_pretrained

    if role == "generator":
        raise DataError(path, "pretrained safetensors files hold parsers; a generator needs a checkpoint")
    model, pretrained = load_pretrained(path)
    return LoadedNetwork(model, _pretrained_info(pretrained, role, str(path), path))


def _load_fpt(path: Path, role: str) -> LoadedNetwork:
    from faceparse.models.pretrained import load_face_parsing_pytorch

    if role != "parser_rgb":
        raise DataError(path, f"face-parsing.PyTorch weights are an RGB parser, not a {role}")
    model, pretrained = load_face_parsing_pytorch(path)
    return LoadedNetwork(model, _pretrained_info(pretrained, role, str(path), path))


def _pretrained_info(pretrained: Any, role: str, source: str, path: Path) -> NetworkInfo:
    expected = 1 if role == "parser_depth" else 3
    if pretrained.in_channels != expected:
        raise DataError(
            path,
            f"these weights take {pretrained.in_channels}-channel input; the {role} needs {expected} "
            f"(use modality={'depth' if pretrained.in_channels == 1 else 'rgb'})",
        )
    return NetworkInfo(
        role=role,
        arch=pretrained.arch,
        in_channels=pretrained.in_channels,
        normalization=pretrained.normalization,
        input_size=(FPT_INPUT_SIZE, FPT_INPUT_SIZE),
        scheme=get_scheme(pretrained.label_scheme),
        source=source,
    )


# --- preprocessing ---------------------------------------------------------------------------------------


def as_rgb(image: ImageInput) -> np.ndarray:
    """A path, (H, W, 3) uint8, or float RGB in [0, 1] → (H, W, 3) uint8."""
    from faceparse.data.format import read_rgb

    if isinstance(image, str | os.PathLike):
        return read_rgb(image)
    rgb = np.asarray(image)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"an RGB image must be (H, W, 3), got shape {rgb.shape}")
    if rgb.dtype == np.uint8:
        return rgb
    if np.issubdtype(rgb.dtype, np.floating):
        _check_unit_range(rgb, "RGB")
        return np.rint(rgb * 255.0).astype(np.uint8)
    raise ValueError(f"an RGB image must be uint8 or float in [0, 1], got {rgb.dtype}")


def as_nearness(image: ImageInput, metric: MetricDepth | None = None) -> np.ndarray:
    """A path, (H, W) nearness float in [0, 1], or stored uint16/uint8 depth → (H, W) float32 nearness.
    With ``metric``, the path or array holds metric depth, converted by it (:mod:`.metric_depth`)."""
    from faceparse.data.encoding import stored_to_nearness
    from faceparse.data.format import read_depth

    if metric is not None:
        return metric.read(image) if isinstance(image, str | os.PathLike) else metric.to_nearness(image)
    if isinstance(image, str | os.PathLike):
        return read_depth(image)
    depth = np.asarray(image)
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[..., 0]
    if depth.ndim != 2:
        raise ValueError(f"a depth image must be (H, W), got shape {depth.shape}")
    if depth.dtype in (np.uint8, np.uint16):
        return stored_to_nearness(depth)
    if np.issubdtype(depth.dtype, np.floating):
        _check_unit_range(depth, "depth nearness")
        return depth.astype(np.float32)
    raise ValueError(f"depth must be float nearness in [0, 1], uint16 or uint8, got {depth.dtype}")


def _check_unit_range(values: np.ndarray, what: str) -> None:
    if values.size and (not np.isfinite(values).all() or values.min() < 0.0 or values.max() > 1.0):
        raise ValueError(
            f"{what} values must lie in [0, 1], got [{np.nanmin(values):.4g}, {np.nanmax(values):.4g}]"
        )


def _resize_rgb(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    height, width = size
    if rgb.shape[:2] == (height, width):
        return rgb
    shrink = height < rgb.shape[0] and width < rgb.shape[1]
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _resize_nearness(depth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    from faceparse.data.transforms import resize_depth

    height, width = size
    if depth.shape == (height, width):
        return depth
    shrink = height < depth.shape[0] and width < depth.shape[1]
    return resize_depth(depth, (width, height), cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


# --- the parser -----------------------------------------------------------------------------------------


@dataclass(eq=False)
class FaceParser:
    """A face parser ready for inference: ``parser(images) -> dict``. Build one with :func:`face_parser`.

    The returned dict holds

    * ``logits``: main logits at each image's own size, float32 on the CPU: a (B, C, H, W) tensor when
      all images share a size, otherwise a list of (C, H_i, W_i) tensors (omitted with ``keep_logits=False``);
    * ``labels``: argmax class ids, uint8: (B, H, W) array, or a list of (H_i, W_i) arrays;
    * ``classes``: the class names in id order; ``scheme``: the :class:`~faceparse.labels.LabelScheme`;
    * ``sizes``: each image's (H, W); with ``detect=True`` also ``boxes`` (square crop per image, ``None``
      where no face was found and the whole image was parsed) and ``scores`` (detector confidence); with
      ``align=True`` ``faces``: per image, a list of :class:`~faceparse.inference.align.Face`.
    """

    model: nn.Module = field(repr=False)
    info: NetworkInfo
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    batch_size: int = 8
    detector: Detector | None = None  # used when called with detect=True; MediaPipe when left None
    metric: MetricDepth | None = None  # depth input in mm or m, converted to nearness; None: nearness
    landmarker: Landmarker | None = None  # used when called with align=True; MediaPipe when left None
    framing: Framing | None = None  # align=True's target; None: resolve_framing(info) on first use

    def __post_init__(self) -> None:
        if self.info.scheme is None:
            raise ValueError(f"{self.info.source}: a {self.info.role} is not a face parser")
        self.device = torch.device(self.device)
        self.model = self.model.to(self.device).eval()

    @property
    def scheme(self) -> LabelScheme:
        assert self.info.scheme is not None
        return self.info.scheme

    @property
    def classes(self) -> tuple[str, ...]:
        return self.scheme.classes

    @property
    def modality(self) -> str:
        return self.info.modality

    @property
    def input_size(self) -> tuple[int, int]:
        return self.info.input_size

    def __call__(
        self,
        images: ImageInput | Sequence[ImageInput],
        *,
        detect: bool = False,
        align: bool = False,
        rgb: ImageInput | Sequence[ImageInput] | None = None,
        keep_logits: bool = True,
    ) -> dict[str, Any]:
        """Parse one image or a list of images (arrays or paths) of any sizes; see the class docstring.

        A path to a video file (``.mp4``, ``.avi``, ...: :mod:`faceparse.inference.video`) parses every
        frame, decoded into memory (a short clip; ``predict_video`` streams a long one to files): the
        output is the images' with ``"frames"`` (frame names) and ``"fps"`` added."""
        if isinstance(images, str | os.PathLike):
            from faceparse.inference.video import is_video, open_clip

            if is_video(images):
                if self.modality != "rgb":
                    raise ValueError("video input is RGB: parse depth clips as a list of depth maps")
                clip = open_clip(images)
                names, frames = zip(*clip.frames(), strict=True)
                out = self(list(frames), detect=detect, align=align, keep_logits=keep_logits)
                return {**out, "frames": list(names), "fps": clip.fps}
        # one image: a path, an array, or anything numpy can view as one (a PIL image)
        batch: list[ImageInput]
        if isinstance(images, str | os.PathLike | np.ndarray):
            batch = [images]
        elif hasattr(images, "__array_interface__"):  # as_rgb / as_nearness view it with np.asarray anyway
            batch = [np.asarray(images)]
        else:
            batch = list(images)
        if not batch:
            raise ValueError("no images given")
        arrays = [as_rgb(im) if self.modality == "rgb" else as_nearness(im, self.metric) for im in batch]
        sizes = [a.shape[:2] for a in arrays]
        if align:  # faceparse.inference.align: every face warped into the training framing and back
            if detect:
                raise ValueError("detect=True and align=True exclude each other: align finds every face")
            found, aligned, faces = parse_aligned(self, arrays, keep_logits=keep_logits, rgb=rgb)
            return {**self._output(found, aligned, sizes), "faces": faces}
        boxes: list[Box | None] = [None] * len(arrays)
        scores: list[float] = [0.0] * len(arrays)
        if detect:
            boxes, scores = self._detect(arrays)
        crops = [a if box is None else crop_square(a, box) for a, box in zip(arrays, boxes, strict=True)]
        logits: list[torch.Tensor] = []
        labels: list[np.ndarray] = []  # each (H_i, W_i)
        if keep_logits:
            for lg, box, size in zip(self.predict_logits(crops), boxes, sizes, strict=True):
                logits.append(lg if box is None else paste_logits(lg, box, size))
                labels.append(logits[-1].argmax(0).to(torch.uint8).numpy())
        else:
            for label, box, size in zip(self._iter_labels(crops), boxes, sizes, strict=True):
                labels.append(label if box is None else paste_labels(label, box, size))
        out = self._output(labels, logits if keep_logits else None, sizes)
        if detect:
            out["boxes"], out["scores"] = boxes, scores
        return out

    def _output(
        self, labels: list[np.ndarray], logits: list[torch.Tensor] | None, sizes: Sequence[tuple[int, ...]]
    ) -> dict[str, Any]:
        same_size = len(set(sizes)) == 1
        out: dict[str, Any] = {
            "labels": np.stack(labels) if same_size else labels,
            "classes": self.classes,
            "scheme": self.scheme,
            "sizes": [tuple(int(s) for s in size) for size in sizes],
        }
        if logits is not None:
            out["logits"] = torch.stack(logits) if same_size else logits
        return out

    def _detect(self, arrays: list[np.ndarray]) -> tuple[list[Box | None], list[float]]:
        if self.modality != "rgb":
            raise ValueError("face detection works on RGB images; depth maps are parsed whole")
        if self.detector is None:
            self.detector = mediapipe_detector()
        found = [self.detector(rgb) for rgb in arrays]
        return [f[0] if f else None for f in found], [f[1] if f else 0.0 for f in found]

    def predict_logits(self, images: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Prepared arrays (uint8 RGB or nearness) → list of (C, H_i, W_i) float32 CPU logits, in batches."""
        out: list[torch.Tensor] = []
        for small, image in self._iter_small_logits(images):
            resized = F.interpolate(small[None], size=image.shape[:2], mode="bilinear", align_corners=True)
            out.append(resized[0].float().cpu())  # (C, H_i, W_i)
        return out

    def _iter_small_logits(self, images: Sequence[np.ndarray]) -> Iterator[tuple[torch.Tensor, np.ndarray]]:
        """(logits at the network's output size (C, h, w), image) for each image, run in batches."""
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            logits = self.forward(self.prepare(chunk))  # (b, C, h, w)
            yield from zip(logits, chunk, strict=True)

    def _iter_labels(self, images: Sequence[np.ndarray]) -> Iterator[np.ndarray]:
        """The labels :meth:`predict_logits` would give, (H_i, W_i) uint8, without its full-size logits."""
        for small, image in self._iter_small_logits(images):
            yield _upsampled_argmax(small, image.shape[:2])

    def prepare(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Resize to the network size, stack and normalise → (B, C, H, W) on the parser's device."""
        from faceparse.data.normalize import NORMALIZATIONS

        if self.modality == "rgb":
            arrays = [_resize_rgb(im, self.input_size) for im in images]
            pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W)
        else:
            arrays = [_resize_nearness(im, self.input_size) for im in images]
            pixels = torch.from_numpy(np.stack(arrays))[:, None].float()  # (B, 1, H, W)
        return NORMALIZATIONS[self.info.normalization](pixels.to(self.device))

    @torch.inference_mode()
    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Normalised (B, C, H, W) → the main logits (B, classes, h, w) (1/4 size for EAGRNet)."""
        from faceparse.losses import main_logits

        return main_logits(self.model(inputs))


def _upsampled_argmax(small: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """argmax over classes of (C, h, w) logits upsampled to ``size`` (bilinear, ``align_corners=True``)
    → (H, W) uint8, one class at a time, keeping only a running maximum: about 10 bytes a pixel instead
    of 4 per class and 8 for the argmax (64 megapixels, 13 classes: 0.6 GB instead of 3.8)."""

    def upsampled(k: int) -> torch.Tensor:  # bilinear upsampling treats channels independently
        up = F.interpolate(small[None, k : k + 1], size=size, mode="bilinear", align_corners=True)
        return up[0, 0].float().cpu()  # (H, W)

    best = upsampled(0)
    label = torch.zeros(size, dtype=torch.uint8)
    for k in range(1, small.shape[0]):
        up = upsampled(k)
        label[up > best] = k  # strictly greater: ties keep the lower id, as argmax does
        torch.maximum(best, up, out=best)
    return label.numpy()


def face_parser(
    source: str | os.PathLike,
    modality: str = "rgb",
    device: str | torch.device = "cpu",
    *,
    size: int | Sequence[int] | None = None,
    batch_size: int = 8,
    detector: Detector | None = None,
    depth_units: str = "nearness",
    depth_range_m: float | None = None,
    intrinsics: tuple[float, float, float, float] | None = None,
    landmarker: Landmarker | None = None,
    framing: Framing | None = None,
) -> FaceParser:
    """Load a face parser from an engine checkpoint, a faceparse ``.safetensors`` file or a
    face-parsing.PyTorch ``.pth``; ``modality`` picks the RGB or the depth parser of a checkpoint.

    ``depth_units`` (depth parsers): ``"nearness"`` (our encoding), ``"mm"`` or ``"m"``: metric depth,
    converted to the encoding (:mod:`faceparse.inference.metric_depth`) with ``depth_range_m``, by
    default the range the parser was trained with (else 0.3 m); ``intrinsics`` ``(fx, fy, cx, cy)``
    when the values are distances along each pixel's ray rather than camera z.

    >>> parser = face_parser("runs/celeba/joint", modality="rgb")       # doctest: +SKIP
    >>> out = parser(["a.jpg", "b.png"], detect=True)                  # doctest: +SKIP
    >>> out["classes"][out["labels"][0][100, 100]]                       # doctest: +SKIP
    'skin'
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    role = _role_for(modality)
    if depth_units not in DEPTH_UNITS:
        raise ValueError(f"depth_units must be one of {DEPTH_UNITS}, got {depth_units!r}")
    metric_given = depth_units != "nearness"
    if metric_given and modality != "depth":
        raise ValueError(f"depth_units={depth_units!r} needs modality='depth'")
    if not metric_given and (depth_range_m is not None or intrinsics is not None):
        raise ValueError("a depth range and intrinsics apply to metric depth (depth_units mm or m)")
    loaded = load_network(source, role, size)
    metric = None
    if metric_given:
        if depth_range_m is None:  # what the parser was trained with, else every faceparse source's span
            depth_range_m = loaded.info.depth_range_m or DEFAULT_RANGE_M
        metric = MetricDepth(depth_units, depth_range_m, intrinsics=intrinsics)
    return FaceParser(
        loaded.model, loaded.info, torch.device(device), batch_size, detector, metric, landmarker, framing
    )


# --- whole folders (the `faceparse predict` command) ---------------------------------------------------

RGB_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
DEPTH_SUFFIXES = (".png", ".tif", ".tiff")


@dataclass
class PredictReport:
    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # outputs that already existed
    failed: list[tuple[Path, str]] = field(default_factory=list)  # (input, problem)
    too_large: list[Path] = field(default_factory=list)  # inputs among ``failed`` refused by the pixel cap
    # inputs shrunk to fit ``max_side``: (input, its (width, height), the (width, height) parsed and written)
    downscaled: list[tuple[Path, tuple[int, int], tuple[int, int]]] = field(default_factory=list)
    faces: dict[Path, int] = field(default_factory=dict)  # with align: faces found per input written


def list_inputs(
    path: str | os.PathLike, modality: str = "rgb", suffixes: Sequence[str] | None = None
) -> list[Path]:
    """A single image file, or the image files directly inside a folder (sorted by name); ``suffixes``
    overrides the modality's file types (metric depth: :data:`.metric_depth.METRIC_SUFFIXES`)."""
    path = Path(path)
    if suffixes is None:
        suffixes = RGB_SUFFIXES if modality == "rgb" else DEPTH_SUFFIXES
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(path, "input not found")
    found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if not found:
        raise DataError(path, f"no {modality} images ({', '.join(suffixes)}) in this folder")
    return found


def read_input(
    path: Path,
    modality: str,
    *,
    max_pixels: int | None = MAX_PIXELS,
    max_side: int | None = None,
    metric: MetricDepth | None = None,
) -> np.ndarray:
    """An image file as the parser takes it: (H, W, 3) uint8 RGB as displayed (EXIF orientation applied)
    or (H, W) nearness (converted from metric depth by ``metric`` when given). ``max_pixels`` caps the
    pixels decoded (:class:`ImageTooLarge` beyond it); ``max_side`` shrinks a larger image to fit, aspect
    kept (a JPEG decodes reduced)."""
    from faceparse.data.format import fit_within, read_depth, read_rgb

    if modality == "rgb":
        return read_rgb(path, max_pixels=max_pixels, max_side=max_side)
    if metric is not None:
        depth = metric.read(path, max_pixels=max_pixels)
    else:
        depth = read_depth(path, max_pixels=max_pixels)
    if max_side is not None and max(depth.shape) > max_side:
        width, height = fit_within((depth.shape[1], depth.shape[0]), max_side)
        depth = _resize_nearness(depth, (height, width))
    return depth


def predict_files(
    parser: FaceParser,
    inputs: Iterable[Path],
    out_dir: str | os.PathLike,
    *,
    detect: bool = False,
    align: bool = False,
    rgb_frames: str | os.PathLike | None = None,
    overlay: bool = False,
    overwrite: bool = False,
    max_pixels: int | None = MAX_PIXELS,
    max_side: int | None = None,
    on_image: Callable[[Path], None] | None = None,
) -> PredictReport:
    """Predict label maps for image files: ``out_dir/<stem>.png`` (8-bit class ids, what ``score-masks``
    reads) and with ``overlay`` a colour overlay ``out_dir/overlay/<stem>.png``.

    Unreadable inputs are recorded in ``report.failed`` (file and problem) and skipped, as are images over
    ``max_pixels`` (checked from the header, before decoding; None: no cap). ``max_side`` parses images
    larger than that (longer side) shrunk to fit, and writes their label maps at that size
    (``report.downscaled``). Existing label maps are kept unless ``overwrite`` (so an interrupted run
    resumes). No output ever replaces an input, nor a file that is not a label map. Writes are atomic.
    ``align`` parses every face aligned (:mod:`faceparse.inference.align`) and writes each image's faces
    (box, five landmarks, score, transform) to ``out_dir/faces/<stem>.json``; depth maps are aligned with
    the landmarks of their paired RGB frames, ``rgb_frames/<stem>.*`` (same size), when given.
    """
    from faceparse.data.format import ImageTooLarge, write_label

    if rgb_frames is not None and not (align and parser.modality == "depth"):
        raise ValueError("rgb_frames pair RGB frames with depth maps for align=True")
    out_dir = Path(out_dir)
    inputs = list(inputs)
    report = PredictReport()
    # metric depth is converted as each file is read (its errors name the file): the network gets nearness
    network = parser if parser.metric is None else dataclasses.replace(parser, metric=None)
    pending: list[tuple[Path, np.ndarray]] = []
    paired: dict[Path, np.ndarray] = {}  # with rgb_frames: each pending depth map's RGB frame
    seen: dict[str, Path] = {}
    protected = {file_identity(p) for p in inputs} - {None}

    def flush() -> None:
        if not pending:
            return
        paths, arrays = zip(*pending, strict=True)
        frames = [paired.pop(p) for p in paths] if rgb_frames is not None else None
        result = network(list(arrays), detect=detect, align=align, rgb=frames, keep_logits=False)
        for k, (path, image, label) in enumerate(zip(paths, arrays, result["labels"], strict=True)):
            target = out_dir / f"{path.stem}.png"
            write_label(target, np.ascontiguousarray(label))
            if align:
                _write_faces(
                    out_dir / "faces" / f"{path.stem}.json", path, label.shape, result["faces"][k], network
                )
                report.faces[path] = len(result["faces"][k])
            if overlay:
                _write_overlay(out_dir / "overlay" / f"{path.stem}.png", image, label, parser)
            report.written.append(target)
            if on_image:
                on_image(path)
        pending.clear()

    for path in inputs:
        target = out_dir / f"{path.stem}.png"
        overlay_target = out_dir / "overlay" / f"{path.stem}.png" if overlay else None
        refusal = _refusal(target, overlay_target, protected, seen.get(path.stem))
        if refusal is not None:
            report.failed.append((path, refusal))
        elif target.exists() and not overwrite:
            report.skipped.append(target)
        else:
            seen[path.stem] = path
            try:
                # its size as displayed, from the header (cheap), to report a downscale
                shown = _shown_size(path) if max_side is not None else None
                image = read_input(
                    path, parser.modality, max_pixels=max_pixels, max_side=max_side, metric=parser.metric
                )
                if rgb_frames is not None:
                    paired[path] = _paired_frame(
                        Path(rgb_frames), path, image.shape[:2], max_pixels, max_side
                    )
            except ImageTooLarge as e:
                report.failed.append((path, e.problem))
                report.too_large.append(path)
            except DataError as e:
                report.failed.append((path, e.problem))
            else:
                if max_side is not None and shown is not None and max(shown) > max_side:
                    report.downscaled.append((path, shown, (image.shape[1], image.shape[0])))
                pending.append((path, image))
                if len(pending) >= parser.batch_size:
                    flush()
                continue  # reported by flush() once written
        if on_image:
            on_image(path)
    flush()
    return report


def _shown_size(path: Path) -> tuple[int, int]:
    """An input's (width, height) as displayed, from its header (a ``.npy`` depth map's shape)."""
    from faceparse.data.format import image_size

    if path.suffix.lower() != ".npy":
        return image_size(path, max_pixels=None)
    try:
        shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
    except (OSError, ValueError) as e:
        raise DataError(path, f"unreadable .npy file ({e})") from None
    return (int(shape[1]), int(shape[0])) if len(shape) >= 2 else (0, 0)


def _refusal(
    target: Path, overlay: Path | None, inputs: set[tuple[int, int] | None], earlier: Path | None
) -> str | None:
    """Why an input's outputs may not be written (None: they may): one would replace an input image
    (``inputs``: their :func:`~faceparse.utils.io.file_identity`), an ``earlier`` input of the same name
    writes the same files, or the label map's path holds a file that is not a label map (a photo, say)."""
    for what, out in (("label map", target), ("overlay", overlay)):
        if out is not None and file_identity(out) in inputs:
            return f"its {what} {out} would replace an input image; choose another output folder"
    if earlier is not None:
        return f"same name as {earlier.name}: both would write {target.name}"
    if target.exists() and (problem := label_map_problem(target)):
        return f"{target} exists and is not a label map ({problem}); refusing to replace it"
    return None


def _paired_frame(
    folder: Path, depth: Path, size: tuple[int, ...], max_pixels: int | None, max_side: int | None
) -> np.ndarray:
    """The RGB frame ``folder/<stem>.<any RGB suffix>`` paired with a depth map, at the depth map's size."""
    from faceparse.data.format import read_rgb

    found = [folder / f"{depth.stem}{s}" for s in RGB_SUFFIXES if (folder / f"{depth.stem}{s}").is_file()]
    if not found:
        raise DataError(depth, f"no paired RGB frame {depth.stem}.* in {folder}")
    frame = read_rgb(found[0], max_pixels=max_pixels, max_side=max_side)
    if frame.shape[:2] != tuple(size):
        raise DataError(
            found[0], f"RGB frame is {frame.shape[:2]}, its depth map {tuple(size)} (height, width)"
        )
    return frame


def _write_faces(path: Path, image: Path, size: tuple[int, ...], faces: list, parser: FaceParser) -> None:
    from faceparse.utils.io import atomic_write_json

    framing = parser.framing.to_json() if parser.framing is not None else None
    described = {"image": image.name, "size": [int(s) for s in size], "framing": framing}
    atomic_write_json(path, {**described, "faces": [face.to_json() for face in faces]})


def _write_overlay(path: Path, image: np.ndarray, label: np.ndarray, parser: FaceParser) -> None:
    from PIL import Image

    from faceparse.inference.visualize import depth_to_rgb, overlay
    from faceparse.utils.io import atomic_save

    base = image if parser.modality == "rgb" else depth_to_rgb(image)
    picture = overlay(base, label, parser.scheme)
    atomic_save(path, lambda p: Image.fromarray(picture).save(p, format="PNG"))
