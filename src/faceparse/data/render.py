"""Depth rendering of triangle meshes by ray casting (one ray per pixel centre).

Used by the synthetic generator (``faceparse.data.synth``) and to render depth maps from reconstructed
head meshes, as the paper does with its 3D head model (paper §3.1: "we project the obtained meshes to
acquire depth maps").

Conventions (OpenCV pinhole camera):

* camera frame: x right, y down, z forward (away from the camera);
* pixel ``(u, v)`` = (column, row); pixel centres lie at integer coordinates, so ``cx = (W - 1) / 2``
  puts the optical axis through the image centre;
* ``R`` (3x3) and ``t`` (3,) map world to camera: ``p_cam = R @ p_world + t``;
* ``depth`` is the z coordinate in the camera frame (distance along the optical axis, not along the
  ray), 0 where a ray hits nothing.

Ray casting uses Embree through trimesh (``trimesh.ray.ray_pyembree``); without ``embreex`` it falls back,
with a warning, to a brute-force numpy intersector (much slower). Everything is vectorised over rays.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Camera:
    """Pinhole camera: intrinsics ``fx, fy, cx, cy`` (pixels), image size, world→camera ``R``, ``t``."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    t: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def __post_init__(self) -> None:
        self.R = np.asarray(self.R, dtype=np.float64).reshape(3, 3)
        self.t = np.asarray(self.t, dtype=np.float64).reshape(3)
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"camera image size must be positive, got {self.width}x{self.height}")
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"focal lengths must be positive, got fx={self.fx}, fy={self.fy}")
        if not np.allclose(self.R @ self.R.T, np.eye(3), atol=1e-6) or np.linalg.det(self.R) < 0:
            raise ValueError("R must be a proper rotation matrix (orthonormal, det +1)")

    @classmethod
    def from_fov(
        cls,
        width: int,
        height: int,
        fov_deg: float,
        *,
        R: np.ndarray | None = None,
        t: np.ndarray | None = None,
    ) -> Camera:
        """Square pixels, VERTICAL field of view ``fov_deg``, principal point at the image centre."""
        if not 0 < fov_deg < 180:
            raise ValueError(f"fov_deg must lie in (0, 180), got {fov_deg}")
        f = 0.5 * height / np.tan(np.radians(fov_deg) / 2)
        return cls(
            fx=f,
            fy=f,
            cx=(width - 1) / 2,
            cy=(height - 1) / 2,
            width=width,
            height=height,
            R=np.eye(3) if R is None else R,
            t=np.zeros(3) if t is None else t,
        )

    @classmethod
    def look_at(
        cls,
        eye: np.ndarray,
        target: np.ndarray,
        *,
        width: int,
        height: int,
        fov_deg: float,
        up: tuple[float, float, float] | np.ndarray = (0.0, -1.0, 0.0),
    ) -> Camera:
        """A camera at ``eye`` looking at ``target``; ``up`` (world) appears upwards in the image.

        The default ``up = (0, -1, 0)`` makes the world frame the OpenCV camera frame for a camera at
        the origin looking down +z.
        """
        eye, target, up = (np.asarray(a, dtype=np.float64) for a in (eye, target, up))
        z = target - eye
        if np.linalg.norm(z) == 0:
            raise ValueError("look_at: eye and target coincide")
        z /= np.linalg.norm(z)
        x = np.cross(-up, z)  # image right = down × forward
        if np.linalg.norm(x) < 1e-9:
            raise ValueError("look_at: up is parallel to the viewing direction")
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        R = np.stack([x, y, z])
        return cls.from_fov(width, height, fov_deg, R=R, t=-R @ eye)

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1.0]])

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates."""
        return -self.R.T @ self.t

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) world points → (N, 3) camera-frame points."""
        return _apply(np.asarray(points, dtype=np.float64), self.R) + self.t

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) world points → ((N, 2) pixel coordinates (u, v), (N,) depth z). Points behind get NaN."""
        p_cam = self.to_camera(points)  # (N, 3)
        z = p_cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = np.stack([self.fx * p_cam[:, 0] / z + self.cx, self.fy * p_cam[:, 1] / z + self.cy], axis=1)
        uv[z <= 0] = np.nan
        return uv, z

    def pixel_rays(self) -> tuple[np.ndarray, np.ndarray]:
        """One ray per pixel centre: world origin (3,) and (H*W, 3) unit directions in row-major order."""
        v, u = np.mgrid[0 : self.height, 0 : self.width]
        d_cam = np.stack(
            [(u.ravel() - self.cx) / self.fx, (v.ravel() - self.cy) / self.fy, np.ones(u.size)], axis=1
        )  # (H*W, 3)
        d_cam /= np.sqrt(np.einsum("ij,ij->i", d_cam, d_cam))[:, None]
        return self.center, _apply(d_cam, self.R.T)  # rotate camera → world


def _apply(points: np.ndarray, R: np.ndarray) -> np.ndarray:
    """``points @ R.T`` for (N, 3) points, written out: numpy's tall-skinny matmul is slow on few cores."""
    if np.array_equal(R, np.eye(3)):
        return points.copy()
    return points[:, :1] * R[:, 0] + points[:, 1:2] * R[:, 1] + points[:, 2:3] * R[:, 2]


