"""faceparse.inference.metric_depth: metric depth (mm, m) → the training nearness; `predict --depth-units`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from faceparse.data.encoding import nearness_to_uint16
from faceparse.data.format import read_label, write_depth
from faceparse.data.render import Camera, render
from faceparse.data.synth import DEPTH_RANGE_M, generate_sample
from faceparse.inference import MetricDepth, face_parser
from faceparse.runs import checkpoint as ckpt
from faceparse.utils.io import DataError, atomic_write_json, read_json

MM_STEPS = 0.001 / DEPTH_RANGE_M * 65535  # one millimetre in stored nearness steps (218)


@pytest.fixture(scope="module")
def head() -> dict:
    """A synthetic head: its dataset nearness and the camera z it came from, in metres."""
    return generate_sample(1, 96, seed=0)


def _stored(nearness: np.ndarray) -> np.ndarray:
    return nearness_to_uint16(nearness).astype(np.int64)


def _millimetres(z_m: np.ndarray) -> np.ndarray:
    return np.rint(z_m * 1000.0).astype(np.uint16)  # what a depth camera writes: uint16 mm, 0 = none


def test_metric_depth_reproduces_the_dataset_encoding(head):
    reference = _stored(head["depth"])
    from_m = _stored(MetricDepth("m", DEPTH_RANGE_M).to_nearness(head["depth_m"]))
    assert np.array_equal(from_m > 0, reference > 0)
    assert np.abs(from_m - reference).max() <= 1  # float32 metres: the same values, one rounding apart
    from_mm = _stored(MetricDepth("mm", DEPTH_RANGE_M).to_nearness(_millimetres(head["depth_m"])))
    assert np.array_equal(from_mm > 0, reference > 0)
    # 1 mm quantisation: the pixel and the anchor each round by up to half a millimetre
    assert np.abs(from_mm - reference).max() <= MM_STEPS + 1
    assert np.abs(from_mm - reference).mean() < MM_STEPS / 2


def test_files_in_every_metric_format_read_the_same(head, tmp_path):
    mm = _millimetres(head["depth_m"])
    metres = head["depth_m"].astype(np.float32)
    Image.fromarray(mm).save(tmp_path / "a.png")
    Image.fromarray(mm).save(tmp_path / "b.tif")
    np.save(tmp_path / "c.npy", metres)
    Image.fromarray(metres).save(tmp_path / "d.tif")  # 32-bit float TIFF
    in_mm, in_m = MetricDepth("mm", DEPTH_RANGE_M), MetricDepth("m", DEPTH_RANGE_M)
    expected_mm, expected_m = in_mm.to_nearness(mm), in_m.to_nearness(metres)
    assert np.array_equal(in_mm.read(tmp_path / "a.png"), expected_mm)
    assert np.array_equal(in_mm.read(tmp_path / "b.tif"), expected_mm)
    assert np.array_equal(in_m.read(tmp_path / "c.npy"), expected_m)
    assert np.array_equal(in_m.read(tmp_path / "d.tif"), expected_m)


def test_walls_flying_pixels_and_small_holes(head):
    convert = MetricDepth("mm", DEPTH_RANGE_M)
    mm = _millimetres(head["depth_m"])
    clean = convert.to_nearness(mm)
    seen = mm.copy()
    seen[mm == 0] = 1500  # a wall 1.5 m away: farther than the range behind the face, so background
    seen[2, 2] = 150  # a flying pixel in front of the face must not become the anchor
    assert np.array_equal(convert.to_nearness(seen), clean)

    ys, xs = np.nonzero(clean > 0)
    cy, cx = int(np.median(ys)), int(np.median(xs))
    assert (clean[cy - 3 : cy + 4, cx - 3 : cx + 4] > 0).all()
    holed = mm.copy()
    holed[cy - 1 : cy + 2, cx - 1 : cx + 2] = 0  # a 9-pixel sensor hole inside the face: filled
    filled = convert.to_nearness(holed)
    hole = np.zeros_like(clean, dtype=bool)
    hole[cy - 1 : cy + 2, cx - 1 : cx + 2] = True
    assert np.array_equal(filled[~hole], clean[~hole])
    assert (filled[hole] > 0).all() and np.abs(filled[hole] - clean[hole]).max() < 0.02  # 6 mm
    big = MetricDepth("mm", DEPTH_RANGE_M, max_hole=8 / mm.size).to_nearness(holed)
    assert (big[hole] == 0).all()  # larger than max_hole: left as background
    assert np.array_equal(big[~hole], clean[~hole])


def test_distance_along_rays_converts_with_intrinsics():
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.1)
    camera = Camera.from_fov(48, 40, 32.0)
    hit = render(np.asarray(sphere.vertices) + [0.01, 0.0, 0.45], np.asarray(sphere.faces), camera)
    along_ray = np.where(hit.mask, np.linalg.norm(hit.points - camera.center, axis=-1), 0.0)
    intrinsics = (camera.fx, camera.fy, camera.cx, camera.cy)
    z = MetricDepth("m").to_nearness(hit.depth)
    from_rays = MetricDepth("m", intrinsics=intrinsics).to_nearness(along_ray)
    assert np.abs(_stored(from_rays) - _stored(z)).max() <= 1
    assert np.abs(_stored(MetricDepth("m").to_nearness(along_ray)) - _stored(z)).max() > 100  # it matters


@pytest.mark.parametrize(
    ("name", "values", "units", "problem"),
    [
        ("zeros.png", np.zeros((8, 8), np.uint16), "mm", "no valid pixel"),
        ("nan.npy", np.full((8, 8), np.nan, np.float32), "m", "no valid pixel"),
        ("neg.npy", np.full((8, 8), -0.5, np.float32), "m", "negative"),
        ("whole.png", np.full((8, 8), 1, np.uint16), "m", "millimetres"),
        ("tiny.npy", np.full((8, 8), 0.4, np.float32), "mm", "metres read as millimetres"),
        ("huge.npy", np.full((8, 8), 400.0, np.float32), "m", "millimetres read as metres"),
        ("rgb.npy", np.ones((8, 8, 3), np.float32), "m", r"\(H, W\)"),
        ("bool.npy", np.ones((8, 8), bool), "mm", "got bool"),
    ],
)
def test_bad_depth_files_are_named(tmp_path, name, values, units, problem):
    path = tmp_path / name
    if name.endswith(".npy"):
        np.save(path, values)
    else:
        Image.fromarray(values).save(path)
    with pytest.raises(DataError, match=rf"{name}.*{problem}"):
        MetricDepth(units).read(path)


def test_unsupported_and_unreadable_files_are_named(tmp_path):
    (tmp_path / "d.exr").write_bytes(b"v/1\x01")
    (tmp_path / "e.npy").write_bytes(b"not numpy")
    with pytest.raises(DataError, match=r"d\.exr.*OpenEXR"):
        MetricDepth("m").read(tmp_path / "d.exr")
    with pytest.raises(DataError, match=r"e\.npy.*unreadable"):
        MetricDepth("m").read(tmp_path / "e.npy")


# --- through the parser and the command -----------------------------------------------------------------


def _with_depth_meta(run_dir: Path, tmp_path: Path, depth: dict | None) -> Path:
    """A copy of the run whose checkpoint's meta.json records ``depth`` (None: no record)."""
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    meta_path = ckpt.latest_checkpoint(copy / "joint") / ckpt.META_FILE  # type: ignore[operator]
    meta = read_json(meta_path)
    meta.pop("depth", None)
    if depth is not None:
        meta["depth"] = depth
    atomic_write_json(meta_path, meta)
    return copy


