"""Offline depth for real photos: MediaPipe face mesh + smooth head fill (FACTS §3).

The paper reconstructs full heads with Deep 3D Portrait (paper §3.1), which needs TensorFlow 1.x and
BFM09. This backend runs anywhere, offline, with the optional extra ``faceparse[depth]``
(``mediapipe==0.10.14``, whose wheel bundles the face detector and the 468/478-point face-mesh models):

1. detect the face (full-range detector) and crop a square around it with margin, so small faces get
   enough pixels (the mesh model misses them otherwise); without a detection, the whole image is used;
2. run the face mesh (static images, refined landmarks) on the crop and map landmarks back;
3. rasterise the mesh triangles (MediaPipe's tessellation) into a depth map with the shared renderer
   (``faceparse.data.render``; a far camera makes its projection orthographic to 1e-4 px);
4. extend depth over the head with a harmonic fill (``faceparse.depth.fill``): over the labelled
   region (every non-background label) when labels are given, else over an ellipse around the face;
5. convert to nearness: MediaPipe's z is relative, in x units (smaller = closer); we use
   ``depth_range = DEFAULT_RANGE_FACE_WIDTHS × face width`` (≈ 30 cm for a 14 cm face, the same span as
   the Deep3dPortrait import), so nearness is 1 at the nose tip;
6. score quality = detector score × mesh coverage of the labelled face (1 without labels) and
   discard samples under ``min_quality``, as the paper discarded low-quality reconstructions.

Differences from the paper's data: the face is a 478-vertex mesh (no ears, hair or neck geometry);
hair and ears get a smooth dome, not reconstructed shape.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from faceparse.data.encoding import metric_to_nearness
from faceparse.data.format import DATASET_JSON
from faceparse.depth.fill import harmonic_fill
from faceparse.depth.released import clear_dropped
from faceparse.utils.facemesh import FaceMeshEstimator, facemesh_triangles
from faceparse.utils.io import DataError, atomic_write_json

if TYPE_CHECKING:
    from faceparse.utils.progress import OnProgress

DEFAULT_RANGE_FACE_WIDTHS = 2.1
NOSE_TIP = 4  # face-mesh landmark at the tip of the nose (1 is just below it)
FACE_CLASSES = (
    "skin",
    "nose",
    "l_eye",
    "r_eye",
    "l_brow",
    "r_brow",
    "u_lip",
    "l_lip",
    "mouth",
    "left_eye",
    "right_eye",
    "left_eyebrow",
    "right_eyebrow",
    "upper_lip",
    "lower_lip",
    "inner_mouth",
)
FAR = 1e5  # camera distance (pixels) used to render the mesh orthographically


def rasterize_mesh(
    points: np.ndarray, faces: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Image-space mesh (u, v, z px) → (z map (H, W) float64, mask (H, W) bool), orthographic.

    Uses the shared ray-casting renderer with a camera ``FAR`` pixels away: each vertex is placed on
    its own pixel ray at depth ``FAR + z``, so it projects exactly to (u, v) and the rendered camera z
    minus ``FAR`` is the mesh's z (the residual perspective is below 1e-4 px across a face).
    """
    from faceparse.data.render import Camera, render

    W, H = size
    cam = Camera(fx=FAR, fy=FAR, cx=0.0, cy=0.0, width=W, height=H)
    zc = FAR + points[:, 2]  # (N,) camera depth
    verts = np.stack([points[:, 0] * zc / FAR, points[:, 1] * zc / FAR, zc], axis=1)  # (N, 3) camera = world
    res = render(verts, faces[:, ::-1].copy(), cam)
    z = np.where(res.mask, res.depth.astype(np.float64) - FAR, 0.0)
    return z, res.mask


