"""Face alignment for inference: five landmarks per face, a similarity warp into the parser's framing,
and the warp of each face's logits back into the whole image (``face_parser(..., align=True)``).

A parser sees faces framed as in its training data: CelebA-HQ's photos put the eyes about 0.24 of the
width apart, a quarter of the way above the centre. A face in a group photo or a selfie is framed
otherwise, and a parser trained on CelebAMask-HQ parses it poorly. Alignment puts each face where the
training faces were:

1. a :data:`Landmarker` finds every face: its box, a score, and five landmarks (the centres of the two
   eyes, the nose tip, the two mouth corners, in image pixels; MediaPipe's detector and face mesh by
   default, offline);
2. the least-squares similarity (Umeyama) that maps the five landmarks onto the :class:`Framing`'s
   five-point template warps the face into a crop of the network's input size (bilinear);
3. the crop is parsed, and its logits are warped back by the inverse similarity (bilinear);
4. every pixel takes the logits of the face whose crop centre is NEAREST, measured in crop units (the
   pixel's position in that face's crop, relative to the crop size: a large face owns more pixels than a
   small one at the same distance); a pixel outside every face's crop is background (foreground logits
   :data:`~faceparse.inference.detect.OUTSIDE_LOGIT`). An image with no face is parsed whole, as without
   alignment, and reports no faces.

The framing comes from the parser's checkpoint (:func:`resolve_framing`): a run trained on
``faceparse synth`` data reads the field of view recorded in that dataset's ``dataset.json``; otherwise
the label scheme names the dataset and its documented framing (:data:`SCHEME_FRAMINGS`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from faceparse.inference.detect import OUTSIDE_LOGIT, DetectorUnavailable

if TYPE_CHECKING:
    from faceparse.inference.predictor import FaceParser, NetworkInfo

__all__ = [
    "CELEBA_HQ",
    "FIVE_POINTS",
    "SCHEME_FRAMINGS",
    "Face",
    "Framing",
    "Landmarker",
    "align_transform",
    "dataset_framing",
    "mediapipe_landmarker",
    "parse_aligned",
    "resolve_framing",
    "synthetic_framing",
    "warp_back",
    "warp_face",
]

# the five landmarks, in this order: left to right in the IMAGE of an upright frontal face
FIVE_POINTS = ("eye_image_left", "eye_image_right", "nose_tip", "mouth_image_left", "mouth_image_right")


@dataclass(frozen=True)
class Framing:
    """Where a parser's training images put the five landmarks: fractions of the crop's width and height
    (0 = the left / top edge, 1 = the right / bottom edge), in :data:`FIVE_POINTS` order."""

    template: tuple[tuple[float, float], ...]
    source: str  # where the numbers come from

    def __post_init__(self) -> None:
        if np.asarray(self.template).shape != (5, 2):
            raise ValueError(f"a framing template has five (x, y) points, got {self.template}")

    @property
    def iod(self) -> float:
        """Inter-ocular distance / crop width: the framing measure of :mod:`faceparse.data.framing`."""
        (x0, y0), (x1, y1) = self.template[:2]
        return math.hypot(x1 - x0, y1 - y0)

    def points(self, size: tuple[int, int]) -> np.ndarray:
        """(5, 2) template in pixels of an (H, W) crop (pixel centres at integers)."""
        height, width = size
        return np.asarray(self.template, np.float64) * [width, height] - 0.5

    def to_json(self) -> dict[str, Any]:
        return {"template": [list(p) for p in self.template], "iod": self.iod, "source": self.source}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Framing:
        return cls(tuple((float(x), float(y)) for x, y in obj["template"]), str(obj.get("source", "")))


def _symmetric(iod: float, eye_y: float, nose_y: float, mouth_y: float, mouth_width: float, source: str):
    return Framing(
        (
            (0.5 - iod / 2, eye_y),
            (0.5 + iod / 2, eye_y),
            (0.5, nose_y),
            (0.5 - mouth_width / 2, mouth_y),
            (0.5 + mouth_width / 2, mouth_y),
        ),
        source,
    )


def _karras_framing(face: np.ndarray, source: str) -> Framing:
    """The crop CelebA-HQ was made with (Karras et al. 2018, ICLR, appendix C; ``dataset_tool.py``
    ``create_celebahq``, the same rule as FFHQ's) applied to a five-point face: a square of side
    2·max(2·|eye_to_eye|, 1.8·|eye_to_mouth|), centred at eye_avg + 0.1·eye_to_mouth, turned by the
    average of the eye line and the eye-to-mouth line."""
    eye_avg = (face[0] + face[1]) / 2
    mouth_avg = (face[3] + face[4]) / 2
    eye_to_eye, eye_to_mouth = face[1] - face[0], mouth_avg - eye_avg
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])
    x = x / np.hypot(*x) * max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.array([-x[1], x[0]])
    centre = eye_avg + eye_to_mouth * 0.1
    side = 2 * np.hypot(*x)
    rel = face - centre
    template = np.stack([rel @ x / np.hypot(*x), rel @ y / np.hypot(*y)], axis=1) / side + 0.5
    return Framing(tuple((round(float(u), 4), round(float(v), 4)) for u, v in template), source)


# InsightFace's ArcFace five-point mean face (pixels of a 112² crop; arcface_torch ``norm_crop``), the
# usual average of the five landmarks of many aligned faces
ARCFACE_MEAN_FACE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)
# → eyes at y 0.472, 0.2406 of the width apart; mouth corners at y 0.750. MediaPipe measures CelebA-HQ
# photos at 0.239 and 0.241 (FACTS §5b), so the rule and the mean face reproduce the dataset's framing.
CELEBA_HQ = _karras_framing(
    ARCFACE_MEAN_FACE, "CelebA-HQ's crop rule (Karras et al. 2018) on the ArcFace mean face; FACTS §5b"
)

# faceparse synth v2 at its default 32° field of view: medians over the 59 faces MediaPipe found in the
# first 60 test images (192², seed 0), measured 2026-11-30 with the landmarks of mediapipe_landmarker;
# the inter-ocular distance is docs/datasets.md's framing measure (0.239, median of 51 samples at 256²).
SYNTH_FOV_DEG = 32.0
_SYNTH = {"iod": 0.239, "eye_y": 0.495, "nose_y": 0.635, "mouth_y": 0.729, "mouth_width": 0.168}


def synthetic_framing(fov_deg: float = SYNTH_FOV_DEG) -> Framing:
    """The framing of ``faceparse synth`` data rendered with a ``fov_deg`` vertical field of view: the
    32° template scaled about the image centre (the principal point) by tan(16°) / tan(fov/2)."""
    k = math.tan(math.radians(SYNTH_FOV_DEG / 2)) / math.tan(math.radians(fov_deg / 2))
    s = _SYNTH
    return _symmetric(
        s["iod"] * k,
        0.5 + (s["eye_y"] - 0.5) * k,
        0.5 + (s["nose_y"] - 0.5) * k,
        0.5 + (s["mouth_y"] - 0.5) * k,
        s["mouth_width"] * k,
        f"faceparse synth, {fov_deg:g}° field of view (measured at 32°, docs/inference.md)",
    )


# Released weights and real datasets with no recorded framing. LaPa and Helen store whole photos of
# varying framing, which faceparse's converters keep as they are; no measured template exists for them
# [unverified], so they get CelebA-HQ's. Override with face_parser(..., framing=...).
SCHEME_FRAMINGS: dict[str, Framing] = {
    "celebamask13": CELEBA_HQ,
    "celebamask19_fpt": CELEBA_HQ,
    "lapa11": Framing(CELEBA_HQ.template, "CelebA-HQ's framing; LaPa's own is unmeasured [unverified]"),
    "helen11": Framing(CELEBA_HQ.template, "CelebA-HQ's framing; Helen's own is unmeasured [unverified]"),
}


def dataset_framing(root: str | Path) -> Framing | None:
    """The framing a dataset records: a ``faceparse synth`` set's field of view (``dataset.json``
    ``provenance.fov_deg``; 40° for generator version 1, which did not record it). None for other data
    (real datasets record none) and when ``root`` holds no readable ``dataset.json``. Training stores it
    in each checkpoint's ``meta.json`` (``framing``)."""
    from faceparse.utils.io import DataError, read_json

    path = Path(root) / "dataset.json" if str(root) else None
    if path is None or not path.is_file():
        return None
    try:
        provenance = read_json(path).get("provenance") or {}
    except (DataError, AttributeError):
        return None
    if provenance.get("generator") != "faceparse.data.synth":
        return None
    version_1 = provenance.get("generator_version") == 1
    return synthetic_framing(float(provenance.get("fov_deg", 40.0 if version_1 else SYNTH_FOV_DEG)))


