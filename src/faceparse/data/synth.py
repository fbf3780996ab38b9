"""Procedural synthetic RGB-D face-parsing data: a stand-in for CelebAMask-HQ-D (paper §3.1, Figure 2).

Each sample is a random 3D head (``synth_head``: skull with nose, lips, opening mouth, ears, hair shell
and hanging hair, neck and shoulders) posed (yaw ±45°, pitch ±20°, roll ±15°), ray cast
(``faceparse.data.render``), shaded under a random light (including very dark and over-exposed
images), painted with per-part albedo and procedural texture, and composited over a cluttered random
background. Labels follow the ``celebamask13`` scheme with CelebAMask-HQ's convention (``l_eye`` is
the subject's left eye, on the image's right). Neck and shoulders have depth but label 0, as in the
paper's Figure 2.

Every sample depends only on ``(seed, index)``: ``np.random.default_rng([seed, index])``, so a dataset
is byte-identical whatever the worker count and a run can resume.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from faceparse.data import synth_head as sh
from faceparse.data.encoding import metric_to_nearness
from faceparse.data.format import DatasetInfo, DepthInfo, write_info, write_sample, write_split
from faceparse.labels import get_scheme
from faceparse.utils.io import remove_temporaries
from faceparse.utils.locks import folder_lock
from faceparse.utils.workers import interruptible, process_pool

if TYPE_CHECKING:
    from faceparse.utils.progress import OnProgress

SCHEME = "celebamask13"
DEPTH_RANGE_M = 0.3  # metres of depth that nearness 1 → 0 spans (dataset.json depth.range)
# Framing: the camera's vertical field of view sets how large the head is in the frame. 32° frames the
# faces like CelebAMask-HQ's (median inter-ocular distance / image width 0.22-0.26 by MediaPipe's face
# mesh, see faceparse.data.framing and docs/datasets.md); version 1 used 40° (0.187, too small).
FOV_DEG = 32.0
GENERATOR = "faceparse.data.synth"
GENERATOR_VERSION = 2
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Head rotation in the camera frame (x right, y down, z forward), degrees: Rz(roll) Rx(pitch) Ry(yaw).

    Positive yaw turns the face towards the image's right, positive pitch raises the chin, positive
    roll tilts the head clockwise in the image.
    """
    y, p, r = np.radians([yaw, pitch, roll])
    Ry = np.array([[np.cos(y), 0, -np.sin(y)], [0, 1, 0], [np.sin(y), 0, np.cos(y)]])
    Rx = np.array([[1, 0, 0], [0, np.cos(p), np.sin(p)], [0, -np.sin(p), np.cos(p)]])
    Rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return Rz @ Rx @ Ry


def _sample_scene(rng: np.random.Generator) -> dict[str, Any]:
    u = rng.uniform
    mode = rng.choice(["dark", "normal", "bright"], p=[0.15, 0.7, 0.15])
    intensity = {"dark": u(0.08, 0.3), "normal": u(0.85, 1.4), "bright": u(1.8, 3.0)}[str(mode)]
    light = np.array(
        [u(-1, 1), u(-0.6, 1), u(0.3, 1.2)]
    )  # travel direction: into the scene, mostly from above
    return {
        "yaw": u(-45, 45),
        "pitch": u(-20, 20),
        "roll": u(-15, 15),
        "distance": u(0.4, 0.5),
        "offset": [u(-0.02, 0.02), u(-0.005, 0.025)],
        "light_dir": (light / np.linalg.norm(light)).tolist(),
        "light_mode": str(mode),
        "light_intensity": intensity,
        "ambient": u(0.2, 0.45),
        "noise_sigma": u(1.0, 7.0),
    }


# --- appearance -------------------------------------------------------------------------------------

_SKIN = np.array(
    [[255, 224, 196], [241, 194, 160], [224, 172, 128], [198, 134, 96], [141, 85, 54], [96, 60, 40]]
)
_HAIR = np.array([[20, 17, 15], [60, 40, 28], [110, 75, 45], [165, 120, 70], [220, 190, 130], [150, 60, 30],
                  [170, 170, 170]])  # fmt: skip
_IRIS = np.array([[70, 45, 25], [110, 75, 40], [60, 100, 150], [80, 120, 80], [110, 110, 120]])


