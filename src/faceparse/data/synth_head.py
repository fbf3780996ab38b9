"""Procedural 3D heads for the synthetic RGB-D generator: geometry and analytic part fields.

Head frame (metres): origin at the head centre, X = the image's right for a frontal face (so the
SUBJECT's left, CelebAMask-HQ's ``l_`` side, paper §3.1 / FACTS §2), Y down, Z away from the camera
(the face looks towards -Z). The skull is a displaced ellipsoid parametrised by azimuth ``az``
(0 = facing the camera, > 0 towards +X) and elevation ``el`` (> 0 upwards), both in radians.

Facial parts are *fields* over (az, el). The same fields displace the mesh (nose, lips, open mouth,
slight eye bulge and brow ridge) and, evaluated at every pixel's interpolated surface coordinates, paint
the labels, so geometry and labels agree without depending on the tessellation. Eyes and brows are
painted with only a weak relief, as in real faces (why depth parsing of them is harder, paper Table 3).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# Mesh part ids (per triangle); the head's own parts come from the fields below.
HEAD, HAIR, EAR_L, EAR_R, NECK, BODY = range(6)
PART_NAMES = ("head", "hair", "l_ear", "r_ear", "neck", "body")


@dataclass
class HeadParams:
    """Random proportions of one head (radians for positions on the face, metres for sizes)."""

    axes: tuple[float, float, float]  # ellipsoid semi-axes x (width), y (height), z (depth)
    jaw: float  # how much the lower face narrows
    eye_az: float
    eye_el: float
    eye_w: float
    eye_up: float
    eye_lo: float
    gaze: tuple[float, float]
    brow_el: float
    brow_in: float
    brow_out: float
    brow_arch: float
    brow_half: float
    nose_tip_el: float
    nose_height: float
    nose_width: float
    mouth_el: float
    mouth_half: float
    mouth_open: float  # gap between the lips in radians; 0 = closed
    smile: float
    lip_up: float
    lip_lo: float
    lip_height: float
    hairline: float
    hair_curve: float
    hair_volume: float
    hair_length: float  # metres of hair hanging below the ears; 0 = short
    hair_covers_ears: bool
    ear_el: float
    ear_size: float

    def to_json(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def sample_params(rng: np.random.Generator) -> HeadParams:
    u = rng.uniform
    eye_el = u(0.09, 0.15)
    mouth_open = 0.0 if rng.random() < 0.45 else u(0.02, 0.14)
    return HeadParams(
        axes=(u(0.070, 0.082), u(0.104, 0.120), u(0.094, 0.106)),
        jaw=u(0.12, 0.32),
        eye_az=u(0.33, 0.4),
        eye_el=eye_el,
        eye_w=u(0.115, 0.145),
        eye_up=u(0.04, 0.06),
        eye_lo=u(0.025, 0.04),
        gaze=(u(-0.015, 0.015), u(-0.006, 0.006)),
        brow_el=eye_el + u(0.13, 0.18),
        brow_in=u(0.07, 0.13),
        brow_out=u(0.55, 0.66),
        brow_arch=u(0.0, 0.04),
        brow_half=u(0.022, 0.038),
        nose_tip_el=u(-0.22, -0.14),
        nose_height=u(0.016, 0.028),
        nose_width=u(0.075, 0.11),
        mouth_el=u(-0.47, -0.38),
        mouth_half=u(0.19, 0.27),
        mouth_open=mouth_open,
        smile=u(-0.02, 0.05),
        lip_up=u(0.035, 0.06),
        lip_lo=u(0.045, 0.075),
        lip_height=u(0.003, 0.006),
        hairline=u(0.48, 0.75),
        hair_curve=u(0.25, 0.45),
        hair_volume=u(0.008, 0.035),
        hair_length=0.0 if rng.random() < 0.5 else u(0.04, 0.22),
        hair_covers_ears=bool(rng.random() < 0.25),
        ear_el=u(-0.03, 0.05),
        ear_size=u(0.9, 1.15),
    )


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


# --- part fields over (az, el) --------------------------------------------------------------------


def _mouth_frame(az: np.ndarray, p: HeadParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mouth coordinates: x in [-1, 1] across the mouth, centre line, half gap, lip-thickness scale."""
    x = az / p.mouth_half
    inside = np.abs(x) < 1
    w = np.sqrt(np.clip(1 - x * x, 0, 1))
    centre = p.mouth_el + p.smile * x * x
    return x, centre, 0.5 * p.mouth_open * w, np.where(inside, 0.3 + 0.7 * w, 0.0)


