"""Metric depth (a depth camera's millimetres, metres from a renderer) → the nearness parsers were trained on.

Depth parsers see nearness (:mod:`faceparse.data.encoding`): ``n = 1 - (z - z_min) / range`` for a
surface, 0 where there is none, with ``z_min`` the image's nearest surface point and ``range`` the
dataset's constant (``dataset.json``: ``depth.range`` and ``depth.unit``). A sensor's map differs in
three ways: it holds distances rather than nearness, its background is a wall metres away rather than
"no surface", and it has holes (no return: dark hair, glasses, grazing angles) and flying pixels. One
face-relative normalisation (docs/inference.md, "Metric depth") turns it into the training encoding:

1. **valid** pixels: finite and > 0 (0, NaN and inf mean no measurement, as sensors write them). With
   ``intrinsics`` the values are distances along each pixel's ray and become camera z first; without,
   they are camera z already (Kinect, RealSense, our renderer) and no intrinsics are needed.
2. **anchor**: the nearest point ``z0`` outside speckles, blobs of at most :data:`SPECKLE_FRACTION` of
   the pixels (at least :data:`SPECKLE_MIN_PIXELS`) not joined to the rest by depth steps under
   :data:`SPECKLE_STEP_M` (``cv2.filterSpeckles``): a flying pixel must not become the anchor. Speckles
   nearer than ``z0`` are dropped; those behind it (a strand of hair) are kept. ``z0`` is the face's
   nearest point when nothing else is nearer (otherwise crop to the head first).
3. **far** pixels, beyond ``z0 + range``, are background (0), like invalid ones: the dataset's range is
   the depth the parser ever saw in front of a background.
4. **small holes** are filled: regions without depth, enclosed by the face and no larger than
   ``max_hole`` (a fraction of the image), get the harmonic surface spanning their rim
   (:func:`faceparse.depth.fill.harmonic_fill`); larger or open ones stay background.
5. **encode** with the dataset's formula (:func:`faceparse.data.encoding.metric_to_nearness`), so a head
   rendered in metres converts to exactly the nearness the dataset stores for it (up to the input's
   quantisation: 1 mm is ``0.001 / range`` of nearness).

Inputs: a uint16 PNG or TIFF in millimetres (``units="mm"``), float depth in metres (``units="m"``) as
``.npy`` or 32-bit float TIFF, or arrays of either. OpenEXR is not read: the OpenCV wheel faceparse uses
has no EXR codec (and older ones need an environment flag); save ``.npy`` or a float TIFF instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceparse.data.format import MAX_PIXELS
from faceparse.utils.io import DataError

DEPTH_UNITS = ("nearness", "mm", "m")
METRIC_SUFFIXES = (".png", ".tif", ".tiff", ".npy")
# the span of nearness 1 → 0 in every faceparse depth source: synthetic heads 0.3 m (data/synth.py),
# Deep 3D Portrait imports 3 dm, MediaPipe estimates ≈ 30 cm; used when a parser does not record its own
DEFAULT_RANGE_M = 0.3
UNIT_METRES = {"m": 1.0, "dm": 0.1, "cm": 0.01, "mm": 0.001}
DEFAULT_MAX_HOLE = 1e-3  # largest filled hole, as a fraction of the image (307 pixels at 640×480)
SPECKLE_FRACTION = 2e-4  # largest speckle, as a fraction of the image (61 pixels at 640×480)
SPECKLE_MIN_PIXELS = 4
SPECKLE_STEP_M = 0.02  # neighbours closer than this in depth belong to the same surface
ANCHOR_LIMITS_M = (0.05, 20.0)  # a nearest face point outside this is a unit mistake


def range_in_metres(depth_range: float | None, unit: str | None) -> float | None:
    """``dataset.json``'s ``depth.range`` in ``depth.unit`` → metres; None when either is unknown."""
    if depth_range is None or unit not in UNIT_METRES:
        return None
    return float(depth_range) * UNIT_METRES[unit]


