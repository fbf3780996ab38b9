"""Ray-cast renderer: analytic sphere and plane depth, camera convention, face ids, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from faceparse.data.render import Camera, render, vertex_normals


def _sphere_depth(camera: Camera, centre: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact camera-z depth of a sphere per pixel ray (camera at the origin, identity rotation)."""
    _, dirs = camera.pixel_rays()
    b = dirs @ centre
    disc = b * b - (centre @ centre - radius * radius)
    hit = disc > 0
    t = b - np.sqrt(np.where(hit, disc, 0))
    z = t * dirs[:, 2]
    shape = (camera.height, camera.width)
    return np.where(hit, z, 0).reshape(shape), hit.reshape(shape)


def test_sphere_depth_matches_analytic():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.1)
    centre = np.array([0.02, -0.01, 0.5])
    camera = Camera.from_fov(96, 80, 30)
    out = render(sphere.vertices + centre, sphere.faces, camera)
    z_true, hit_true = _sphere_depth(camera, centre, 0.1)
    # the tessellated sphere is slightly inside the true one: disagreement only on the silhouette
    assert (out.mask != hit_true).sum() <= 0.01 * hit_true.sum()
    both = out.mask & hit_true
    assert both.sum() > 1000
    # chord sagitta of a level-4 icosphere of radius 0.1 is < 0.5 mm; away from the rim error is tiny
    interior = both & (z_true < 0.5 - 0.1 * 0.5)
    assert np.abs(out.depth[interior] - z_true[interior]).max() < 6e-4
    assert out.depth.dtype == np.float32 and (out.depth[~out.mask] == 0).all()
    # hit points lie on the sphere, normals point outwards (towards the camera on the visible side)
    r = np.linalg.norm(out.points[out.mask] - centre, axis=1)
    assert np.abs(r - 0.1).max() < 6e-4
    assert (out.normals[out.mask][:, 2] < 0.05).all()


def test_tilted_plane_depth_and_barycentrics():
    # plane z = 1 + 0.5 x, a large quad made of 2 triangles
    xs = np.array([-1.0, 1.0])
    ys = np.array([-1.0, 1.0])
    verts = np.array([[x, y, 1 + 0.5 * x] for y in ys for x in xs])
    faces = np.array([[0, 2, 1], [1, 2, 3]])
    camera = Camera.from_fov(64, 64, 40)
    out = render(verts, faces, camera, face_attr=np.array([7, 9]))
    assert out.mask.all()
    _, dirs = camera.pixel_rays()
    t = 1.0 / (dirs[:, 2] - 0.5 * dirs[:, 0])  # ray p = t d meets z = 1 + 0.5 x
    z_true = (t * dirs[:, 2]).reshape(64, 64)
    np.testing.assert_allclose(out.depth, z_true, rtol=1e-5)
    assert set(np.unique(out.face_attr)) == {7, 9}
    np.testing.assert_array_equal(out.face_attr, np.array([7, 9])[out.face_index])
    # interpolating vertex positions with the barycentrics reproduces the hit points
    np.testing.assert_allclose(out.interpolate(verts), out.points, atol=1e-5)
    np.testing.assert_allclose(out.barycentric.sum(-1), 1, atol=1e-5)


def test_mask_face_index_and_attr_consistency():
    box = trimesh.creation.box(extents=(0.2, 0.2, 0.2))
    camera = Camera.from_fov(48, 48, 40)
    out = render(box.vertices + [0, 0, 1.0], box.faces, camera, face_attr=np.arange(len(box.faces)))
    assert out.mask.any() and (~out.mask).any()
    assert ((out.face_index >= 0) == out.mask).all()
    assert (out.face_attr[~out.mask] == -1).all()
    np.testing.assert_array_equal(out.face_attr[out.mask], out.face_index[out.mask])
    # the front face of the box is at z = 0.9 exactly
    assert np.allclose(out.depth[24, 24], 0.9, atol=1e-6)