def resolve_framing(info: NetworkInfo) -> Framing:
    """The framing a parser was trained with: ``meta.json``'s ``framing`` when its checkpoint records one;
    else :func:`dataset_framing` of the checkpoint's ``config.data.root`` when that dataset is still
    there (checkpoints written before training recorded it); otherwise :data:`SCHEME_FRAMINGS` for the
    label scheme (CelebA-HQ's when the scheme has none)."""
    from faceparse.utils.io import read_json

    meta_path = Path(info.source) / "meta.json"
    if meta_path.is_file():
        meta = read_json(meta_path)
        if isinstance(meta.get("framing"), dict):
            return Framing.from_json(meta["framing"])
        recorded = dataset_framing((meta.get("config") or {}).get("data", {}).get("root") or "")
        if recorded is not None:
            return recorded
    name = info.scheme.name if info.scheme is not None else ""
    return SCHEME_FRAMINGS.get(name, CELEBA_HQ)


# --- faces ------------------------------------------------------------------------------------------------


@dataclass
class Face:
    """One face: its detector box (x0, y0, x1, y1), the five landmarks ((5, 2) pixels, :data:`FIVE_POINTS`
    order; None for a depth map parsed without landmarks) and the detector's score."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray | None
    score: float
    transform: np.ndarray | None = None  # (2, 3): image pixels → aligned-crop pixels, set when parsed

    def to_json(self) -> dict[str, Any]:
        def rounded(values: Any) -> Any:
            return None if values is None else np.round(np.asarray(values, np.float64), 3).tolist()

        return {
            "box": rounded(self.box),
            "landmarks": rounded(self.landmarks),
            "score": round(float(self.score), 4),
            "transform": None if self.transform is None else np.round(self.transform, 6).tolist(),
        }


Landmarker = Callable[[np.ndarray], list[Face]]  # RGB uint8 (H, W, 3) → every face (any order)

# MediaPipe face-mesh ids: the eye corners of faceparse.data.framing (subject's right eye = image left),
# the nose tip, and the mouth corners (61: image left, 291: image right)
MESH_EYES = ((33, 133), (362, 263))
MESH_NOSE, MESH_MOUTH = 1, (61, 291)


def five_from_mesh(points: np.ndarray) -> np.ndarray:
    """(478, ≥2) face-mesh points → (5, 2) five landmarks; eye centres as the framing measure has them."""
    eyes = [points[list(ids), :2].mean(axis=0) for ids in MESH_EYES]
    return np.stack([*eyes, points[MESH_NOSE, :2], *(points[i, :2] for i in MESH_MOUTH)])


def five_from_keypoints(keypoints: np.ndarray) -> np.ndarray:
    """MediaPipe detector's (6, 2) keypoints → five landmarks: it gives the mouth's centre, so the corners
    are put on either side of it along the eye line, as far apart as the mean face's (0.83 × the eyes')."""
    eye_left, eye_right, nose, mouth = keypoints[:4]
    half = (eye_right - eye_left) * 0.414
    return np.stack([eye_left, eye_right, nose, mouth - half, mouth + half])


def mediapipe_landmarker(margin: float = 0.25) -> Landmarker:
    """MediaPipe's offline detector (every face) and face mesh (the five landmarks, in a square crop
    around each box grown by ``margin``); where the mesh fails, the detector's own keypoints. Raises
    :class:`~faceparse.inference.detect.DetectorUnavailable` when mediapipe is not installed."""
    from faceparse.utils.facemesh import FaceMeshEstimator

    try:
        estimator = FaceMeshEstimator(margin=margin)
    except RuntimeError as e:
        raise DetectorUnavailable(f"face alignment needs MediaPipe: {e}") from None

    def landmark(rgb: np.ndarray) -> list[Face]:
        faces = []
        for det in estimator.detect_all(rgb):
            x0, y0, x1, y1 = det.box
            side = int(round(max(x1 - x0, y1 - y0) * (1 + 2 * margin)))
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            crop = (int(round(cx - side / 2)), int(round(cy - side / 2)), max(side, 8))
            points = estimator.mesh_in(rgb, crop)
            five = None if points is None else five_from_mesh(points)
            eyes = None if five is None else five[:2].mean(axis=0)
            if eyes is None or not (x0 <= eyes[0] <= x1 and y0 <= eyes[1] <= y1):  # none, or another face
                five = five_from_keypoints(det.keypoints)
            faces.append(Face(det.box, five, det.score))
        return faces

    return landmark


# --- geometry ---------------------------------------------------------------------------------------------


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The least-squares similarity (rotation, uniform scale, translation; no reflection) mapping ``src``
    points onto ``dst`` (Umeyama 1991) as a (2, 3) matrix."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    sc, dc = src - mu_s, dst - mu_d
    cov = dc.T @ sc / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.diag([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    rotation = u @ d @ vt
    spread = float((sc**2).sum(axis=1).mean())
    if spread == 0.0:  # every source point the same: no transform (NaN, which callers test for)
        return np.full((2, 3), np.nan)
    scale = float(np.trace(np.diag(s) @ d) / spread)
    return np.concatenate([scale * rotation, (mu_d - scale * rotation @ mu_s)[:, None]], axis=1)


def align_transform(landmarks: np.ndarray, framing: Framing, size: tuple[int, int]) -> np.ndarray:
    """(2, 3) similarity: image pixels → pixels of the (H, W) aligned crop, five landmarks on the template."""
    return similarity(landmarks, framing.points(size))


def _inverse(matrix: np.ndarray) -> np.ndarray:
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def warp_face(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The (H, W) crop ``matrix`` maps ``image`` to, bilinear, 0 outside the image. An image shrunk by more
    than 2 is first reduced by area (``cv2.resize``), so the warp does not alias. A float (H, W) image is
    depth nearness: warped with its mask (value > 0) so that the background stays 0 and does not bleed."""
    import cv2

    height, width = size
    scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    if scale < 0.5:
        from faceparse.data.transforms import resize_depth

        h, w = image.shape[:2]
        small = (max(1, round(w * 2 * scale)), max(1, round(h * 2 * scale)))
        rx, ry = small[0] / w, small[1] / h
        if image.ndim == 2 and image.dtype != np.uint8:
            image = resize_depth(image, small, cv2.INTER_AREA)
        else:
            image = cv2.resize(image, small, interpolation=cv2.INTER_AREA)
        # a reduced pixel x' is the original (x' + 0.5) / rx - 0.5 (pixel centres kept)
        up = np.array([[1 / rx, 0, 0.5 / rx - 0.5], [0, 1 / ry, 0.5 / ry - 0.5], [0, 0, 1]])
        matrix = matrix @ up
    flags = cv2.INTER_LINEAR
    if image.ndim == 2 and image.dtype != np.uint8:
        mask = (image > 0).astype(np.float32)
        value = cv2.warpAffine(image.astype(np.float32), matrix, (width, height), flags=flags)
        weight = cv2.warpAffine(mask, matrix, (width, height), flags=flags)
        return np.where(weight >= 0.5, value / np.maximum(weight, 1e-6), 0.0).astype(np.float32)
    return cv2.warpAffine(np.ascontiguousarray(image), matrix, (width, height), flags=flags)