@dataclass
class RenderResult:
    """Per-pixel render output, all (H, W, ...) arrays.

    ``normals`` are unit GEOMETRIC face normals in WORLD coordinates, oriented by the triangle winding
    (counter-clockwise seen from outside = outward); use :meth:`interpolate` with
    :func:`vertex_normals` for smooth shading normals.
    """

    depth: np.ndarray  # (H, W) float32, camera z, 0 = miss
    mask: np.ndarray  # (H, W) bool
    face_index: np.ndarray  # (H, W) int32, -1 = miss
    points: np.ndarray  # (H, W, 3) float32 world hit points, 0 = miss
    normals: np.ndarray  # (H, W, 3) float32 world face normals, 0 = miss
    barycentric: np.ndarray  # (H, W, 3) float32 weights of the hit face's 3 vertices, 0 = miss
    faces: np.ndarray  # (F, 3) the faces rendered (for interpolate)
    rays: np.ndarray | None = None  # (H, W, 3) float32 unit world direction of each pixel's ray
    face_attr: np.ndarray | None = None  # face_attr gathered per pixel, fill value where missed

    def interpolate(self, vertex_values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Barycentric interpolation of per-vertex values (V, ...) → (H, W, ...); ``fill`` where missed."""
        vertex_values = np.asarray(vertex_values)
        out = np.full(self.mask.shape + vertex_values.shape[1:], fill, dtype=np.float32)
        idx = self.face_index[self.mask]
        corners = vertex_values[self.faces[idx]]  # (P, 3, ...)
        w = self.barycentric[self.mask]  # (P, 3)
        out[self.mask] = np.einsum("pk,pk...->p...", w, corners)
        return out


def _check_mesh(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0:
        raise ValueError(f"vertices must be a non-empty (V, 3) array, got shape {vertices.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise ValueError(f"faces must be a non-empty (F, 3) array, got shape {faces.shape}")
    if not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"faces must hold integer vertex indices, got dtype {faces.dtype}")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise ValueError(
            f"faces index vertices out of range: indices span [{faces.min()}, {faces.max()}] "
            f"but there are {len(vertices)} vertices"
        )
    if not np.isfinite(vertices).all():
        raise ValueError("vertices contain NaN or infinite coordinates")
    return vertices, faces.astype(np.int64)


def _first_hits(vertices: np.ndarray, faces: np.ndarray, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Index of the first triangle each ray hits (-1 = miss), with Embree through trimesh.

    Without ``embreex`` a brute-force numpy caster is used, with a warning (trimesh's own fallback
    needs ``rtree``, which faceparse does not depend on).
    """
    try:
        import trimesh
        from trimesh.ray.ray_pyembree import RayMeshIntersector
    except ImportError:
        warnings.warn("embreex is not installed: using a slow brute-force numpy ray caster", stacklevel=3)
        return _first_hits_numpy(vertices, faces, origin, dirs)
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False, validate=False)
    origins = np.broadcast_to(origin, dirs.shape)
    return np.asarray(RayMeshIntersector(mesh).intersects_first(origins, dirs), dtype=np.int64)


