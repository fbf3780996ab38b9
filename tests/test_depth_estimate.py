"""Offline depth: the harmonic head fill, and the MediaPipe backend on a real photo (astronaut)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from faceparse.cli import app
from faceparse.depth.fill import harmonic_fill


def test_harmonic_fill_matches_annulus_solution():
    # Laplace on an annulus, 0 on the inner circle, 1 on the outer: u(r) = ln(r / r1) / ln(r2 / r1).
    n, r1, r2 = 161, 10.0, 70.0
    yy, xx = np.mgrid[0:n, 0:n] - (n - 1) / 2
    r = np.hypot(xx, yy)
    known = r <= r1
    region = r < r2
    out = harmonic_fill(np.zeros((n, n)), known, region, rim=1.0, max_side=512)
    ring = (r > 1.5 * r1) & (r < 0.9 * r2)
    np.testing.assert_allclose(out[ring], np.log(r[ring] / r1) / np.log(r2 / r1), atol=0.04)
    assert (out[~region] == 0).all() and (out[known] == 0).all()
    assert out[region].max() <= 1.0 + 1e-9  # maximum principle: no new extrema


def test_harmonic_fill_coarse_grid_keeps_known_pixels():
    rng = np.random.default_rng(0)
    vals = rng.uniform(0, 1, (300, 300))
    known = np.zeros((300, 300), bool)
    known[140:160, 140:160] = True
    region = np.ones((300, 300), bool)
    out = harmonic_fill(vals, known, region, rim=2.0, max_side=100)
    np.testing.assert_array_equal(out[known], vals[known])
    assert 0 <= out.min() and out.max() <= 2.0 and out[5, 5] > 1.5  # near the border: close to the rim


def test_missing_mediapipe_message(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # makes `import mediapipe` raise ImportError
    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "imgs" / "a.png")
    r = CliRunner().invoke(
        app, ["depth", "estimate", "--images", str(tmp_path / "imgs"), "--out", str(tmp_path / "o")]
    )
    assert r.exit_code == 2
    flat = " ".join(r.output.split())
    assert "pip install 'faceparse[depth]'" in flat and "make depth-extra" in flat


def test_astronaut_depth_peaks_at_nose(tmp_path):
    pytest.importorskip("mediapipe")
    from skimage import data

    from faceparse.depth.estimate import NOSE_TIP
    from faceparse.utils.facemesh import FaceMeshEstimator

    rgb = data.astronaut()
    (tmp_path / "imgs").mkdir()
    Image.fromarray(rgb).save(tmp_path / "imgs" / "astronaut.png")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "imgs" / "black.png")  # no face
    r = CliRunner().invoke(
        app, ["depth", "estimate", "--images", str(tmp_path / "imgs"), "--out", str(tmp_path / "d")]
    )
    assert r.exit_code == 0, r.output
    assert "no face: black" in " ".join(r.output.split())
    assert not (tmp_path / "d" / "black.png").exists()
    stored = np.asarray(Image.open(tmp_path / "d" / "astronaut.png"))
    assert stored.dtype == np.uint16 and stored.shape == rgb.shape[:2]
    corners = [stored[0, 0], stored[0, -1], stored[-1, 0], stored[-1, -1]]
    assert all(c == 0 for c in corners) and 0.02 < (stored > 0).mean() < 0.3  # the head, on a 0 background
    with FaceMeshEstimator() as est:
        nose = est.landmarks(rgb).points[NOSE_TIP, :2]
    iy, ix = np.unravel_index(np.argmax(stored), stored.shape)
    assert np.hypot(ix - nose[0], iy - nose[1]) <= 3.0  # the nearest point is the nose tip
    assert stored.max() == 65535
    # the face region is covered: a disc around the nose and both eyes' neighbourhood are all surface
    assert (stored[int(nose[1]) - 20 : int(nose[1]) + 20, int(nose[0]) - 20 : int(nose[0]) + 20] > 0).all()
    # resume: a second run skips
    r2 = CliRunner().invoke(
        app, ["depth", "estimate", "--images", str(tmp_path / "imgs"), "--out", str(tmp_path / "d")]
    )
    assert r2.exit_code == 0 and "skipped" in r2.output


def test_labels_extend_depth_over_head(tmp_path):
    pytest.importorskip("mediapipe")
    from skimage import data

    from faceparse.depth.estimate import estimate_depth
    from faceparse.utils.facemesh import FaceMeshEstimator

    rgb = data.astronaut()
    label = np.zeros(rgb.shape[:2], np.uint8)
    label[10:200, 140:310] = 1  # a generous head box, standing in for hair + skin labels
    with FaceMeshEstimator() as est:
        res = estimate_depth(rgb, est, label=label)
    assert res is not None and res.scores["coverage"] > 0.1
    assert (res.nearness[label > 0] > 0).all() and (
        res.nearness[label == 0][~res.mesh_mask[label == 0]] == 0
    ).all()
    # farther from the face, the fill recedes (nearness falls toward the label's outline)
    assert res.nearness[15, 225] < res.nearness[120, 225]


def test_estimate_into_dataset_honours_dropped_regions(tmp_path):
    pytest.importorskip("mediapipe")
    from skimage import data

    from faceparse.data.format import DatasetInfo, read_info, write_info
    from faceparse.depth.estimate import estimate_folder

    rgb = data.astronaut()
    ds = tmp_path / "helen"
    write_info(ds, DatasetInfo(name="Helen-D", scheme="helen11"))
    (ds / "rgb").mkdir()
    Image.fromarray(rgb).save(ds / "rgb" / "astronaut.png")
    label = np.zeros(rgb.shape[:2], np.uint8)
    label[10:200, 140:310] = 1
    (ds / "label").mkdir()
    Image.fromarray(label).save(ds / "label" / "astronaut.png")
    dropped = np.zeros_like(label)
    dropped[10:40, 140:310] = 255  # e.g. Helen's hair, dropped by `prepare helen --drop-hair`
    (ds / "dropped").mkdir()
    Image.fromarray(dropped).save(ds / "dropped" / "astronaut.png")
    report = estimate_folder(ds / "rgb", ds / "depth", labels=ds / "label", min_quality=0.0)
    assert report.written == ["astronaut"]
    stored = np.asarray(Image.open(ds / "depth" / "astronaut.png"))
    assert (stored[10:40, 140:310] == 0).all() and (stored[60:200, 160:290] > 0).all()
    info = read_info(ds)
    assert (info.depth.source, info.depth.unit) == ("mediapipe-facemesh", "face widths")