def _lip_bands(az: np.ndarray, el: np.ndarray, p: HeadParams):
    """(upper-lip position in [0,1] or NaN, lower-lip position or NaN, inside-mouth bool)."""
    x, c, half_gap, scale = _mouth_frame(az, p)
    bow = 0.010 * np.exp(-(((np.abs(az) - 0.06) / 0.04) ** 2)) - 0.008 * np.exp(-((az / 0.03) ** 2))
    up_lo, up_hi = c + half_gap, c + half_gap + scale * p.lip_up + bow * (scale > 0)
    lo_hi, lo_lo = c - half_gap, c - half_gap - scale * p.lip_lo
    with np.errstate(invalid="ignore", divide="ignore"):
        f_up = (el - up_lo) / (up_hi - up_lo)
        f_lo = (lo_hi - el) / (lo_hi - lo_lo)
    f_up = np.where((scale > 0) & (f_up >= 0) & (f_up <= 1), f_up, np.nan)
    f_lo = np.where((scale > 0) & (f_lo >= 0) & (f_lo <= 1), f_lo, np.nan)
    in_mouth = (np.abs(x) < 1) & (el > lo_hi) & (el < up_lo)
    return f_up, f_lo, in_mouth


def _mouth_dent(az: np.ndarray, el: np.ndarray, p: HeadParams) -> np.ndarray:
    """Inward depth (metres, <= 0) of the open mouth: 0 on the lips' inner edges, deepest mid-gap.

    Continuous at the lips, so the cavity wall does not follow the mesh rows as a staircase.
    """
    x, c, half_gap, _ = _mouth_frame(az, p)
    with np.errstate(invalid="ignore", divide="ignore"):
        g = (el - (c - half_gap)) / (2 * half_gap)  # 0 at the lower lip, 1 at the upper lip
    inside = (np.abs(x) < 1) & (g > 0) & (g < 1)
    return np.where(inside, -0.013 * (1 - x * x) * np.sqrt(np.sin(np.pi * np.where(inside, g, 0))), 0.0)


def _eye_fields(az: np.ndarray, el: np.ndarray, p: HeadParams, side: float):
    """Eye coordinates for one side (+1 = +X = subject's left): x across, y up, inside mask."""
    x = (az - side * p.eye_az) / p.eye_w
    y = el - p.eye_el
    w = np.clip(1 - x * x, 0, 1)
    inside = (np.abs(x) < 1) & (y < p.eye_up * w**0.7) & (y > -p.eye_lo * w**0.9)
    return x, y, inside


def _brow_field(az: np.ndarray, el: np.ndarray, p: HeadParams, side: float) -> np.ndarray:
    t = (side * az - p.brow_in) / (p.brow_out - p.brow_in)
    centre = p.brow_el + p.brow_arch * np.sin(np.pi * np.clip(t, 0, 1)) - 0.02 * np.clip(t - 0.7, 0, 1)
    half = p.brow_half * (1 - 0.5 * np.clip(t, 0, 1))
    return (t >= 0) & (t <= 1) & (np.abs(el - centre) < half)


def _nose_field(az: np.ndarray, el: np.ndarray, p: HeadParams) -> tuple[np.ndarray, np.ndarray]:
    """(protrusion in metres, nose mask)."""
    top = p.eye_el - 0.02
    s = np.clip((top - el) / (top - p.nose_tip_el), 0, None)  # 0 at the bridge, 1 at the tip
    along = np.where(s <= 1, s**1.4, np.exp(-(((s - 1) * (top - p.nose_tip_el) / 0.03) ** 2)))
    width = 0.045 + (p.nose_width - 0.045) * np.clip(s, 0, 1) ** 2
    across = np.exp(-((az / width) ** 2))
    wings = 0.35 * np.exp(
        -(((np.abs(az) - 0.8 * p.nose_width) / 0.035) ** 2 + ((el - p.nose_tip_el - 0.01) / 0.03) ** 2)
    )
    height = p.nose_height * (along * across + wings * (s > 0.6))
    mask = (s > 0.05) & (el > p.nose_tip_el - 0.045) & ((across > 0.3) | (wings > 0.12))
    return height, mask