def warp_back(
    crop_logits: torch.Tensor, matrix: np.ndarray, image_size: tuple[int, int]
) -> tuple[tuple[slice, slice], torch.Tensor, torch.Tensor] | None:
    """A crop's (C, h, w) logits back in the image, over the image region its crop covers.

    Returns (the region as (rows, columns) slices, its (C, rh, rw) logits sampled bilinearly through the
    inverse of ``matrix`` (image → crop pixels), its (rh, rw) distance to the crop centre in crop units,
    ``inf`` where the crop does not reach); None when the crop lies outside the image.
    """
    num_classes, h, w = crop_logits.shape
    height, width = image_size
    back = _inverse(matrix)
    corners = np.array([[-0.5, -0.5, 1], [w - 0.5, -0.5, 1], [w - 0.5, h - 0.5, 1], [-0.5, h - 0.5, 1]])
    xy = corners @ back.T
    x0, y0 = max(int(math.floor(xy[:, 0].min())), 0), max(int(math.floor(xy[:, 1].min())), 0)
    x1, y1 = min(int(math.ceil(xy[:, 0].max())) + 1, width), min(int(math.ceil(xy[:, 1].max())) + 1, height)
    if x1 <= x0 or y1 <= y0:
        return None
    ys, xs = torch.meshgrid(
        torch.arange(y0, y1, dtype=torch.float64), torch.arange(x0, x1, dtype=torch.float64), indexing="ij"
    )
    m = torch.from_numpy(matrix)
    u = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]  # crop column of each image pixel
    v = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    grid = torch.stack([2 * u / max(w - 1, 1) - 1, 2 * v / max(h - 1, 1) - 1], dim=-1).float()
    sampled = F.grid_sample(
        crop_logits[None].float(), grid[None], mode="bilinear", padding_mode="border", align_corners=True
    )[0]
    inside = (u >= -0.5) & (u <= w - 0.5) & (v >= -0.5) & (v <= h - 0.5)
    distance = torch.hypot((u + 0.5) / w - 0.5, (v + 0.5) / h - 0.5).float()
    distance[~inside] = math.inf
    return (slice(y0, y1), slice(x0, x1)), sampled, distance