def _first_hits_numpy(
    vertices: np.ndarray, faces: np.ndarray, origin: np.ndarray, dirs: np.ndarray, budget: int = 1 << 22
) -> np.ndarray:
    """Möller–Trumbore of every ray against every triangle, in chunks of faces; nearest hit wins."""
    best_t = np.full(len(dirs), np.inf)
    best = np.full(len(dirs), -1, dtype=np.int64)
    chunk = max(1, budget // max(1, len(dirs)))
    for start in range(0, len(faces), chunk):
        tri = faces[start : start + chunk]
        a, e1, e2 = (
            vertices[tri[:, 0]],
            vertices[tri[:, 1]] - vertices[tri[:, 0]],
            vertices[tri[:, 2]] - vertices[tri[:, 0]],
        )
        p = np.cross(dirs[:, None, :], e2[None])  # (R, C, 3)
        det = np.einsum("rcj,cj->rc", p, e1)
        ok = np.abs(det) > 1e-14
        inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
        s = origin - a  # (C, 3)
        u = np.einsum("rcj,cj->rc", p, s) * inv
        q = np.cross(s, e1)  # (C, 3)
        v = np.einsum("rj,cj->rc", dirs, q) * inv
        t = (e2 * q).sum(1)[None, :] * inv
        hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
        t = np.where(hit, t, np.inf)
        j = t.argmin(axis=1)
        t_min = t[np.arange(len(dirs)), j]
        closer = t_min < best_t
        best_t[closer], best[closer] = t_min[closer], start + j[closer]
    return best


def render(
    vertices: np.ndarray,
    faces: np.ndarray,
    camera: Camera,
    *,
    face_attr: np.ndarray | None = None,
    face_attr_fill: float = -1,
) -> RenderResult:
    """Cast one ray per pixel centre at the mesh; return depth, mask, face ids, hit points, normals.

    ``face_attr`` (F, ...) is gathered at each pixel's hit face (``face_attr_fill`` where missed), e.g.
    per-triangle part ids.
    """
    vertices, faces = _check_mesh(vertices, faces)
    if face_attr is not None:
        face_attr = np.asarray(face_attr)
        if len(face_attr) != len(faces):
            raise ValueError(f"face_attr has {len(face_attr)} rows for {len(faces)} faces")
    H, W = camera.height, camera.width
    origin, dirs = camera.pixel_rays()  # (3,), (H*W, 3)
    tri = _first_hits(vertices, faces, origin, dirs)  # (H*W,)

    hit = tri >= 0
    a, b, c = (vertices[faces[tri[hit], k]] for k in range(3))  # (P, 3) each
    t_hit, bary = _ray_triangle(origin, dirs[hit], a, b, c)
    points = origin + dirs[hit] * t_hit[:, None]  # (P, 3)
    normal = np.cross(b - a, c - a)
    normal /= np.maximum(np.sqrt(np.einsum("ij,ij->i", normal, normal)), 1e-30)[:, None]

    depth = np.zeros(H * W, dtype=np.float32)
    depth[hit] = camera.to_camera(points)[:, 2]
    out_points = np.zeros((H * W, 3), dtype=np.float32)
    out_points[hit] = points
    out_normals = np.zeros((H * W, 3), dtype=np.float32)
    out_normals[hit] = normal
    out_bary = np.zeros((H * W, 3), dtype=np.float32)
    out_bary[hit] = bary
    gathered = None
    if face_attr is not None:
        gathered = np.full((H * W,) + face_attr.shape[1:], face_attr_fill, dtype=face_attr.dtype)
        gathered[hit] = face_attr[tri[hit]]
        gathered = gathered.reshape((H, W) + face_attr.shape[1:])
    return RenderResult(
        depth=depth.reshape(H, W),
        mask=hit.reshape(H, W),
        face_index=np.where(hit, tri, -1).astype(np.int32).reshape(H, W),
        points=out_points.reshape(H, W, 3),
        normals=out_normals.reshape(H, W, 3),
        barycentric=out_bary.reshape(H, W, 3),
        faces=faces,
        rays=dirs.astype(np.float32).reshape(H, W, 3),
        face_attr=gathered,
    )


def _ray_triangle(
    origin: np.ndarray, dirs: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Distance along each ray to the plane of its (known) hit triangle, and barycentrics there.

    Möller–Trumbore in float64 on the hits only; Embree found the triangle, this refines the hit.
    Barycentrics are clipped into the triangle (Embree may report a hit a hair outside an edge).
    """
    e1, e2 = b - a, c - a
    p = np.cross(dirs, e2)
    det = np.einsum("ij,ij->i", e1, p)
    det = np.where(np.abs(det) < 1e-30, 1e-30, det)
    s = origin - a
    u = np.einsum("ij,ij->i", s, p) / det
    q = np.cross(s, e1)
    v = np.einsum("ij,ij->i", dirs, q) / det
    t = np.einsum("ij,ij->i", e2, q) / det
    bary = np.clip(np.stack([1.0 - u - v, u, v], axis=1), 0.0, 1.0)
    bary /= np.maximum(bary.sum(axis=1, keepdims=True), 1e-12)
    return t, bary


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V, 3), oriented by the triangle winding."""
    vertices, faces = _check_mesh(vertices, faces)
    face_n = np.cross(
        vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]]
    )
    idx = faces.ravel()  # each face contributes its (area-weighted) normal to its 3 vertices
    n = np.stack(
        [np.bincount(idx, weights=np.repeat(face_n[:, k], 3), minlength=len(vertices)) for k in range(3)],
        axis=1,
    )
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-30)
