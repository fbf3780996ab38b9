"""Depth construction: released zips, Deep3dPortrait .mat files, meshes → 16-bit nearness."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat
from typer.testing import CliRunner

from faceparse.cli import app
from faceparse.data.convert.celebamask import convert_celebamask
from faceparse.data.format import open_layout, read_depth
from faceparse.depth.deep3dportrait import import_deep3dportrait, restore_crop
from faceparse.depth.released import check_member, import_released
from faceparse.utils.io import DataError
from fixtures_raw import make_celebamask


@pytest.fixture
def dataset(tmp_path):
    """A prepared 32² CelebAMask-HQ dataset with ids 0..4 (train 0 1, val 2, test 3 4)."""
    raw = make_celebamask(tmp_path / "raw")
    convert_celebamask(raw, tmp_path / "data", size=32, workers=1)
    return tmp_path / "data"


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def ramp8(size: int = 32) -> np.ndarray:
    d = np.tile(np.arange(size, dtype=np.uint8) * 7, (size, 1))  # column 0 is 0 = background
    return d


def make_zip(path, *, bomb: bool = False):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("CelebAMask-HQ-D/depth/0.png", png_bytes(ramp8()))
        zf.writestr("CelebAMask-HQ-D/depth/1.png", png_bytes(ramp8()))
        zf.writestr("2.png", png_bytes(np.full((16, 16), 128, np.uint8)))  # other size, outside depth/
        zf.writestr("CelebAMask-HQ-D/depth/999.png", png_bytes(ramp8()))  # no such sample
        zf.writestr("../evil.png", png_bytes(ramp8()))
        zf.writestr("/abs/3.png", png_bytes(ramp8()))
        zf.writestr("train_list.txt", "0\n1\n")
        if bomb:
            zf.writestr("depth/4.png", b"\0" * (8 * 2**20))  # ratio ~1000: refused before decoding


def test_released_zip_import(tmp_path, dataset):
    make_zip(tmp_path / "d.zip", bomb=True)
    report = import_released(tmp_path / "d.zip", dataset)
    assert report.written == 3
    d0 = np.asarray(Image.open(dataset / "depth" / "0.png"))
    assert d0.dtype == np.uint16
    np.testing.assert_array_equal(d0, ramp8().astype(np.uint16) * 257)  # v/255 → round(n·65535) = 257·v
    assert (d0[:, 0] == 0).all()  # background stays 0
    assert report.resized == ["2: 16×16 → 32×32"]
    np.testing.assert_allclose(read_depth(dataset / "depth" / "2.png"), 128 / 255, atol=1e-6)
    unsafe = "\n".join(report.unsafe)
    assert "../evil.png: '..' path traversal" in unsafe and "/abs/3.png: absolute path" in unsafe
    assert "depth/4.png: compression ratio" in unsafe
    assert report.depth_without_sample == ["999"]
    assert report.sample_without_depth == {"train": [], "val": [], "test": ["3", "4"]}
    lay = open_layout(dataset)  # samples without depth dropped; full lists kept
    assert lay.split_ids("test") == [] and lay.split_ids("train") == ["0", "1"]
    assert (dataset / "splits" / "full" / "test.txt").read_text() == "3\n4\n"
    assert lay.info.depth.source == "released-8bit" and lay.info.counts == {"train": 2, "val": 1, "test": 0}
    calls: list[tuple[int, int, str]] = []
    again = import_released(tmp_path / "d.zip", dataset, on_progress=lambda *a: calls.append(a))  # resume
    assert again.written == 0 and again.skipped == 3
    assert calls == [(0, 3, ""), (1, 3, ""), (2, 3, ""), (3, 3, "")]  # skipped maps count as done
    assert again.sample_without_depth["test"] == ["3", "4"]  # still judged against the full lists


def test_released_cli_strict_and_folder(tmp_path, dataset):
    make_zip(tmp_path / "d.zip")
    r = CliRunner().invoke(
        app,
        ["depth", "import-released", "--src", str(tmp_path / "d.zip"), "--data", str(dataset), "--strict"],
    )
    assert r.exit_code == 2 and "evil.png" in r.output
    folder = tmp_path / "unzipped" / "depth"
    folder.mkdir(parents=True)
    (folder / "0.png").write_bytes(png_bytes(ramp8()))
    (folder / "1.png").write_bytes(b"not a png")
    r = CliRunner().invoke(
        app,
        ["depth", "import-released", "--src", str(folder.parent), "--data", str(dataset), "--keep-missing"],
    )
    assert r.exit_code == 0, r.output
    flat = "".join(r.output.split())
    assert "depth/1.png:unreadabledepthimage" in flat
    assert open_layout(dataset).split_ids("test") == ["3", "4"]  # --keep-missing


def test_zip_member_checks():
    ok = zipfile.ZipInfo("depth/a.png")
    ok.file_size, ok.compress_size = 1000, 900
    assert check_member(ok) is None
    for name, why in (("a/../../b.png", "traversal"), ("/etc/x.png", "absolute"), ("C:/x.png", "absolute")):
        zi = zipfile.ZipInfo(name)
        zi.file_size, zi.compress_size = 10, 10
        assert why in check_member(zi)


# --- Deep 3D Portrait --------------------------------------------------------------------------------


def forward_crop(depth_raw_fn, s: float, left: int, up: int, raw_w: int, raw_h: int) -> np.ndarray:
    """What Deep3dPortrait's crop holds: resized (1/s) image pixel (left+u, up+v), 0 outside the image."""
    u, v = np.meshgrid(np.arange(256), np.arange(256))
    col, row = left + u, up + v
    inside = (col >= 0) & (col < round(raw_w / s)) & (row >= 0) & (row < round(raw_h / s))
    x, y = (col + 0.5) * s - 0.5, (row + 0.5) * s - 0.5  # resized pixel centre in raw pixels
    return np.where(inside, depth_raw_fn(x, y), 0.0)