# --- parsing ----------------------------------------------------------------------------------------------


def _depth_only_face(nearness: np.ndarray, size: tuple[int, int]) -> Face | None:
    """No landmarks for a depth map: the square around its surface (nearness > 0), 10% margin, as the
    crop; the face's box is that surface's box."""
    rows, cols = np.nonzero(nearness > 0)
    if rows.size == 0:
        return None
    x0, x1, y0, y1 = float(cols.min()), float(cols.max() + 1), float(rows.min()), float(rows.max() + 1)
    side = max(x1 - x0, y1 - y0) * 1.1
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    height, width = size
    sx, sy = width / side, height / side
    tx, ty = width / 2 - 0.5 - sx * (cx - 0.5), height / 2 - 0.5 - sy * (cy - 0.5)
    matrix = np.array([[sx, 0.0, tx], [0.0, sy, ty]])
    return Face((x0, y0, x1, y1), None, 0.0, matrix)


def _matrix(face: Face) -> np.ndarray:
    assert face.transform is not None
    return face.transform


def parse_aligned(
    parser: FaceParser,
    arrays: Sequence[np.ndarray],
    *,
    keep_logits: bool = True,
    rgb: Any = None,
) -> tuple[list[np.ndarray], list[torch.Tensor] | None, list[list[Face]]]:
    """Align, parse and warp back every face of prepared images (``parser``'s modality): (labels (H, W)
    uint8 per image, logits (C, H, W) per image or None without ``keep_logits``, faces per image).

    RGB images give their own landmarks. Depth maps take them from ``rgb``, the paired RGB frames (same
    sizes); without those, each depth map's surface is cropped square (:func:`_depth_only_face`)."""
    from faceparse.inference.predictor import as_rgb

    if rgb is not None:  # one frame (a path or an array) or a list of them, as the images
        rgb = [as_rgb(im) for im in ([rgb] if isinstance(rgb, str | Path | np.ndarray) else rgb)]
    framing = parser.framing if parser.framing is not None else resolve_framing(parser.info)
    parser.framing = framing
    size = parser.input_size
    depth = parser.modality == "depth"
    if rgb is not None and not depth:
        raise ValueError(
            "rgb= gives depth maps their paired RGB frames; an RGB parser's images are the frames"
        )
    if rgb is not None and len(rgb) != len(arrays):
        raise ValueError(f"{len(rgb)} RGB frames for {len(arrays)} depth maps")
    faces: list[list[Face]] = []
    for i, image in enumerate(arrays):
        if depth and rgb is None:
            face = _depth_only_face(image, size)
            faces.append([] if face is None else [face])
            continue
        frame = image if not depth else rgb[i]
        if frame.shape[:2] != image.shape[:2]:
            raise ValueError(f"RGB frame {i} is {frame.shape[:2]}, its depth map {image.shape[:2]}")
        if parser.landmarker is None:
            parser.landmarker = mediapipe_landmarker()
        found = []
        for face in parser.landmarker(frame):
            if face.landmarks is None:
                raise ValueError("a landmarker must give each face its five landmarks")
            face.landmarks = np.asarray(face.landmarks, np.float64).reshape(5, 2)
            face.transform = align_transform(face.landmarks, framing, size)
            if np.isfinite(face.transform).all() and np.linalg.det(face.transform[:, :2]) > 0:
                found.append(face)  # landmarks all at one point give no transform: that face is dropped
        faces.append(found)

    crops = [warp_face(image, _matrix(f), size) for image, fs in zip(arrays, faces, strict=True) for f in fs]
    whole = [image for image, fs in zip(arrays, faces, strict=True) if not fs]  # no face: parsed whole
    crop_logits = iter(parser.predict_logits(crops)) if crops else iter(())
    whole_logits = iter(parser.predict_logits(whole)) if whole and keep_logits else iter(())
    whole_labels = iter(parser._iter_labels(whole)) if whole and not keep_logits else iter(())

    labels: list[np.ndarray] = []
    logits: list[torch.Tensor] = []
    for image, fs in zip(arrays, faces, strict=True):
        image_size = (int(image.shape[0]), int(image.shape[1]))
        if not fs:
            if keep_logits:
                logits.append(next(whole_logits))
                labels.append(logits[-1].argmax(0).to(torch.uint8).numpy())
            else:
                labels.append(next(whole_labels))
            continue
        num_classes = parser.scheme.num_classes
        full = None
        label = torch.zeros(image_size, dtype=torch.uint8)
        if keep_logits:
            full = torch.full((num_classes, *image_size), OUTSIDE_LOGIT)
            full[0] = 0.0
        best = torch.full(image_size, math.inf)
        for face in fs:
            placed = warp_back(next(crop_logits), _matrix(face), image_size)
            if placed is None:
                continue
            region, sampled, distance = placed
            nearer = distance < best[region]
            best[region] = torch.where(nearer, distance, best[region])
            if full is not None:
                full[(slice(None), *region)] = torch.where(nearer, sampled, full[(slice(None), *region)])
            else:
                label[region] = torch.where(nearer, sampled.argmax(0).to(torch.uint8), label[region])
        if full is not None:
            logits.append(full)
            label = full.argmax(0).to(torch.uint8)
        labels.append(label.numpy())
    return labels, (logits if keep_logits else None), faces