def head_displacement(az: np.ndarray, el: np.ndarray, p: HeadParams) -> np.ndarray:
    """Outward displacement (metres) of the skull ellipsoid by the facial relief."""
    nose, _ = _nose_field(az, el, p)
    f_up, f_lo, _ = _lip_bands(az, el, p)
    lips = p.lip_height * (
        np.nan_to_num(np.sin(np.pi * f_up**0.8)) + np.nan_to_num(np.sin(np.pi * f_lo**0.8))
    )
    mouth = _mouth_dent(az, el, p)
    muzzle = 0.006 * np.exp(-(((el - p.mouth_el) / 0.16) ** 2) - (az / 0.35) ** 2)
    chin = 0.004 * np.exp(-(((el - p.mouth_el + 0.25) / 0.08) ** 2) - (az / 0.2) ** 2)
    cheeks = 0.004 * np.exp(-(((np.abs(az) - 0.55) / 0.18) ** 2) - ((el + 0.05) / 0.12) ** 2)
    brow_ridge = 0.003 * np.exp(-(((el - p.brow_el + 0.02) / 0.06) ** 2) - ((np.abs(az) - 0.3) / 0.3) ** 2)
    eyes = 0.0
    for side in (1.0, -1.0):
        x, y, inside = _eye_fields(az, el, p, side)
        eyes = eyes - 0.004 * np.exp(-((x / 1.5) ** 2) - (y / 0.08) ** 2)  # socket
        eyes = eyes + 0.0015 * np.clip(1 - x * x, 0, 1) * inside  # the eyeball bulges slightly in the lids
    return nose + lips + mouth + muzzle + chin + cheeks + brow_ridge + eyes


def head_labels(az: np.ndarray, el: np.ndarray, p: HeadParams) -> dict[str, np.ndarray]:
    """Boolean masks of each facial part at surface coordinates (az, el); skin is the rest."""
    _, nose = _nose_field(az, el, p)
    f_up, f_lo, in_mouth = _lip_bands(az, el, p)
    parts = {
        "nose": nose,
        "u_lip": ~np.isnan(f_up),
        "l_lip": ~np.isnan(f_lo),
        "mouth": in_mouth,
        "l_brow": _brow_field(az, el, p, 1.0),
        "r_brow": _brow_field(az, el, p, -1.0),
    }
    for side, name in ((1.0, "l_eye"), (-1.0, "r_eye")):
        parts[name] = _eye_fields(az, el, p, side)[2]
    return parts


def eye_detail(az: np.ndarray, el: np.ndarray, p: HeadParams) -> tuple[np.ndarray, np.ndarray]:
    """(distance from the iris centre in radians, distance outside the lids (>0 near the lash line))."""
    side = np.sign(az)
    cx = side * p.eye_az + p.gaze[0]
    r_iris = np.hypot(az - cx, el - p.eye_el - p.gaze[1] - 0.004)
    x = (az - side * p.eye_az) / p.eye_w
    w = np.clip(1 - x * x, 0, 1)
    lash = (el - p.eye_el) - p.eye_up * w**0.7
    return r_iris, np.where(np.abs(x) < 1.1, lash, 1.0)


def hairline(az: np.ndarray, p: HeadParams) -> np.ndarray:
    """Elevation above which the scalp carries hair, per azimuth."""
    front = p.hairline - p.hair_curve * az * az
    a1, a2 = (1.0, 1.35) if p.hair_covers_ears else (1.3, 1.72)
    line = front + (-0.45 - front) * _smoothstep(a1, a2, np.abs(az))
    if p.hair_covers_ears:
        return line
    # the hair goes round above the ears
    ear_top = p.ear_el + 0.3
    notch = np.exp(-(((np.abs(az) - 1.6) / 0.17) ** 4))
    return np.maximum(line, ear_top * notch + line * (1 - notch))


# --- meshes -----------------------------------------------------------------------------------------


def _nodes(lo: float, hi: float, dense: tuple[float, float], step: float) -> np.ndarray:
    """Node positions on [lo, hi]: spacing ``step`` inside ``dense``, 3x coarser outside."""
    parts = [
        np.linspace(lo, dense[0], max(2, int(np.ceil((dense[0] - lo) / (3 * step))) + 1)),
        np.linspace(dense[0], dense[1], max(2, int(np.ceil((dense[1] - dense[0]) / step)) + 1)),
        np.linspace(dense[1], hi, max(2, int(np.ceil((hi - dense[1]) / (3 * step))) + 1)),
    ]
    return np.unique(np.concatenate(parts))


def grid_faces(rows: int, cols: int) -> np.ndarray:
    """Two triangles per cell of a (rows, cols) vertex grid in row-major order: (2*(rows-1)*(cols-1), 3)."""
    r, c = np.mgrid[0 : rows - 1, 0 : cols - 1]
    i = (r * cols + c).ravel()
    return np.concatenate(
        [np.stack([i, i + cols, i + 1], axis=1), np.stack([i + 1, i + cols, i + cols + 1], axis=1)]
    ).astype(np.int64)