def _pick(rng: np.random.Generator, table: np.ndarray, jitter: float) -> np.ndarray:
    a, b = rng.integers(len(table), size=2)
    mix = rng.random()
    base = table[a] * mix + table[b] * (1 - mix) if rng.random() < 0.5 else table[a].astype(float)
    return np.clip(base * rng.uniform(1 - jitter, 1 + jitter, 3), 0, 255) / 255.0


def _noise_field(
    rng: np.random.Generator, shape: tuple[int, int], coords: np.ndarray, scale: tuple
) -> np.ndarray:
    """Smooth value noise: a random grid sampled bilinearly at ``coords * scale`` (wrapping)."""
    import cv2

    grid = rng.standard_normal(shape).astype(np.float32)
    x = np.mod(coords[..., 0] * scale[0], shape[1] - 1).astype(np.float32)
    y = np.mod(coords[..., 1] * scale[1], shape[0] - 1).astype(np.float32)
    return cv2.remap(grid, x, y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Cluttered background: a gradient, random shapes and blurred noise, float RGB in [0, 1]."""
    import cv2

    c0, c1 = rng.uniform(0, 1, (2, 3))
    ang = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    t = np.clip(0.5 + (xx - 0.5) * np.cos(ang) + (yy - 0.5) * np.sin(ang), 0, 1)[..., None]
    img = (c0 * (1 - t) + c1 * t).astype(np.float32)
    for _ in range(int(rng.integers(3, 12))):
        color = tuple(float(c) for c in rng.uniform(0, 1, 3))
        kind = rng.integers(3)
        p1 = tuple(int(v) for v in rng.integers(-size // 4, size + size // 4, 2))
        if kind == 0:
            cv2.circle(img, p1, int(rng.integers(size // 16, size // 3)), color, -1, cv2.LINE_AA)
        elif kind == 1:
            p2 = tuple(int(v) for v in rng.integers(-size // 4, size + size // 4, 2))
            cv2.rectangle(img, p1, p2, color, -1, cv2.LINE_AA)
        else:
            p2 = tuple(int(v) for v in rng.integers(0, size, 2))
            cv2.line(img, p1, p2, color, max(1, int(rng.integers(1, max(2, size // 20)))), cv2.LINE_AA)
    noise = cv2.resize(rng.standard_normal((16, 16, 3)).astype(np.float32), (size, size))
    return np.clip(img + 0.08 * noise, 0, 1)


def _shade(normal: np.ndarray, view: np.ndarray, scene: dict, shininess: np.ndarray, spec: np.ndarray):
    """Lambert + Blinn-Phong terms per pixel (normals and view in the camera frame)."""
    light = -np.asarray(scene["light_dir"], dtype=np.float32)  # direction TO the light
    ndl = np.clip(normal @ light, 0, None)
    half = light - view
    half /= np.linalg.norm(half, axis=-1, keepdims=True) + 1e-9
    specular = spec * np.clip((normal * half).sum(-1), 0, None) ** shininess
    return scene["ambient"] + (1 - scene["ambient"]) * ndl, specular


# --- one sample -----------------------------------------------------------------------------------


def _mesh_step(size: int) -> float:
    """Dense grid spacing (radians) of the head mesh: finer for larger images, modest at 128²."""
    return float(np.clip(0.055 * np.sqrt(128 / size), 0.016, 0.07))


def _posed_meshes(p: sh.HeadParams, scene: dict, shoulder_scale: float, step: float) -> list[sh.Mesh]:
    """All meshes in the camera frame: the head parts rotate with the pose about the neck, the neck
    half as much, the shoulders not at all; then everything moves to the head's distance and offset."""
    pivot = np.array([0.0, 0.07, 0.02])
    R = _rotation(scene["yaw"], scene["pitch"], scene["roll"])
    R_neck = _rotation(scene["yaw"] / 2, scene["pitch"] / 2, scene["roll"] / 2)
    place = np.array([scene["offset"][0], scene["offset"][1], scene["distance"]])
    neck, body = sh.build_torso(shoulder_scale)
    posed = [m.transformed(R, place + pivot - R @ pivot) for m in sh.build_head(p, step)]
    return posed + [
        neck.transformed(R_neck, place + pivot - R_neck @ pivot),
        body.transformed(np.eye(3), place),
    ]


def generate_sample(
    index: int,
    size: int,
    seed: int,
    *,
    pose: tuple[float, float, float] | None = None,
    fov_deg: float = FOV_DEG,
) -> dict[str, Any]:
    """One synthetic sample: rgb (H,W,3) uint8, depth nearness (H,W) float32, depth_m (the camera z it
    encodes, metres, 0 = no surface) (H,W) float32, label (H,W) uint8, meta dict.

    ``pose`` = (yaw, pitch, roll) in degrees overrides the random pose (the other draws are unchanged).
    ``fov_deg`` is the camera's vertical field of view: smaller values frame the head larger.
    """
    from faceparse.data.render import Camera, render, vertex_normals

    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    _check_fov(fov_deg)
    rng = np.random.default_rng([seed, index])
    params = sh.sample_params(rng)
    scene = _sample_scene(rng)
    if pose is not None:
        scene["yaw"], scene["pitch"], scene["roll"] = (float(a) for a in pose)
    posed = _posed_meshes(params, scene, shoulder_scale=rng.uniform(0.85, 1.15), step=_mesh_step(size))
    camera = Camera.from_fov(size, size, fov_deg)
    mesh = sh.Mesh.concat([m.culled(camera.center) for m in posed])
    vertices = mesh.vertices
    smooth_normals = np.concatenate([vertex_normals(m.vertices, m.faces) for m in posed])  # before culling
    result = render(vertices, mesh.faces, camera, face_attr=mesh.part, face_attr_fill=-1)
    # render always returns the rays, and face_attr whenever it is given one
    assert result.rays is not None and result.face_attr is not None
    part = result.face_attr  # (H, W) mesh part id, -1 = miss
    uv = result.interpolate(mesh.uv)  # (H, W, 2) surface coordinates
    normal = result.interpolate(smooth_normals)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True) + 1e-9
    view = result.rays  # camera frame = world frame here
    facing = (normal * view).sum(-1, keepdims=True) > 0
    normal = np.where(facing, -normal, normal)  # shade the side the ray sees

    label, albedo, spec, shininess = _paint(rng, part, uv, params)
    diffuse, specular = _shade(normal, view, scene, shininess, spec)
    colour = (albedo * diffuse[..., None] + specular[..., None]) * scene["light_intensity"]

    background = _background(rng, size) * float(np.clip(scene["light_intensity"], 0.15, 1.4))
    rgb = np.where(result.mask[..., None], colour, background)
    rgb = rgb + rng.standard_normal(rgb.shape).astype(np.float32) * (scene["noise_sigma"] / 255.0)
    rgb_u8 = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)

    depth = metric_to_nearness(result.depth, result.mask, DEPTH_RANGE_M)
    label[~result.mask] = 0
    meta = {
        "generator": GENERATOR,
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "index": int(index),
        "size": int(size),
        "pose_deg": {"yaw": scene["yaw"], "pitch": scene["pitch"], "roll": scene["roll"]},
        "head_distance_m": scene["distance"],
        "head_offset_m": scene["offset"],
        "light": {
            "direction_camera": scene["light_dir"],
            "intensity": scene["light_intensity"],
            "mode": scene["light_mode"],
            "ambient": scene["ambient"],
        },
        "mouth_opening_rad": params.mouth_open,
        "noise_sigma": scene["noise_sigma"],
        "camera": {"fov_deg": float(fov_deg), "fx": camera.fx, "cx": camera.cx, "cy": camera.cy},
        "head": params.to_json(),
    }
    # depth_m: the camera z the nearness came from, in metres (0 = no surface), for metric-depth checks
    return {"rgb": rgb_u8, "depth": depth, "depth_m": result.depth, "label": label, "meta": meta}