def test_the_range_comes_from_what_the_parser_was_trained_on(run_dir, tmp_path):
    from faceparse.data.format import DatasetInfo, DepthInfo, write_info

    run = _with_depth_meta(run_dir, tmp_path, {"range": 4, "unit": "dm"})
    assert face_parser(run, "depth", depth_units="mm").metric.range_m == pytest.approx(0.4)
    assert face_parser(run, "depth", depth_units="mm", depth_range_m=0.25).metric.range_m == 0.25
    assert face_parser(run, "depth").metric is None  # nearness input: nothing to convert
    # an older checkpoint (no record): its training dataset's dataset.json while that is there, else 0.3 m
    assert face_parser(run_dir, "depth", depth_units="m").metric.range_m == 0.3  # data.root is unset
    meta_path = ckpt.latest_checkpoint(run / "joint") / ckpt.META_FILE  # type: ignore[operator]
    meta = read_json(meta_path)
    del meta["depth"]
    meta["config"]["data"]["root"] = str(tmp_path / "data")
    atomic_write_json(meta_path, meta)
    assert face_parser(run, "depth", depth_units="m").metric.range_m == 0.3  # no dataset there
    write_info(tmp_path / "data", DatasetInfo("d", "celebamask13", DepthInfo(range=0.5, unit="m")))
    assert face_parser(run, "depth", depth_units="m").metric.range_m == 0.5
    with pytest.raises(ValueError, match="modality='depth'"):
        face_parser(run, "rgb", depth_units="mm")
    with pytest.raises(ValueError, match="depth_units"):
        face_parser(run, "depth", depth_units="cm")