def _direction(az: np.ndarray, el: np.ndarray) -> np.ndarray:
    ce = np.cos(el)
    return np.stack([np.sin(az) * ce, -np.sin(el), -np.cos(az) * ce], axis=-1)


def skull_points(
    az: np.ndarray, el: np.ndarray, p: HeadParams, offset: np.ndarray | float = 0.0
) -> np.ndarray:
    """Surface points (..., 3) of the displaced ellipsoid, pushed ``offset`` metres further out."""
    d, r = _skull_radial(az, el, p)
    return d * (r + offset)[..., None]


def _skull_radial(az: np.ndarray, el: np.ndarray, p: HeadParams) -> tuple[np.ndarray, np.ndarray]:
    """(direction with the jaw narrowing applied (..., 3), radius incl. facial relief (...))."""
    d = _direction(az, el)
    ax, ay, az_ = p.axes
    r = 1.0 / np.sqrt((d[..., 0] / ax) ** 2 + (d[..., 1] / ay) ** 2 + (d[..., 2] / az_) ** 2)
    below = np.clip(-np.sin(el), 0, 1)  # narrow the jaw and chin
    d[..., 0] *= 1 - p.jaw * below**1.5
    return d, r + head_displacement(az, el, p)


@dataclass
class Mesh:
    """Triangles with a part id per face and 2 surface coordinates per vertex (for painting)."""

    vertices: np.ndarray  # (V, 3)
    faces: np.ndarray  # (F, 3)
    part: np.ndarray  # (F,) int8 part ids (HEAD, HAIR, ...)
    uv: np.ndarray  # (V, 2) surface coordinates
    closed: bool = False  # a closed surface: its back faces can never be the first hit from outside

    @staticmethod
    def concat(meshes: list[Mesh]) -> Mesh:
        offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
        return Mesh(
            vertices=np.concatenate([m.vertices for m in meshes]),
            faces=np.concatenate([m.faces + o for m, o in zip(meshes, offsets, strict=True)]),
            part=np.concatenate([m.part for m in meshes]),
            uv=np.concatenate([m.uv for m in meshes]),
        )

    def transformed(self, R: np.ndarray, t: np.ndarray) -> Mesh:
        return Mesh(self.vertices @ R.T + t, self.faces, self.part, self.uv, self.closed)

    def culled(self, eye: np.ndarray) -> Mesh:
        """Drop degenerate faces and, for a closed mesh, faces turned away from ``eye`` (same first hits)."""
        a, b, c = (self.vertices[self.faces[:, k]] for k in range(3))
        normal = np.cross(b - a, c - a)  # (F, 3), length = 2 * area
        keep = np.einsum("ij,ij->i", normal, normal) > 1e-18
        if self.closed:
            outward = np.sign(np.einsum("ij,ij->i", a, np.cross(b, c)).sum())  # sign of the signed volume
            keep &= outward * np.einsum("ij,ij->i", normal, (a + b + c) / 3 - eye) < 0
        return Mesh(self.vertices, self.faces[keep], self.part[keep], self.uv, self.closed)


def _grid_mesh(
    points: np.ndarray, uv: np.ndarray, part: int, keep: np.ndarray | None = None, closed: bool = False
) -> Mesh:
    rows, cols = points.shape[:2]
    faces = grid_faces(rows, cols)
    if keep is not None:
        faces = faces[keep.ravel()[faces].any(axis=1)]
    return Mesh(points.reshape(-1, 3), faces, np.full(len(faces), part, np.int8), uv.reshape(-1, 2), closed)