def _paint(
    rng: np.random.Generator, part: np.ndarray, uv: np.ndarray, p: sh.HeadParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel labels, albedo (H,W,3), specular strength and shininess from part ids + head fields."""
    scheme = get_scheme(SCHEME)
    H, W = part.shape
    label = np.zeros((H, W), dtype=np.uint8)
    skin = _pick(rng, _SKIN, 0.06)
    hair_c = _pick(rng, _HAIR, 0.12)
    cloth_c = rng.uniform(0.05, 0.95, 3)

    albedo = np.zeros((H, W, 3), dtype=np.float32)
    spec = np.zeros((H, W), dtype=np.float32)
    shininess = np.full((H, W), 8.0, dtype=np.float32)
    fine = _noise_field(rng, (64, 64), uv, (40.0, 40.0))
    coarse = _noise_field(rng, (16, 16), uv, (4.0, 4.0))
    strands = _noise_field(rng, (16, 256), uv, (120.0, 3.0))

    is_head = part == sh.HEAD
    label[is_head], albedo[is_head], spec[is_head], shininess[is_head] = _paint_face(
        rng, uv[is_head], p, skin, hair_c, strands[is_head]
    )

    is_hair = part == sh.HAIR
    albedo[is_hair] = hair_c * np.clip(1 + 0.35 * strands[is_hair] + 0.1 * coarse[is_hair], 0.3, 2)[:, None]
    spec[is_hair] = 0.15
    shininess[is_hair] = 20.0
    label[is_hair] = scheme.index("hair")
    for mesh_part, name in ((sh.EAR_L, "l_ear"), (sh.EAR_R, "r_ear")):
        m = part == mesh_part
        albedo[m] = skin * 0.95
        label[m] = scheme.index(name)
    neck = part == sh.NECK
    albedo[neck] = skin * 0.92
    body = part == sh.BODY
    albedo[body] = cloth_c * (1 + 0.15 * coarse[body])[:, None]

    skinlike = is_head | neck | (part == sh.EAR_L) | (part == sh.EAR_R)
    albedo[skinlike] *= (1 + 0.04 * fine[skinlike] + 0.05 * coarse[skinlike])[:, None]
    return label, np.clip(albedo, 0, 1), spec, shininess


def _paint_face(
    rng: np.random.Generator,
    uv: np.ndarray,
    p: sh.HeadParams,
    skin: np.ndarray,
    hair_c: np.ndarray,
    strands: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Labels and material of the skull's pixels (1-D arrays over those pixels) from the part fields."""
    scheme = get_scheme(SCHEME)
    az, el = uv[:, 0], uv[:, 1]
    n = len(az)
    lip_c = np.clip(skin * np.array([0.95, 0.62, 0.62]) + rng.uniform(-0.05, 0.08, 3), 0, 1)
    iris_c = _pick(rng, _IRIS, 0.15)
    fields = sh.head_labels(az, el, p)
    label = np.full(n, scheme.index("skin"), dtype=np.uint8)
    albedo = np.tile(skin.astype(np.float32), (n, 1))
    spec = np.full(n, 0.06, dtype=np.float32)
    shininess = np.full(n, 12.0, dtype=np.float32)
    # later parts overwrite earlier ones, as in CelebAMask-HQ's merge order
    for name in ("nose", "u_lip", "l_lip", "mouth", "l_eye", "r_eye", "l_brow", "r_brow"):
        label[fields[name]] = scheme.index(name)
    lips = fields["u_lip"] | fields["l_lip"]
    albedo[lips] = lip_c
    spec[lips] = 0.12
    mouth = fields["mouth"]
    albedo[mouth] = (0.35, 0.08, 0.1)
    if p.mouth_open > 0.04:  # teeth show in the upper part of a wide-open mouth
        teeth = mouth & (el > p.mouth_el + p.smile * (az / p.mouth_half) ** 2 - 0.004)
        albedo[teeth] = (0.92, 0.9, 0.85)
    eyes = fields["l_eye"] | fields["r_eye"]
    r_iris, lash = sh.eye_detail(az, el, p)
    eye_size = p.eye_up + p.eye_lo
    eye_c = np.where((r_iris < 0.35 * eye_size)[:, None], iris_c, (0.93, 0.9, 0.88))
    eye_c = np.where((r_iris < 0.13 * eye_size)[:, None], (0.03, 0.03, 0.03), eye_c)
    albedo[eyes] = eye_c[eyes]
    spec[eyes] = 0.5
    shininess[eyes] = 60.0
    albedo[~eyes & (lash > 0) & (lash < 0.012)] *= 0.25  # lash line
    brows = fields["l_brow"] | fields["r_brow"]
    albedo[brows] = hair_c * rng.uniform(0.5, 0.9) * (1 + 0.25 * strands[brows, None])
    return label, albedo, spec, shininess


# --- dataset ---------------------------------------------------------------------------------------


def sample_id(index: int) -> str:
    return f"{index:06d}"


def _sample_files(out: Path, sid: str) -> list[Path]:
    return [
        out / "rgb" / f"{sid}.png",
        out / "depth" / f"{sid}.png",
        out / "label" / f"{sid}.png",
        out / "meta" / f"{sid}.json",
    ]


def _check_fov(fov_deg: float) -> None:
    if not 10.0 <= fov_deg <= 90.0:
        raise ValueError(f"fov_deg must lie in [10, 90] degrees (default {FOV_DEG}), got {fov_deg}")


def _write_one(args: tuple[str, int, int, int, float]) -> int:
    out, index, size, seed, fov_deg = args
    s = generate_sample(index, size, seed, fov_deg=fov_deg)
    write_sample(out, sample_id(index), rgb=s["rgb"], depth=s["depth"], label=s["label"], meta=s["meta"])
    return index


def _preload() -> None:
    import cv2  # noqa: F401
    import trimesh.ray  # noqa: F401

    import faceparse.data.render  # noqa: F401

    try:
        import trimesh.ray.ray_pyembree  # noqa: F401
    except ImportError:  # render() falls back (with a warning) to trimesh's numpy ray caster
        pass


def split_ids(num: int) -> dict[str, list[str]]:
    """Deterministic 80/10/10 split by index (contiguous blocks: sample ``i`` never changes split)."""
    n_val = int(round(num * SPLIT_FRACTIONS[1]))
    n_test = int(round(num * SPLIT_FRACTIONS[2]))
    if num >= 3:  # every split non-empty, even for tiny sets
        n_val, n_test = max(1, n_val), max(1, n_test)
    n_train = num - n_val - n_test
    ids = [sample_id(i) for i in range(num)]
    return {"train": ids[:n_train], "val": ids[n_train : n_train + n_val], "test": ids[n_train + n_val :]}


def generate_dataset(
    out: str | os.PathLike,
    num: int,
    size: int = 128,
    seed: int = 0,
    workers: int | None = None,
    fov_deg: float = FOV_DEG,
    *,
    on_progress: OnProgress | None = None,
) -> DatasetInfo:
    """Write ``num`` synthetic samples into ``out`` (faceparse format). Resumable; returns the dataset info.

    ``fov_deg`` sets the framing (the camera's vertical field of view; see :data:`FOV_DEG`); it is
    recorded in ``dataset.json`` (``provenance.fov_deg``) and a resumed run must use the same value.

    Samples whose four files all exist are skipped; each file is written atomically, so an interrupted
    run leaves only whole files. ``dataset.json`` and the splits are written at the end. The folder is
    locked for the run (:func:`faceparse.utils.locks.folder_lock`): a second writer is refused, naming
    this one's pid. Ctrl-C (KeyboardInterrupt) or SIGTERM stops the workers within seconds
    (:mod:`faceparse.utils.workers`) and removes their temporary files; a rerun resumes.

    ``on_progress(done, total, info)`` (:mod:`faceparse.utils.progress`) is called once before the work,
    with ``done`` = the samples already there, then after each sample written; ``total`` is ``num`` and
    ``info`` reads ``"{size}px, {workers} workers"``.
    """
    if num <= 0:
        raise ValueError(f"num must be positive, got {num}")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    _check_fov(fov_deg)
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1 (or None: one per CPU core), got {workers}")
    out = Path(out)
    with folder_lock(out, "faceparse synth"):
        _check_compatible(out, size, seed, fov_deg)
        remove_temporaries(out)  # a killed run's; nobody else writes here while we hold the lock
        todo = [i for i in range(num) if not all(f.is_file() for f in _sample_files(out, sample_id(i)))]
        jobs = [(str(out), i, size, seed, float(fov_deg)) for i in todo]
        try:
            _write_samples(jobs, num, max(1, workers or os.cpu_count() or 1), f"{size}px", on_progress)
        except BaseException:
            remove_temporaries(out)  # of workers stopped mid-sample (all of them have ended by now)
            raise
        return _finish(out, num, size, seed, fov_deg)


def _write_samples(
    jobs: list[tuple[str, int, int, int, float]],
    num: int,
    workers: int,
    note: str,
    on_progress: OnProgress | None,
) -> None:
    """Generate and write ``jobs`` (``_write_one``'s arguments), in worker processes when ``workers > 1``."""
    _preload()  # import once here: forked workers inherit the modules instead of importing them each

    done = num - len(jobs)
    note = f"{note}, {workers} workers"

    def advance() -> None:
        nonlocal done
        done += 1
        if on_progress is not None:
            on_progress(done, num, note)

    if on_progress is not None:
        on_progress(done, num, note)
    if workers == 1 or len(jobs) <= 1:
        with interruptible():  # a second Ctrl-C cannot cut short the first one's cleanup
            for job in jobs:
                _write_one(job)
                advance()
    else:
        with process_pool(min(workers, len(jobs))) as pool:
            for _ in pool.map(_write_one, jobs, chunksize=max(1, min(16, len(jobs) // (4 * workers)))):
                advance()


def _finish(out: Path, num: int, size: int, seed: int, fov_deg: float) -> DatasetInfo:
    """Write the splits and ``dataset.json`` of a complete dataset."""
    splits = split_ids(num)
    for name, ids in splits.items():
        write_split(out, name, ids)
    info = DatasetInfo(
        name=out.name,
        scheme=SCHEME,
        depth=DepthInfo(encoding="nearness16", range=DEPTH_RANGE_M, unit="m", source="synthetic-raycast"),
        image_size=[size, size],
        counts={name: len(ids) for name, ids in splits.items()},
        provenance={
            "generator": GENERATOR,
            "generator_version": GENERATOR_VERSION,
            "seed": seed,
            "num": num,
            "size": size,
            "fov_deg": float(fov_deg),
        },
    )
    write_info(out, info)
    return info


MARKER = ".synth.json"  # written first: a resumed run must use the same seed, size and generator


def _check_compatible(out: Path, size: int, seed: int, fov_deg: float) -> None:
    """Refuse to resume into a folder made with another seed, size, framing or generator version (mixed
    datasets are silent bugs)."""
    from faceparse.data.format import DATASET_JSON, read_info
    from faceparse.utils.io import DataError, atomic_write_json, read_json

    want = {"generator_version": GENERATOR_VERSION, "seed": seed, "size": size, "fov_deg": float(fov_deg)}
    marker = out / MARKER
    if marker.is_file():
        have = read_json(marker)
        if {k: have.get(k) for k in want} != want:
            raise DataError(
                marker,
                f"folder holds a synthetic dataset made with {have}, asked for {want}; pick another folder",
            )
    elif (out / DATASET_JSON).is_file() or any((out / d).is_dir() for d in ("rgb", "depth", "label")):
        if (out / DATASET_JSON).is_file() and read_info(out).provenance.get(
            "generator"
        ) == "faceparse.data.synth":
            raise DataError(out, f"synthetic dataset without its {MARKER} marker; pick another folder")
        raise DataError(out, "folder holds a dataset not made by `faceparse synth`; pick an empty folder")
    atomic_write_json(marker, want)


def preview_grid(num: int = 8, size: int = 192, seed: int = 0, columns: int = 2) -> np.ndarray:
    """An (H, W, 3) uint8 contact sheet: per sample RGB | depth (near = bright) | colourised labels."""
    scheme = get_scheme(SCHEME)
    tiles = []
    for i in range(num):
        s = generate_sample(i, size, seed)
        depth = np.repeat(np.rint(s["depth"] * 255).astype(np.uint8)[..., None], 3, axis=2)
        tiles.append(np.concatenate([s["rgb"], depth, scheme.colorize(s["label"])], axis=1))  # (S, 3S, 3)
    rows = -(-num // columns)
    tiles += [np.zeros_like(tiles[0])] * (rows * columns - num)
    gap = np.full((size, 4, 3), 255, np.uint8)
    lines = [
        np.concatenate(sum(([t, gap] for t in tiles[r * columns : (r + 1) * columns]), [])[:-1], axis=1)
        for r in range(rows)
    ]
    return np.concatenate(lines, axis=0)


def save_preview(path: str | os.PathLike, num: int = 8, size: int = 192, seed: int = 0) -> None:
    """Write :func:`preview_grid` as a PNG (docs/synth_grid.png is made this way)."""
    from PIL import Image

    from faceparse.utils.io import atomic_save

    grid = preview_grid(num, size, seed)
    atomic_save(path, lambda p: Image.fromarray(grid).save(p, format="PNG"))