def test_parsing_millimetres_gives_the_labels_of_the_encoding(run_dir, head):
    """Acceptance (issue 12): the same head in mm and in our encoding parses the same."""
    parser = face_parser(run_dir, "depth")
    metric = face_parser(run_dir, "depth", depth_units="mm", depth_range_m=DEPTH_RANGE_M)
    stored = nearness_to_uint16(head["depth"])  # the dataset's PNG values
    a = parser(stored)["labels"][0]
    b = metric(_millimetres(head["depth_m"]))["labels"][0]
    assert len(np.unique(a)) > 1  # the parser does tell pixels apart
    assert (a == b).mean() >= 0.99


def test_predict_command_with_depth_units_mm(run_dir, head, tmp_path):
    from faceparse.cli import app

    run = _with_depth_meta(run_dir, tmp_path, {"range": DEPTH_RANGE_M, "unit": "m"})
    write_depth(tmp_path / "enc" / "head.png", head["depth"])
    (tmp_path / "mm").mkdir()
    Image.fromarray(_millimetres(head["depth_m"])).save(tmp_path / "mm" / "head.png")
    np.save(tmp_path / "mm" / "head_m.npy", head["depth_m"])  # float metres
    runner = CliRunner()

    def predict(units: str, source: Path, out: str, *extra: str):
        args = ["predict", "-c", str(run), "--modality", "depth", "--depth-units", units, *extra]
        return runner.invoke(app, [*args, "-i", str(source), "-o", str(tmp_path / out)])

    result = predict("nearness", tmp_path / "enc", "p_enc")
    assert result.exit_code == 0, result.output
    result = predict("mm", tmp_path / "mm" / "head.png", "p")
    assert result.exit_code == 0, result.output
    assert "encoded over 0.3 m" in result.output
    a, b = read_label(tmp_path / "p_enc" / "head.png"), read_label(tmp_path / "p" / "head.png")
    assert (a == b).mean() >= 0.99
    result = predict("m", tmp_path / "mm", "q")  # the folder: the .npy parses, the mm PNG is refused
    assert result.exit_code == 1 and "head.png" in result.output and "millimetres" in result.output
    assert (read_label(tmp_path / "q" / "head_m.png") == a).mean() >= 0.99
    assert not (tmp_path / "q" / "head.png").exists()
    result = predict("feet", tmp_path / "mm", "r")
    assert result.exit_code == 2 and "--depth-units" in result.output
    result = predict("nearness", tmp_path / "enc", "r", "--depth-range", "0.3")
    assert result.exit_code == 2 and "--depth-range" in result.output
    result = predict("mm", tmp_path / "mm", "r", "--intrinsics", "500,500,47.5")
    assert result.exit_code == 2 and "fx,fy,cx,cy" in result.output
    assert not (tmp_path / "r").exists()


def test_training_records_the_depth_range_that_inference_uses(tmp_path):
    from faceparse.data.format import DATASET_JSON, read_info, write_info
    from faceparse.engine import train
    from tiny import disc_dataset, tiny_overrides

    data = disc_dataset(tmp_path / "data", n=6)
    info = read_info(data)
    info.depth.range, info.depth.unit = 25.0, "cm"
    write_info(data, info)
    out = tmp_path / "run"
    train(None, "pretrain-depth", overrides=tiny_overrides(data, out, iterations=1))
    (data / DATASET_JSON).unlink()  # what the checkpoint recorded counts, not the dataset folder
    assert face_parser(out, "depth", depth_units="mm").metric.range_m == pytest.approx(0.25)