def build_head(p: HeadParams, step: float) -> list[Mesh]:
    """Skull with face, hair shell (+ hanging hair), two ears. ``step`` = dense grid spacing (radians)."""
    az = _nodes(-np.pi, np.pi, (-1.35, 1.35), step)
    el = _nodes(-np.pi / 2, np.pi / 2, (-0.8, 0.8), step)
    if step < 0.045:
        # a twice finer grid across the mouth, where the lips occlude the open cavity along mesh
        # edges (a visible saw-tooth from about 256² up; sub-pixel below)
        az = np.unique(np.concatenate([az, np.arange(-p.mouth_half - 0.04, p.mouth_half + 0.04, step / 2)]))
        lo = p.mouth_el - 0.5 * p.mouth_open - p.lip_lo - 0.02
        hi = p.mouth_el + 0.5 * p.mouth_open + p.lip_up + 0.03
        el = np.unique(np.concatenate([el, np.arange(lo, hi, step / 2)]))
    AZ, EL = np.meshgrid(az, el)  # (rows=el, cols=az)
    uv = np.stack([AZ, EL], axis=-1)
    d, r = _skull_radial(AZ, EL, p)
    head = _grid_mesh(d * r[..., None], uv, HEAD, closed=True)

    # Hair shell: thickness ramps up above the hairline and is negative (hidden inside) below it, so the
    # visible hairline is the smooth zero crossing rather than a stair of triangles.
    above = EL - hairline(AZ, p)
    thick = p.hair_volume * _smoothstep(-0.02, 0.25, above) * (0.6 + 0.4 * np.clip(EL + 0.5, 0, 1)) - 0.003
    thick = np.where(above < 0, -0.004, thick + 0.002)
    hair = _grid_mesh(d * (r + thick)[..., None], uv, HAIR, keep=thick > 0)
    meshes = [head, hair]
    if p.hair_length > 0:
        meshes.append(_hanging_hair(p, step))
    meshes += [_ear(p, 1.0), _ear(p, -1.0)]
    return meshes


def _hanging_hair(p: HeadParams, step: float) -> Mesh:
    """A curtain of hair falling from ear height around the back of the head."""
    a0 = 1.15 if p.hair_covers_ears else 1.85
    az = np.linspace(a0, 2 * np.pi - a0, max(8, int((2 * np.pi - 2 * a0) / (2 * step))))
    az = np.where(az > np.pi, az - 2 * np.pi, az)
    s = np.linspace(0, 1, max(4, int(p.hair_length / 0.01)))
    AZ, S = np.meshgrid(az, s)
    top = skull_points(AZ[:1], np.full_like(AZ[:1], 0.05), p, p.hair_volume * 0.8 + 0.002)  # (1, n, 3)
    outward = top * np.array([1.0, 0.0, 1.0]) / np.linalg.norm(top * [1, 0, 1], axis=-1, keepdims=True)
    pts = top + S[..., None] * (np.array([0.0, p.hair_length, 0.0]) + 0.015 * outward)
    uv = np.stack([AZ, 0.05 - S * p.hair_length / 0.1], axis=-1)
    return _grid_mesh(pts, uv, HAIR)


def _ear(p: HeadParams, side: float) -> Mesh:
    """A flattened ellipsoid on the side of the head, tilted so its back edge stands out."""
    u, v = np.meshgrid(np.linspace(-np.pi / 2, np.pi / 2, 8), np.linspace(-np.pi, np.pi, 13))
    h, w, thick = 0.032 * p.ear_size, 0.02 * p.ear_size, 0.006
    local = np.stack([thick * np.cos(u) * np.cos(v), h * np.sin(u), w * np.cos(u) * np.sin(v)], axis=-1)
    yaw = side * 0.6  # back edge away from the head
    R = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    anchor = skull_points(np.array(side * 1.62), np.array(p.ear_el), p)
    centre = anchor + np.array([side * 0.008, 0.0, 0.006])
    pts = local @ R.T + centre
    return _grid_mesh(pts, np.stack([u, v], axis=-1), EAR_L if side > 0 else EAR_R, closed=True)


def build_torso(shoulder_scale: float) -> list[Mesh]:
    """Neck (open cylinder) and shoulders (flattened ellipsoid), both labelled background (Figure 2)."""
    ang = np.linspace(-np.pi, np.pi, 25)
    y = np.linspace(0.0, 0.2, 6)
    A, Y = np.meshgrid(ang, y)
    r = 0.056
    neck_pts = np.stack([r * np.sin(A), Y, 0.02 - r * np.cos(A)], axis=-1)
    neck = _grid_mesh(neck_pts, np.stack([A, Y * 10], axis=-1), NECK)
    u, v = np.meshgrid(np.linspace(-np.pi / 2, np.pi / 2, 13), np.linspace(-np.pi, np.pi, 25))
    axes = np.array([0.2 * shoulder_scale, 0.09, 0.11])
    body_pts = np.stack([np.cos(u) * np.sin(v), np.sin(u), -np.cos(u) * np.cos(v)], axis=-1) * axes
    body_pts += np.array([0.0, 0.24, 0.03])
    body = _grid_mesh(body_pts, np.stack([v, u], axis=-1), BODY, closed=True)
    return [neck, body]