def ellipse_region(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Head region without labels: an ellipse around the face mesh, widened and raised for hair and ears."""
    W, H = size
    u, v = points[:, 0], points[:, 1]
    cu, cv = (u.min() + u.max()) / 2, (v.min() + v.max()) / 2
    fw, fh = u.max() - u.min(), v.max() - v.min()
    cv -= 0.18 * fh  # the skull extends above the face mesh more than below it
    ax, ay = 0.5 * fw * 1.5, 0.5 * fh * 1.6
    yy, xx = np.mgrid[0:H, 0:W]
    return ((xx - cu) / ax) ** 2 + ((yy - cv) / ay) ** 2 <= 1.0


@dataclass
class DepthEstimate:
    """One photo's depth: nearness (H, W), where the mesh covered, the head region, quality scores."""

    nearness: np.ndarray
    mesh_mask: np.ndarray
    head_mask: np.ndarray
    quality: float
    scores: dict[str, float] = field(default_factory=dict)
    nose_uv: tuple[float, float] = (0.0, 0.0)


def estimate_depth(
    rgb: np.ndarray,
    estimator: FaceMeshEstimator,
    *,
    label: np.ndarray | None = None,
    face_ids: list[int] | None = None,
    range_face_widths: float = DEFAULT_RANGE_FACE_WIDTHS,
) -> DepthEstimate | None:
    """Depth for one RGB image (H, W, 3) uint8; None when no face is found."""
    H, W = rgb.shape[:2]
    lm = estimator.landmarks(rgb)
    if lm is None:
        return None
    pts = lm.points
    z_face, mesh = rasterize_mesh(pts, facemesh_triangles(), (W, H))  # (H, W) px, smaller = closer
    face_width = float(np.ptp(pts[:468, 0]))
    if label is not None:
        head = label > 0
        face = np.isin(label, face_ids) if face_ids else head
        coverage = float((mesh & face).sum() / max(face.sum(), 1))
    else:
        head = ellipse_region(pts, (W, H))
        coverage = 1.0
    head |= mesh
    z_max = float(z_face[mesh].max()) if mesh.any() else 0.0
    rim = z_max + 0.4 * face_width  # the head outline lies 0.4 face widths behind the face edge
    z = harmonic_fill(z_face, mesh, head, rim)  # (H, W)
    depth_range = range_face_widths * max(face_width, 1.0)
    nearness = metric_to_nearness(z, head, depth_range)
    nose = pts[NOSE_TIP, :2]
    scores = {"detection": lm.det_score, "coverage": coverage, "face_width_px": face_width}
    return DepthEstimate(
        nearness, mesh, head, lm.det_score * coverage, scores, (float(nose[0]), float(nose[1]))
    )


@dataclass
class EstimateReport:
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)
    low_quality: list[str] = field(default_factory=list)  # "name: quality"
    bad: list[str] = field(default_factory=list)

    def table(self):
        from rich.table import Table

        t = Table("", "images", title="offline depth (mediapipe face mesh + head fill)")
        for k in ("written", "skipped", "no_face", "low_quality", "bad"):
            t.add_row(k.replace("_", " "), f"{len(getattr(self, k)):,}")
        return t