@dataclass(frozen=True)
class MetricDepth:
    """How to turn metric depth into a parser's nearness (see the module docstring).

    ``units``: ``"mm"`` or ``"m"``; ``range_m``: the metric span of nearness 1 → 0 the parser was trained
    with; ``max_hole``: the largest hole filled, as a fraction of the image's pixels (0: none);
    ``intrinsics``: ``(fx, fy, cx, cy)`` in pixels when the values are distances along each pixel's ray.
    """

    units: str
    range_m: float = DEFAULT_RANGE_M
    max_hole: float = DEFAULT_MAX_HOLE
    intrinsics: tuple[float, float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.units not in ("mm", "m"):
            raise ValueError(f"metric depth units must be mm or m, got {self.units!r}")
        if not self.range_m > 0:
            raise ValueError(f"the depth range must be positive metres, got {self.range_m}")
        if not 0 <= self.max_hole < 1:
            raise ValueError(f"max_hole is a fraction of the image in [0, 1), got {self.max_hole}")
        if self.intrinsics is not None and (len(self.intrinsics) != 4 or min(self.intrinsics[:2]) <= 0):
            raise ValueError(f"intrinsics are (fx, fy, cx, cy), fx and fy > 0, got {self.intrinsics}")

    def to_metres(self, values: np.ndarray) -> np.ndarray:
        """Stored values → (H, W) float64 metres, NaN where there is no measurement."""
        values = np.asarray(values)
        if values.ndim == 3 and values.shape[2] == 1:
            values = values[..., 0]
        if values.ndim != 2:
            raise ValueError(f"a depth map must be (H, W), got shape {values.shape}")
        if values.dtype == bool or not (
            np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)
        ):
            raise ValueError(f"depth must be integer millimetres or float metres, got {values.dtype}")
        if self.units == "m" and not np.issubdtype(values.dtype, np.floating):
            raise ValueError(
                f"{values.dtype} depth in metres would be whole metres; integer maps are millimetres "
                "(depth units mm)"
            )
        z = values.astype(np.float64) * (0.001 if self.units == "mm" else 1.0)
        if (z < 0).any():
            raise ValueError(f"depth has negative values (down to {np.nanmin(z):.4g} m)")
        z[~np.isfinite(z) | (z <= 0)] = np.nan
        return z

    def to_nearness(self, values: np.ndarray) -> np.ndarray:
        """Stored metric values → (H, W) float32 nearness in the parser's encoding."""
        return metric_depth_to_nearness(
            self.to_metres(values), self.range_m, max_hole=self.max_hole, intrinsics=self.intrinsics
        )

    def read(self, path: str | os.PathLike, *, max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
        """A metric depth file → (H, W) float32 nearness; a bad file is a :class:`DataError` naming it."""
        path = Path(path)
        values = read_metric_values(path, max_pixels=max_pixels)
        try:
            return self.to_nearness(values)
        except ValueError as e:
            raise DataError(path, str(e)) from None


def read_metric_values(path: Path, *, max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """The stored values of a depth file: ``.npy`` (numpy, no pickles), PNG or TIFF (Pillow)."""
    from faceparse.data.format import read_depth_values

    suffix = path.suffix.lower()
    if suffix == ".exr":
        raise DataError(path, "OpenEXR is not supported (no EXR codec at hand); save .npy or a 32-bit TIFF")
    if suffix not in METRIC_SUFFIXES:
        raise DataError(path, f"not a depth file faceparse reads ({', '.join(METRIC_SUFFIXES)})")
    if suffix != ".npy":
        return read_depth_values(path, max_pixels=max_pixels)
    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(path, f"unreadable .npy file ({e})") from None
    if max_pixels is not None and values.size > max_pixels:
        raise DataError(path, f"{values.size} pixels exceed the cap of {max_pixels}")
    return values


def metric_depth_to_nearness(
    z: np.ndarray,
    depth_range_m: float,
    *,
    max_hole: float = DEFAULT_MAX_HOLE,
    intrinsics: tuple[float, float, float, float] | None = None,
) -> np.ndarray:
    """(H, W) metres (NaN or 0: no measurement) → (H, W) float32 nearness: steps 1-5 of the module's
    docstring."""
    from faceparse.data.encoding import metric_to_nearness

    z = np.where(np.isfinite(z) & (z > 0), z, np.nan).astype(np.float64)
    if intrinsics is not None:
        z = z / _ray_lengths(z.shape, intrinsics)  # distance along the ray → camera z
    valid = np.isfinite(z)
    if not valid.any():
        raise ValueError("depth has no valid pixel (all 0, NaN or infinite)")
    speckles = _speckles(z, valid)
    if not (valid & ~speckles).any():
        raise ValueError("depth has only isolated specks of valid pixels, no surface")
    z0 = float(z[valid & ~speckles].min())
    valid &= ~(speckles & (z < z0))  # flying pixels in front of the face; those behind it stay
    low, high = ANCHOR_LIMITS_M
    if not low <= z0 <= high:
        too_near = "metres read as millimetres? (depth units m)"
        hint = too_near if z0 < low else "millimetres read as metres? (depth units mm)"
        raise ValueError(f"the nearest surface lies {z0:.4g} m away, outside {low}-{high} m: {hint}")
    face = valid & (z <= z0 + depth_range_m)
    holes = _small_holes(face, max_hole)
    if holes.any():
        from faceparse.depth.fill import harmonic_fill

        z = harmonic_fill(np.where(face, z, 0.0), face, holes, rim=0.0, max_side=max(z.shape))
        face |= holes
    return metric_to_nearness(np.where(face, z, 0.0), face, depth_range_m)


def _ray_lengths(shape: tuple[int, ...], intrinsics: tuple[float, float, float, float]) -> np.ndarray:
    """Distance along each pixel's ray per unit of camera z (pixel centres at integer coordinates)."""
    fx, fy, cx, cy = intrinsics
    v, u = np.mgrid[0 : shape[0], 0 : shape[1]]
    return np.sqrt(1.0 + ((u - cx) / fx) ** 2 + ((v - cy) / fy) ** 2)


def _speckles(z: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Small blobs not joined to the rest by depth steps under SPECKLE_STEP_M (flying pixels)."""
    import cv2

    area = max(SPECKLE_MIN_PIXELS, round(z.size * SPECKLE_FRACTION))
    mm = np.where(valid, np.clip(np.rint(np.nan_to_num(z) * 1000.0), 1, 32767), 0).astype(np.int16)
    kept = mm.copy()
    cv2.filterSpeckles(kept, 0, area, round(SPECKLE_STEP_M * 1000))  # 0 = no measurement: never joined
    return valid & (kept == 0)


def _small_holes(face: np.ndarray, max_hole: float) -> np.ndarray:
    """Regions without face depth, enclosed by the face (not touching the border), of at most
    ``max_hole`` of the image's pixels."""
    from scipy import ndimage

    limit = int(max_hole * face.size)
    if limit < 1:
        return np.zeros_like(face)
    labels, count = ndimage.label(~face)  # 4-connected: a hole's 4-neighbours are all face pixels
    if count == 0:
        return np.zeros_like(face)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    small = sizes <= limit
    small[0] = False
    small[border] = False
    return small[labels]