def test_camera_convention_right_and_down():
    camera = Camera.from_fov(101, 101, 45)
    uv, z = camera.project(np.array([[0.0, 0.0, 1.0], [0.1, 0.0, 1.0], [0.0, 0.1, 1.0]]))
    assert np.allclose(uv[0], [50, 50]) and np.allclose(z, 1)
    assert uv[1, 0] > uv[0, 0]  # +x lands right of centre
    assert uv[2, 1] > uv[0, 1]  # +y lands below centre
    # a small sphere right of centre renders in the right half of the image
    s = trimesh.creation.icosphere(subdivisions=2, radius=0.05)
    out = render(s.vertices + [0.2, 0, 1], s.faces, camera)
    cols = np.nonzero(out.mask.any(axis=0))[0]
    assert cols.min() > 50
    assert abs(cols.mean() - camera.project(np.array([[0.2, 0, 1]]))[0][0, 0]) < 1.5


def test_look_at_matches_identity_camera():
    s = trimesh.creation.icosphere(subdivisions=3, radius=0.1)
    a = Camera.from_fov(40, 40, 40)
    b = Camera.look_at([0, 0, 0], [0, 0, 1], width=40, height=40, fov_deg=40)
    np.testing.assert_allclose(b.R, np.eye(3), atol=1e-12)
    # a camera moved to the side and looking back at the sphere sees it centred
    c = Camera.look_at([1.0, 0, 1.0], [0, 0, 1.0], width=40, height=40, fov_deg=40)
    uv, z = c.project(np.array([[0, 0, 1.0]]))
    assert np.allclose(uv, [[19.5, 19.5]]) and np.allclose(z, 1.0)
    ra = render(s.vertices + [0, 0, 1], s.faces, a)
    rc = render(s.vertices + [0, 0, 1], s.faces, c)
    assert abs(int(ra.mask.sum()) - int(rc.mask.sum())) <= 4


def test_vertex_normals_of_sphere_are_radial():
    s = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    n = vertex_normals(s.vertices, s.faces)
    cos = np.abs((n * s.vertices).sum(1))
    assert cos.min() > 0.99


@pytest.mark.parametrize(
    ("verts", "faces", "match"),
    [
        (np.zeros((0, 3)), np.zeros((0, 3), int), "vertices must be a non-empty"),
        (np.zeros((3, 3)), np.zeros((0, 3), int), "faces must be a non-empty"),
        (np.eye(3), np.array([[0, 1, 3]]), "out of range"),
        (np.eye(3), np.array([[0, 1, -1]]), "out of range"),
        (np.eye(3), np.array([[0.0, 1.0, 2.0]]), "integer"),
        (np.array([[0, 0, np.nan], [1, 0, 0], [0, 1, 0]]), np.array([[0, 1, 2]]), "NaN"),
    ],
)
def test_bad_mesh_raises(verts, faces, match):
    with pytest.raises(ValueError, match=match):
        render(verts, faces, Camera.from_fov(8, 8, 40))


def test_bad_camera_and_attr():
    with pytest.raises(ValueError, match="rotation"):
        Camera(1, 1, 0, 0, 4, 4, R=np.diag([1.0, 1.0, -1.0]))
    with pytest.raises(ValueError, match="face_attr"):
        render(np.eye(3), np.array([[0, 1, 2]]), Camera.from_fov(8, 8, 40), face_attr=np.zeros(2))


def test_numpy_fallback_warns_and_agrees(monkeypatch):
    import sys

    s = trimesh.creation.icosphere(subdivisions=2, radius=0.1)
    camera = Camera.from_fov(24, 24, 30)
    fast = render(s.vertices + [0, 0, 0.5], s.faces, camera)
    monkeypatch.setitem(sys.modules, "trimesh.ray.ray_pyembree", None)  # import now raises ImportError
    with pytest.warns(UserWarning, match="embreex is not installed"):
        slow = render(s.vertices + [0, 0, 0.5], s.faces, camera)
    assert (fast.mask != slow.mask).sum() <= 2
    both = fast.mask & slow.mask
    np.testing.assert_allclose(fast.depth[both], slow.depth[both], atol=1e-5)