def plane_dm(x, y):
    return 9.0 + 0.001 * x + 0.002 * y


@pytest.mark.parametrize("out_size", [(100, 80), (50, 40)])
def test_restore_crop_inverts_deep3dportrait_crop(out_size):
    s, left, up = 0.5, -20, 10
    crop = forward_crop(plane_dm, s, left, up, 100, 80)
    got = restore_crop(crop, np.array([s, left, up, 256, 256]), (100, 80), out_size)
    ow, oh = out_size
    k = 100 / ow
    xs, ys = np.meshgrid((np.arange(ow) + 0.5) * k - 0.5, (np.arange(oh) + 0.5) * k - 0.5)
    want = plane_dm(xs, ys)
    covered = ys >= 4.5 - 1e-9  # raw rows above 4.5 fall above the crop (up = 10 resized rows at s = 0.5)
    assert (got[~covered] == 0).all()
    np.testing.assert_allclose(got[covered], want[covered], atol=0.0021)


def test_import_deep3dportrait(tmp_path, dataset):
    mats, crops = tmp_path / "step3", tmp_path / "step1"
    mats.mkdir()
    crops.mkdir()
    s, left, up = 0.25, 0, 0  # the 32² image was upscaled ×4 into the crop
    for sid in ("0", "1"):
        crop = forward_crop(plane_dm, s, left, up, 32, 32)
        mask = (crop > 0).astype(np.float64)
        mask[:8, :] = 0  # off-head rows
        savemat(mats / f"{sid}.mat", {"depth": np.where(mask > 0, crop, 0.0), "mask": mask})
        savemat(crops / f"{sid}.mat", {"crop_param": np.array([[s, left, up, 256, 256]])})
    savemat(mats / "3.mat", {"depth": np.zeros((256, 256))})  # no mask: reported, named
    r = CliRunner().invoke(
        app,
        [
            "depth",
            "import-deep3dportrait",
            "--mats",
            str(mats),
            "--crops",
            str(crops),
            "--data",
            str(dataset),
            "--keep-missing",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "step3/3.mat:no'mask'array" in "".join(r.output.split())  # rich wraps long lines
    n = read_depth(dataset / "depth" / "0.png")
    assert n.shape == (32, 32) and (n[:2] == 0).all()  # the off-head crop rows map to raw rows 0..1
    xs, ys = np.meshgrid(np.arange(32), np.arange(32))
    z = plane_dm(xs, ys)
    on = n > 0
    assert on[2:].all()
    want = 1 - (z - z[on].min()) / 3.0  # nearness with the documented 3 dm range
    np.testing.assert_allclose(n[on], want[on], atol=2e-4)
    info = open_layout(dataset).info
    assert (info.depth.source, info.depth.range, info.depth.unit) == ("deep3dportrait", 3.0, "dm")


def test_deep3dportrait_missing_crop_param_named(tmp_path, dataset):
    mats = tmp_path / "m"
    mats.mkdir()
    savemat(mats / "0.mat", {"depth": np.ones((256, 256)) * 9, "mask": np.ones((256, 256))})
    with pytest.raises(DataError, match="0.mat: no 'crop_param'"):
        import_deep3dportrait(mats, dataset, strict=True)


# --- meshes ------------------------------------------------------------------------------------------


def test_from_mesh_sphere_and_plane(tmp_path):
    trimesh = pytest.importorskip("trimesh")
    cam = {"fx": 40.0, "fy": 40.0, "cx": 31.5, "cy": 31.5, "width": 64, "height": 64}
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=1.0)
    sphere.apply_translation([0.0, 0.0, 4.0])
    sphere.export(tmp_path / "sphere.ply")
    r = CliRunner().invoke(
        app,
        [
            "depth",
            "from-mesh",
            "--mesh",
            str(tmp_path / "sphere.ply"),
            "--out",
            str(tmp_path / "d.png"),
            "--mask-out",
            str(tmp_path / "m.png"),
            "--camera",
            json.dumps(cam),
            "--depth-range",
            "2",
        ],
    )
    assert r.exit_code == 0, r.output
    stored = np.asarray(Image.open(tmp_path / "d.png"))
    assert stored.dtype == np.uint16
    # analytic ray-sphere depth for each pixel centre
    v, u = np.mgrid[0:64, 0:64]
    d = np.stack([(u - 31.5) / 40, (v - 31.5) / 40, np.ones_like(u, float)], -1)
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    c = np.array([0, 0, 4.0])
    b = d @ c
    disc = b**2 - (c @ c - 1.0)
    hit = disc > 0
    z = np.where(hit, (b - np.sqrt(np.maximum(disc, 0))) * d[..., 2], 0)
    mask = np.asarray(Image.open(tmp_path / "m.png")) > 0
    inner = hit & (disc > 0.02)  # away from the silhouette, where faceting decides hit or miss
    assert mask[inner].all() and not mask[~hit].any()
    n = stored / 65535.0
    want = 1 - (z - z[hit].min()) / 2.0
    np.testing.assert_allclose(n[inner], want[inner], atol=3e-3)
    assert abs(n[31:33, 31:33].mean() - 1) < 2e-3  # nearest point at the centre

    plane = trimesh.Trimesh(
        vertices=[[-9, -9, 5], [9, -9, 5], [9, 9, 5], [-9, 9, 5]], faces=[[0, 1, 2], [0, 2, 3]]
    )
    plane.export(tmp_path / "plane.obj")
    (tmp_path / "cam.json").write_text(json.dumps(cam))
    from faceparse.depth.deep3dportrait import depth_from_mesh, load_camera

    res = depth_from_mesh(tmp_path / "plane.obj", load_camera(tmp_path / "cam.json"))
    assert res.mask.all()
    np.testing.assert_allclose(res.depth, 5.0, atol=1e-4)


def test_from_mesh_bad_inputs_named(tmp_path):
    r = CliRunner().invoke(
        app,
        [
            "depth",
            "from-mesh",
            "--mesh",
            str(tmp_path / "nope.obj"),
            "--out",
            str(tmp_path / "d.png"),
            "--camera",
            '{"fx": 1}',
        ],
    )
    assert r.exit_code == 2 and "missing fy" in "".join(r.output.split("\n"))
