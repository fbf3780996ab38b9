"""Import Deep 3D Portrait (Xu et al., CVPR 2020; ``sicxu/Deep3dPortrait``) depth — the paper's
reconstruction model (paper §3.1) — into a prepared dataset.

What Deep3dPortrait writes (read from its ``step1``/``step3`` scripts and ``restore_from_crop.py``):

* ``output/step3/<name>.mat``: ``depth`` (256×256) = ``10 − z`` of the rendered full head (face +
  hair + ears), ``mask`` (256×256, 1 on the head). The BFM camera sits at ``z = 10`` looking down
  ``−z``, so ``10 − z`` IS the distance along the optical axis, in decimetres (about 8 to 10.2 for a
  head); larger = farther. Pixels off the head hold 0.
* ``output/step1/<name>.mat``: ``crop_param = [s, left, up, 256, 256]``. The 256² crop was cut from
  the original image resized by ``1/s`` (``cv2.resize`` to ``round(W/s) × round(H/s)``), at
  ``(left, up)`` in that resized image (negative = zero padding). Hence a crop pixel ``(u, v)`` lies
  at resized pixel ``(left + u, up + v)`` and at original pixel ``((left + u + 0.5)·s − 0.5, …)``.

We invert that map for every pixel of the output frame (the dataset's label size; the original image
may be larger, e.g. CelebA-HQ's 1024² vs 512² labels), sampling the crop by nearest neighbour so no
depth is blended across the head's silhouette, then convert to nearness with
``metric_to_nearness(depth_dm, mask, depth_range)`` (``DEFAULT_RANGE_DM`` = 3 dm: nearness falls from
1 at the nose tip to 0 at 30 cm behind it, which spans the whole head).

:func:`depth_from_mesh` renders a mesh file (e.g. Deep3dPortrait's step-4 ``.obj`` head, or any other
reconstruction) with the shared renderer, for ``faceparse depth from-mesh``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from faceparse.data.encoding import metric_to_nearness
from faceparse.data.format import RGB_EXTS, image_size, open_layout, write_depth
from faceparse.depth.released import ImportReport, clear_dropped, dataset_ids, finish_import, label_size
from faceparse.utils.io import DataError, read_text

if TYPE_CHECKING:
    from faceparse.utils.progress import OnProgress

CROP = 256
DEFAULT_RANGE_DM = 3.0


def load_mat(path: Path) -> dict:
    from scipy.io import loadmat

    if not path.is_file():
        raise DataError(path, "file not found")
    try:
        return loadmat(str(path))
    except (ValueError, OSError, TypeError, NotImplementedError) as e:
        raise DataError(path, f"not a readable MATLAB file ({e})") from None


def read_step3(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """A step-3 ``.mat`` → (depth_dm (256, 256) float64, mask (256, 256) bool, the whole dict)."""
    mat = load_mat(path)
    for key in ("depth", "mask"):
        if key not in mat:
            raise DataError(
                path,
                f"no {key!r} array (expected Deep3dPortrait step-3 output); keys: "
                f"{', '.join(k for k in mat if not k.startswith('__'))}",
            )
    depth: np.ndarray = np.asarray(mat["depth"], dtype=np.float64).reshape(-1)
    mask: np.ndarray = np.asarray(mat["mask"], dtype=np.float64).reshape(-1)
    if depth.size != CROP * CROP or mask.size != CROP * CROP:
        raise DataError(path, f"depth/mask must hold {CROP}×{CROP} values, got {depth.size} and {mask.size}")
    depth, mask = depth.reshape(CROP, CROP), mask.reshape(CROP, CROP)
    valid = (mask > 0.5) & np.isfinite(depth) & (depth > 0)
    return depth, valid, mat


def read_crop_param(path: Path, mat: dict | None = None) -> np.ndarray:
    """``crop_param`` = [s, left, up, 256, 256] from ``mat`` (if it has one) or the step-1 file ``path``."""
    if mat is None or "crop_param" not in mat:
        mat = load_mat(path)
        if "crop_param" not in mat:
            raise DataError(path, "no 'crop_param' (expected Deep3dPortrait step-1 output)")
    p = np.asarray(mat["crop_param"], dtype=np.float64).reshape(-1)
    if p.size != 5 or not p[0] > 0:
        raise DataError(path, f"crop_param must be [scale > 0, left, up, w, h], got {p.tolist()}")
    return p


def restore_crop(
    crop: np.ndarray, crop_param: np.ndarray, source_size: tuple[int, int], out_size: tuple[int, int]
) -> np.ndarray:
    """Map a 256² crop back to the original image frame, resampled to ``out_size`` (nearest).

    ``source_size``/``out_size`` are (width, height): the image Deep3dPortrait ran on and the frame wanted
    (e.g. 1024² CelebA-HQ image, 512² labels). Pixels outside the crop get 0.
    """
    s, left, up = float(crop_param[0]), float(crop_param[1]), float(crop_param[2])
    src_w, src_h = source_size
    out_w, out_h = out_size
    x_src = (np.arange(out_w) + 0.5) * (src_w / out_w) - 0.5  # output pixel centres in source pixels
    y_src = (np.arange(out_h) + 0.5) * (src_h / out_h) - 0.5
    u = np.rint((x_src + 0.5) / s - 0.5 - left).astype(np.int64)  # source → resized (1/s) → crop column
    v = np.rint((y_src + 0.5) / s - 0.5 - up).astype(np.int64)
    ok_u, ok_v = (u >= 0) & (u < crop.shape[1]), (v >= 0) & (v < crop.shape[0])
    out = np.zeros((out_h, out_w), dtype=crop.dtype)
    vv, uu = np.meshgrid(np.clip(v, 0, crop.shape[0] - 1), np.clip(u, 0, crop.shape[1] - 1), indexing="ij")
    inside = ok_v[:, None] & ok_u[None, :]
    out[inside] = crop[vv[inside], uu[inside]]
    return out


def portrait_to_nearness(
    depth_dm: np.ndarray,
    valid: np.ndarray,
    crop_param: np.ndarray,
    source_size: tuple[int, int],
    out_size: tuple[int, int],
    depth_range: float = DEFAULT_RANGE_DM,
) -> np.ndarray:
    """A step-3 crop (``10 − z`` in dm, head mask) → (H, W) nearness in the original frame at ``out_size``."""
    depth = restore_crop(np.where(valid, depth_dm, 0.0), crop_param, source_size, out_size)  # (H, W) dm
    return metric_to_nearness(depth, depth > 0, depth_range)


def _source_size(data: Path, sid: str) -> tuple[int, int] | None:
    for ext in RGB_EXTS:
        p = data / "rgb" / f"{sid}{ext}"
        if p.is_file():
            return image_size(p)  # as displayed, as faceparse reads the RGB
    return None


def import_deep3dportrait(
    mats: str | os.PathLike,
    data: str | os.PathLike,
    *,
    crops: str | os.PathLike | None = None,
    source_size: tuple[int, int] | None = None,
    depth_range: float = DEFAULT_RANGE_DM,
    drop_missing: bool = True,
    overwrite: bool = False,
    strict: bool = False,
    on_progress: OnProgress | None = None,
) -> ImportReport:
    """Convert Deep3dPortrait outputs for the samples of ``data`` into 16-bit nearness depth.

    ``mats``: the step-3 folder (``<id>.mat``); ``crops``: the step-1 folder holding ``crop_param``
    (default: ``mats``). ``source_size`` (width, height): the image size Deep3dPortrait saw (default: each
    sample's ``rgb/`` image size, i.e. it ran on the prepared images). ``on_progress(done, total, info)``
    (:mod:`faceparse.utils.progress`) is called once before the first ``.mat`` and after each one,
    written, skipped or bad (``info`` is ``""``).
    """
    mats, data = Path(mats), Path(data)
    crops = Path(crops) if crops is not None else mats
    if not mats.is_dir():
        raise DataError(mats, "Deep3dPortrait step-3 folder not found")
    lay = open_layout(data)
    ids = dataset_ids(data)
    known = [i for v in ids.values() for i in v]
    report = ImportReport(str(mats))
    report.depth_without_sample = sorted({p.stem for p in mats.glob("*.mat")} - set(known))
    todo = [i for i in known if (mats / f"{i}.mat").is_file()]
    if on_progress is not None:
        on_progress(0, len(todo), "")
    for done, sid in enumerate(todo, start=1):
        _import_one(sid, mats, crops, data, source_size, depth_range, overwrite, strict, report)
        if on_progress is not None:
            on_progress(done, len(todo), "")
    finish_import(
        data,
        lay,
        ids,
        known,
        report,
        drop_missing,
        source="deep3dportrait",
        depth_range=depth_range,
        unit="dm",
        origin=mats,
    )
    return report


def _import_one(sid, mats, crops, data, source_size, depth_range, overwrite, strict, report) -> None:
    out = data / "depth" / f"{sid}.png"
    if out.is_file() and not overwrite:
        report.skipped += 1
        return
    try:
        size = label_size(data, sid) or _source_size(data, sid)
        src = source_size or _source_size(data, sid) or size
        if size is None or src is None:
            raise DataError(data / "label" / f"{sid}.png", "no label or image to take the output size from")
        depth_dm, valid, mat = read_step3(mats / f"{sid}.mat")
        param = read_crop_param(crops / f"{sid}.mat", mat)
        nearness = portrait_to_nearness(depth_dm, valid, param, src, size, depth_range)
    except DataError as e:
        if strict:
            raise
        report.bad.append(str(e))
        return
    write_depth(out, clear_dropped(data, sid, nearness))
    report.written += 1


# --- meshes (e.g. Deep3dPortrait's step-4 .obj heads, or any reconstruction) ---------------------------


def load_camera(spec: str | os.PathLike):
    """A :class:`faceparse.data.render.Camera` from a JSON file or an inline JSON object.

    Keys: ``fx, fy, cx, cy, width, height`` (pixels; OpenCV convention) and optional ``R`` (3×3,
    world→camera) and ``t`` (3).
    """
    import json

    from faceparse.data.render import Camera

    text = str(spec)
    path = Path(text)
    where = path if not text.lstrip().startswith("{") and path.is_file() else None
    if where is None and not text.lstrip().startswith("{"):
        raise DataError(path, "camera file not found (give a JSON file or inline JSON)")
    try:
        obj = json.loads(read_text(path) if where else text)
        keys = ("fx", "fy", "cx", "cy", "width", "height")
        missing = [k for k in keys if k not in obj]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        extra: dict[str, Any] = {k: np.asarray(obj[k], dtype=np.float64) for k in ("R", "t") if k in obj}
        fx, fy, cx, cy = (float(obj[k]) for k in keys[:4])
        return Camera(fx, fy, cx, cy, int(obj["width"]), int(obj["height"]), **extra)
    except (json.JSONDecodeError, ValueError, TypeError) as e:
        raise DataError(where, f"bad camera JSON ({e})") from None


def depth_from_mesh(
    mesh: str | os.PathLike,
    camera,
    out: str | os.PathLike | None = None,
    *,
    mask_out: str | os.PathLike | None = None,
    depth_range: float | None = None,
):
    """Render a mesh file with the shared renderer → ``RenderResult``; optionally write 16-bit nearness.

    Nearness uses ``depth_range`` in mesh units (default: the rendered depth's own span, so the farthest
    visible point maps to the smallest non-zero value).
    """
    import trimesh

    from faceparse.data.render import render

    mesh = Path(mesh)
    if not mesh.is_file():
        raise DataError(mesh, "mesh file not found")
    try:
        tm = trimesh.load(mesh, force="mesh", process=False)
    except (ValueError, KeyError, IndexError, OSError) as e:
        raise DataError(mesh, f"unreadable mesh ({e})") from None
    if not isinstance(tm, trimesh.Trimesh):  # force="mesh" gives one; trimesh.load is typed as Geometry
        raise DataError(mesh, f"not a triangle mesh ({type(tm).__name__})")
    if len(tm.faces) == 0:
        raise DataError(mesh, "mesh has no faces")
    res = render(np.asarray(tm.vertices), np.asarray(tm.faces), camera)
    if out is not None:
        z = res.depth.astype(np.float64)
        span = depth_range or (float(np.ptp(z[res.mask])) * (1 + 1e-6) if res.mask.any() else 1.0) or 1.0
        write_depth(Path(out), metric_to_nearness(z, res.mask, span))
    if mask_out is not None:
        from faceparse.utils.io import atomic_save

        m = np.where(res.mask, 255, 0).astype(np.uint8)
        atomic_save(Path(mask_out), lambda p: Image.fromarray(m).save(p, format="PNG"))
    return res