def estimate_folder(
    images: str | os.PathLike,
    out: str | os.PathLike,
    *,
    labels: str | os.PathLike | None = None,
    min_quality: float = 0.5,
    overwrite: bool = False,
    strict: bool = False,
    on_progress: OnProgress | None = None,
) -> EstimateReport:
    """Write ``<out>/<stem>.png`` (16-bit nearness) for every image in ``images``; see the module docstring.

    ``labels``: a folder of ``<stem>.png`` label maps; non-zero = head region, and the coverage score uses
    the face classes of the dataset's scheme when ``labels`` is a dataset's ``label/`` folder (all
    non-zero otherwise). Scores go to ``<out>/quality.json``. When ``out`` is a dataset's ``depth/``
    folder, its ``dataset.json`` records this backend and Helen-D's ``dropped/`` regions get no depth.
    ``on_progress(done, total, info)`` (:mod:`faceparse.utils.progress`) is called once before the first
    image and after each image, estimated, skipped or discarded (``info`` is ``""``).
    """
    from faceparse.data.format import RGB_EXTS

    images, out = Path(images), Path(out)
    if not images.is_dir():
        raise DataError(images, "image folder not found")
    files = sorted(p for p in images.iterdir() if p.suffix.lower() in RGB_EXTS)
    face_ids = _face_ids(Path(labels)) if labels is not None else None
    report = EstimateReport()
    quality: dict[str, Any] = {}
    est = FaceMeshEstimator()  # fails early, with the install hint, when mediapipe is missing
    if on_progress is not None:
        on_progress(0, len(files), "")
    try:
        for done, f in enumerate(files, start=1):
            target = out / f"{f.stem}.png"
            if target.is_file() and not overwrite:
                report.skipped.append(f.stem)
            else:
                try:
                    res = _estimate_file(f, labels, est, face_ids)
                except DataError as e:
                    if strict:
                        raise
                    report.bad.append(str(e))
                else:
                    _record(res, f, target, min_quality, report, quality)
            if on_progress is not None:
                on_progress(done, len(files), "")
    finally:
        est.close()
    _update_dataset_info(out)
    if quality:
        prev = {}
        qpath = out / "quality.json"
        if qpath.is_file():
            from faceparse.utils.io import read_json

            prev = read_json(qpath)
        atomic_write_json(qpath, {**prev, **quality})
    return report


def _estimate_file(
    f: Path, labels: str | os.PathLike | None, est: FaceMeshEstimator, face_ids: list[int] | None
) -> DepthEstimate | None:
    from faceparse.data.format import read_label, read_rgb

    rgb = read_rgb(f)
    label = None
    if labels is not None:
        label_path = Path(labels) / f"{f.stem}.png"
        label = read_label(label_path)
        if label.shape != rgb.shape[:2]:
            raise DataError(
                label_path, f"label is {label.shape[1]}×{label.shape[0]}, image {rgb.shape[1]}×{rgb.shape[0]}"
            )
    return estimate_depth(rgb, est, label=label, face_ids=face_ids)


def _record(
    res: DepthEstimate | None,
    f: Path,
    target: Path,
    min_quality: float,
    report: EstimateReport,
    quality: dict[str, Any],
) -> None:
    from faceparse.data.format import write_depth

    if res is None:
        report.no_face.append(f.stem)
        quality[f.stem] = {"quality": 0.0, "no_face": True}
        return
    quality[f.stem] = {"quality": round(res.quality, 4), **{k: round(v, 4) for k, v in res.scores.items()}}
    if res.quality < min_quality:
        report.low_quality.append(f"{f.stem}: {res.quality:.2f}")
        return
    nearness = res.nearness
    if (
        target.parent.parent / DATASET_JSON
    ).is_file():  # writing into <dataset>/depth: honour Helen-D's drops
        nearness = clear_dropped(target.parent.parent, f.stem, nearness)
    write_depth(target, nearness)
    report.written.append(f.stem)


def _update_dataset_info(out: Path) -> None:
    """When ``out`` is a dataset's ``depth/`` folder, record this backend in its dataset.json."""
    from faceparse.data.format import read_info, write_info

    if out.name != "depth" or not (out.parent / DATASET_JSON).is_file():
        return
    info = read_info(out.parent)
    info.depth.encoding, info.depth.source = "nearness16", "mediapipe-facemesh"
    info.depth.range, info.depth.unit = DEFAULT_RANGE_FACE_WIDTHS, "face widths"
    write_info(out.parent, info)


def _face_ids(labels: Path) -> list[int] | None:
    """Face class ids when ``labels`` is a faceparse dataset's ``label/`` folder (scheme in dataset.json)."""
    from faceparse.data.format import read_info
    from faceparse.labels import get_scheme

    if not (labels.parent / DATASET_JSON).is_file():
        return None
    s = get_scheme(read_info(labels.parent).scheme)
    return [i for i, c in enumerate(s.classes) if c in FACE_CLASSES]
